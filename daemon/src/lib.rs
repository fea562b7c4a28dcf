//! The daemon's pieces, above the host library and below the CLI: the
//! control API (`outboard.control.v1`) served on a private Unix socket.
//!
//! # Layout
//!
//! - `socket`: where the control socket lives by default.
//! - `control_socket`: the socket on disk: its private directory, the lock
//!   that keeps a second daemon off it, stale-socket replacement, its mode
//!   and group.
//! - `peer`: every connection's peer credentials, and who is admitted.
//! - `incoming`: the server's accepted connections, each with its verdict.
//! - `server`: the daemon: [`server::Daemon`] serving `ControlService` and
//!   reflection, reload, graceful shutdown.
//! - `usage`: RSS and CPU of plugins' process groups, from `/proc`.
//! - `logs/`: the plugins' recent log lines, per plugin, and their follow.
//! - `systemd`: `sd_notify` readiness, reload, stop and watchdog
//!   notifications, when `NOTIFY_SOCKET` is set.
//! - `wire`: the host's types as `outboard.control.v1` messages and back.
//! - `http`: the HTTP listener: `/metrics`, `/healthz`, `/readyz`,
//!   `/plugins/<name>/health`.

pub mod control_socket;
pub mod http;
mod incoming;
pub mod logs;
pub mod peer;
pub mod server;
pub mod socket;
pub mod systemd;
pub mod usage;
pub mod wire;
