//! The management commands' side of the control socket: connecting to a
//! running daemon (`outboard up`) and saying, in words a person can act
//! on, why that did not work.
//!
//! - `connect`: the socket, the peer's uid, the gRPC channel.
//! - `errors`: a failed connection or call as a message for people.
//! - `phases`: a daemon as the place a job's phases run (`run --daemon`).
//! - `trace`: the caller's trace context on a control call.

mod connect;
mod errors;
mod phases;
mod trace;

pub(crate) use connect::Daemon;
pub(crate) use errors::call_error;
pub(crate) use phases::DaemonPhases;
pub(crate) use trace::traced;
