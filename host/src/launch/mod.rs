//! One plugin process, from nothing to a ready channel, and the one bounded
//! call to it. The host's start and the conformance battery both go through
//! here, so the two cannot drift apart.
//!
//! # Layout
//!
//! - [`process`]: the private runtime directory and the sweep of dead hosts'
//!   ones, the scrubbed environment, the long-lived spawner thread, the
//!   process group and the reaper.
//! - `exit`: [`Exit`], how a process ended.
//! - [`handshake`]: the handshake line read off stdout, bounded.
//! - `launched`: [`launch`], the three above in order, giving a
//!   [`Launched`] plugin.
//! - [`channel`]: the gRPC channel to the socket, with or without the token.
//! - `call`: [`Guard`], a call bounded by its [`Deadline`] and the plugin's
//!   exit, its status classified.
//! - `setup`: `Describe` and `Configure` on a [`Launched`] plugin.

mod call;
pub mod channel;
mod exit;
pub mod handshake;
mod launched;
pub mod process;
mod setup;

pub use call::{Deadline, Guard};
pub use channel::{Clients, connect, dial};
pub use exit::Exit;
pub use launched::{Launched, launch};
pub use process::{Launch, PluginProcess, ProcStat, RuntimeDir, group_members};
pub use setup::{Configuration, describe_request};
