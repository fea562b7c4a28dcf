//! The daemon's pieces, above the host library and below the CLI: the
//! control API (`outboard.control.v1`) served on a private Unix socket.
//!
//! # Layout
//!
//! - `socket`: where the control socket lives by default.
//! - `wire`: the host's types as `outboard.control.v1` messages and back.

pub mod socket;
pub mod wire;
