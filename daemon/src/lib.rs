//! The daemon's pieces, above the host library and below the CLI: the
//! control API (`outboard.control.v1`) served on a private Unix socket.
//!
//! # Layout
//!
//! - `socket`: where the control socket lives by default.

pub mod socket;
