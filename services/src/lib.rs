//! Host services: what a plugin may call back into the host for
//! (docs/PROTOCOL.md §17): a key-value store, secrets and events, served
//! as `outboard.v1.HostService` on a socket of its own in each plugin
//! instance's runtime directory.
//!
//! # Layout
//!
//! - `services`: [`Services`], one per host process: the state database,
//!   the live tokens, the launcher that attaches every launch.
//! - `options`: [`ServicesOptions`].
//! - `hosted`: the host seam's implementation: per launch, the socket
//!   `host.sock` bound before the spawn, its token, and the accept loop
//!   that serves it until the instance exits.
//! - `registry`: the live tokens and what each instance was granted.
//! - [`auth`]: the `authorization: Bearer` credential, its form.
//! - [`permissions`]: the grants a call needs and the glob matcher.
//! - `caller`: [`Caller`], who is calling, resolved on every call.
//! - `denials`: the log of refusals, rate-limited per plugin.
//! - `server`: the `HostService` handlers: authenticate, bound, dispatch.
//! - `secrets`: `GetSecret`.
//! - [`events`]: `Publish`, the outbox, fan-out, delivery, dead letters,
//!   the host's own events.
//! - `error`: [`ServicesError`].

pub mod auth;
mod caller;
mod denials;
mod error;
pub mod events;
mod hosted;
mod kv;
mod options;
pub mod permissions;
mod registry;
mod secrets;
mod server;
mod services;

pub use caller::Caller;
pub use error::ServicesError;
pub use hosted::SOCKET_NAME;
pub use options::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_DESCRIBE_WAIT, DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_SCOPE,
    ServicesOptions,
};
pub use outboard_state::KvLimits;
pub use services::Services;
