//! The Outboard plugin protocol, shared by the host and the plugin SDKs.
//!
//! # Layout
//!
//! - [`v1`]: the generated gRPC types and service stubs for `outboard.v1`
//!   (from `proto/outboard/v1/*.proto`, checked in; `tests/codegen.rs` fails
//!   when they drift).
//! - [`control::v1`]: the same for the daemon's control API,
//!   `outboard.control.v1` (`proto/outboard/control/v1/control.proto`).
//! - [`json`]: `google.protobuf.Struct` / `Value` to and from `serde_json`.
//! - [`names`]: the rules for plugin and phase names.
//! - [`manifest`]: the one structural check of a manifest, shared by the
//!   host and the Rust SDK ([`manifest::check`]).
//! - [`patch`]: JSON Pointer set / remove patches, their wire form and how
//!   they apply.
//! - [`fastpath`]: the invoke fast path's frames (feature
//!   `invoke-fastpath/1`).
//! - [`handshake`]: the environment variables, the handshake line a plugin
//!   prints, the token metadata and protocol version negotiation.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//!
//! This crate does no I/O: it is types and pure functions only, so that both
//! sides of the protocol can share it without sharing behaviour.

pub mod fastpath;
pub mod handshake;
pub mod json;
pub mod manifest;
pub mod names;
pub mod patch;

/// Generated types for the `outboard.v1` package.
#[allow(clippy::all, missing_debug_implementations, missing_docs)]
pub mod v1 {
    include!("generated/outboard.v1.rs");
}

/// Generated types for the daemon's control API, `outboard.control.v1`.
pub mod control {
    /// Generated types for the `outboard.control.v1` package.
    #[allow(clippy::all, missing_debug_implementations, missing_docs)]
    pub mod v1 {
        include!("generated/outboard.control.v1.rs");
    }
}

/// The encoded `FileDescriptorSet` of `outboard.control.v1` and its imports,
/// for `tonic-reflection` on the daemon's control socket.
pub const CONTROL_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!("generated/outboard_control_v1_descriptor.bin");

/// The encoded `FileDescriptorSet` of `outboard.v1` and its imports, for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("generated/outboard_v1_descriptor.bin");

/// The fully qualified name of the plugin service, as health checks and
/// reflection name it.
pub const SERVICE_NAME: &str = "outboard.v1.PluginService";
