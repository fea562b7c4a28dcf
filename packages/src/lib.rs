//! Signed plugin packages: build one from a plugin directory, verify it,
//! install it atomically into a plugin directory, list and remove what was
//! installed.
//!
//! # Layout
//!
//! - `manifest`: `outboard-package.toml`, every file's path, mode and
//!   SHA-256, and the plugin's name and version.
//! - `paths`: the one check that a path inside a package stays inside it.
//! - `keys`: minisign key pairs, trusted public keys, key ids.
//! - `build`: a plugin directory → a `.tar.gz`, signed or not.
//! - `unpack`: a `.tar.gz` → a staging directory, refusing anything but
//!   plain files and directories at safe paths.
//! - `verify`: the signature against trusted keys, every checksum.
//! - `asks`: what a package's `plugin.toml` asks beyond its code (grants,
//!   sandbox, user), shown at install, the operator's keys refused.
//! - `probe`: the one start of the plugin install makes (the sandbox seam).
//! - `install`: stage, verify, probe, swap into place; uninstall; list.
//!
//! The library never prints; the CLI (`outboard keygen`, `package`,
//! `install`, `uninstall`, `plugins`) renders what it returns.

mod asks;
mod build;
mod error;
mod install;
mod keys;
mod manifest;
mod paths;
mod probe;
mod swap;
mod unpack;
mod verify;

pub use asks::ConfigAsk;
pub use build::{PackageMeta, pack, package_file_name};
pub use error::PackageError;
pub use install::{InstallOptions, Installed, install, installed, uninstall};
pub use keys::{
    KeyPairFiles, SigningKey, TrustedKey, generate_key_pair, key_id, trusted_keys_in_config,
};
pub use manifest::{FileEntry, MANIFEST_FILE, PackageManifest, SIGNATURE_FILE};
pub use probe::{Described, PROBE_USER, describe_folder, describe_once};
