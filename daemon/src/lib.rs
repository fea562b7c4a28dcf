//! The daemon's pieces, above the host library and below the CLI: the
//! control API (`outboard.control.v1`) served on a private Unix socket.
//!
//! # Layout
//!
//! - `socket`: where the control socket lives by default.
//! - `usage`: RSS and CPU of plugins' process groups, from `/proc`.
//! - `logs/`: the plugins' recent log lines, per plugin, and their follow.

pub mod logs;
pub mod socket;
pub mod usage;
