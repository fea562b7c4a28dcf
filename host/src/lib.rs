//! Outboard's plugin host.
//!
//! # Layout
//!
//! - [`registry`]: `outboard.toml` and plugin directories → plugin specs.
//! - [`manifest`]: validating what a plugin says about itself in `Describe`,
//!   and its config against the schema it declares.
//! - [`process`]: spawning a plugin in its own process group with a
//!   parent-death signal, a scrubbed environment and a private runtime
//!   directory; signalling and reaping the whole group.
//! - [`handshake`]: reading the handshake line off the plugin's stdout,
//!   bounded by a timeout and by the plugin's exit.
//! - [`logs`]: the plugin's stdout (after the handshake) and stderr as
//!   tracing events carrying its name.
//! - [`client`]: the gRPC channel over the Unix socket, with the token.
//! - [`plugin`]: one running plugin: start → ready, invoke, stop.
//! - [`supervisor`]: a plugin kept ready: restarts with backoff, health
//!   checks, crash-loop quarantine.
//! - [`phase`]: phases as the host declares them (mode, timeout, failure
//!   policy) and the job profile's defaults.
//! - [`dispatch`]: one phase fanned out to its subscribers, sequentially or
//!   in parallel, with patches, merge conflicts, timeouts and policies.
//! - [`host`]: [`Host`]: the running plugins and their phases, for
//!   programs that embed Outboard.
//! - [`job`]: `outboard run -- CMD`: the job profile's phases around a
//!   command.
//! - [`error`]: the errors, each naming the plugin and what went wrong.
//! - [`cli`]: the `outboard` command line.
//! - [`conformance`]: `outboard conformance -- CMD`: checks a plugin
//!   executable against the protocol, one named result per check.
//! - [`init`]: as PID 1, a tiny init that forks the host and reaps orphans.

pub mod cli;
pub mod client;
pub mod conformance;
pub mod dispatch;
pub mod error;
pub mod handshake;
pub mod host;
pub mod init;
pub mod job;
pub mod logs;
pub mod manifest;
pub mod phase;
pub mod plugin;
pub mod process;
pub mod registry;
pub mod supervisor;

pub use host::Host;
