//! One plugin process, from nothing to a ready channel, and the one bounded
//! call to it. The host's start and the conformance battery both go through
//! here, so the two cannot drift apart.
//!
//! # Layout
//!
//! - `attach`: [`Attach`], the seam through which an embedder gives each
//!   launch what it binds before the spawn (host services), and its
//!   variables.
//! - `runtime_dir`: [`RuntimeDir`], the private directory of a launch, and
//!   the sweep of those dead hosts left.
//! - `spawner`: the long-lived spawner thread and the reaper of orphans.
//! - `keeper`: the process that kills plugin groups when the host dies.
//! - [`process`]: [`PluginProcess`]: the scrubbed environment, the process
//!   group, its signals and its exit.
//! - `exit`: [`Exit`], how a process ended.
//! - [`handshake`]: the handshake line read off stdout, bounded.
//! - `launched`: [`launch`], the three above in order, giving a
//!   [`Launched`] plugin.
//! - [`channel`]: the gRPC channel to the socket, with or without the token.
//! - `peer`: the check that a socket dialed again is still the plugin's.
//! - `call`: [`Guard`], a call bounded by its [`Deadline`] and the plugin's
//!   exit, its status classified.
//! - `setup`: `Describe` and `Configure` on a [`Launched`] plugin.
//! - `fastpath`: the invoke fast path's connection, for a plugin that
//!   lists its feature (docs/PROTOCOL.md §18).

mod attach;
mod call;
pub mod channel;
mod exit;
pub mod fastpath;
pub mod handshake;
mod keeper;
mod launched;
mod peer;
pub mod process;
pub(crate) mod runtime_dir;
mod setup;
mod spawner;

pub use attach::{Attach, Attachment};
pub(crate) use call::CRASH_SETTLE;
pub use call::{Deadline, Guard};
pub use channel::{Clients, connect, dial};
pub use exit::Exit;
pub use keeper::retire as retire_keeper;
pub use launched::{Launched, launch, launch_attached};
pub(crate) use peer::refusal_in;
pub use process::{Launch, PluginProcess};
pub use runtime_dir::{ENV_RUNTIME_DIR, HOST_LOCK_FILE, MAX_SOCKET_PATH, RuntimeDir};
pub use setup::{Configuration, describe_request};
pub use spawner::{ProcStat, descends_from, group_members, reap_orphans};
