//! What can go wrong with a package, each error naming the file or the
//! reason, and what to do.

use std::io;
use std::path::PathBuf;

/// A package could not be built, verified, installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the system said.
        #[source]
        error: io::Error,
    },
    /// The archive holds an entry install refuses (a path escaping the
    /// package, a symlink, a hard link, a device, ...).
    #[error("package entry {entry:?} refused: {reason}")]
    Entry {
        /// The entry's path as the archive spells it.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The archive or its manifest is malformed.
    #[error("malformed package: {0}")]
    Malformed(String),
    /// A file's content or mode differs from what the manifest says.
    #[error("{file}: {reason}; the package was altered or corrupted after it was built")]
    Checksum {
        /// The file, relative to the plugin directory.
        file: String,
        /// What differs.
        reason: String,
    },
    /// The package carries no signature and unsigned packages are not allowed.
    #[error(
        "the package is not signed; sign it with `outboard package --sign KEY`, \
         or install it anyway with --allow-unsigned"
    )]
    Unsigned,
    /// The package is signed by a key that is not trusted.
    #[error(
        "the package is signed by key {key_id}, which is not trusted; add its public key \
         to [trust] keys in outboard.toml or pass --trust KEY"
    )]
    UnknownSigner {
        /// The signer's key id, as minisign prints it.
        key_id: String,
    },
    /// The signature does not verify with the trusted key of the same id.
    #[error("the signature of {MANIFEST} by key {key_id} does not verify: {reason}", MANIFEST = crate::MANIFEST_FILE)]
    BadSignature {
        /// The key id the signature names.
        key_id: String,
        /// What the verifier said.
        reason: String,
    },
    /// A key file or key string is not a usable minisign key.
    #[error("key {source_name}: {reason}")]
    Key {
        /// The file or string the key came from.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin, started once, does not say what its manifest says.
    #[error("plugin {expected:?}: {reason}")]
    Mismatch {
        /// The name the package's manifest gives.
        expected: String,
        /// What differs.
        reason: String,
    },
    /// The plugin could not be started to ask its name and version.
    #[error("plugin {name:?} from the package did not start: {reason}")]
    Start {
        /// The name the package's manifest gives.
        name: String,
        /// The host's error.
        reason: String,
    },
    /// The package's `plugin.toml` sets keys only the operator should set,
    /// and the operator did not accept them.
    #[error(
        "{file}: the package sets what only the operator should set: {}; \
         install it anyway, accepting them, with --accept-config",
        .refused.join("; ")
    )]
    OperatorConfig {
        /// The package's `plugin.toml`, as the package names it.
        file: String,
        /// Each refused key: its line, key, value and why.
        refused: Vec<String>,
    },
    /// The staged files could be changed by another user than the
    /// installer, who would then change what install checked.
    #[error("{path}: {reason}")]
    Unsafe {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Uninstall was asked for a plugin that no package installed.
    #[error("{path}: {reason}")]
    NotInstalled {
        /// Where the plugin was looked for.
        path: PathBuf,
        /// Why it is not removed.
        reason: String,
    },
}

impl PackageError {
    /// An I/O error about `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> PackageError {
        let path = path.into();
        move |error| PackageError::Io { path, error }
    }

    /// A refused archive entry.
    pub(crate) fn entry(entry: &str, reason: impl Into<String>) -> PackageError {
        PackageError::Entry {
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }
}
