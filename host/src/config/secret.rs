//! A `[secrets.NAME]` section: where the host reads a secret a plugin may
//! ask for (`GetSecret`, with the grant `secret:NAME`). Only the source is
//! configured, never the value: a spec may be printed, logged and compared
//! freely. The host reads the source when a plugin first asks, not here.

use std::path::PathBuf;
use std::time::Duration;

/// How long a resolved value may be kept, by default: a rotated secret is
/// picked up within five minutes, and a command is not run on every call.
pub const DEFAULT_SECRET_CACHE: Duration = Duration::from_secs(5 * 60);

/// How long a secret's `command` may run, by default, before it is killed.
pub const DEFAULT_SECRET_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest secret name.
pub const MAX_SECRET_NAME_LEN: usize = 64;

/// One configured secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// Where its value is read.
    pub source: SecretSource,
    /// How long a value read may be kept before the source is read again;
    /// zero reads it on every request.
    pub cache: Duration,
    /// How long a `command` may run before it is killed (unused by the
    /// other sources).
    pub timeout: Duration,
}

impl SecretSpec {
    /// A spec reading `source`, with the default cache and timeout.
    pub fn new(source: SecretSource) -> SecretSpec {
        SecretSpec {
            source,
            cache: DEFAULT_SECRET_CACHE,
            timeout: DEFAULT_SECRET_TIMEOUT,
        }
    }
}

/// Where a secret's value is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A variable of the host's environment.
    Env(String),
    /// A regular file (e.g. a mounted Kubernetes or Docker secret), as an
    /// absolute path.
    File(PathBuf),
    /// A command's standard output. Run without a shell, in `dir`.
    Command {
        /// The executable, as an absolute path.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// The directory it runs in: the config file's.
        dir: PathBuf,
    },
}

impl SecretSource {
    /// The kind of source, for messages that must not say more: `env`,
    /// `file` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretSource::Env(_) => "env",
            SecretSource::File(_) => "file",
            SecretSource::Command { .. } => "command",
        }
    }
}

/// True if `name` is a valid secret name: 1 to 64 characters of
/// `[a-zA-Z0-9_.-]`.
pub fn is_valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for good in [
            "a",
            "notifier-hmac",
            "DB_PASSWORD",
            "v1.key",
            &"x".repeat(64),
        ] {
            assert!(is_valid_secret_name(good), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", "a:b", &"x".repeat(65)] {
            assert!(!is_valid_secret_name(bad), "{bad}");
        }
    }
}
