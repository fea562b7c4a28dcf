//! The errors a plugin returns ([`PluginError`]) and the errors that stop
//! [`serve`](crate::serve) ([`ServeError`]).

use std::path::PathBuf;

use crate::settings::SettingsError;

/// The gRPC status codes a [`PluginError`] answers with, as
/// [`PluginError::code`] returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// `INVALID_ARGUMENT`: the config or the context cannot be used.
    InvalidArgument,
    /// `FAILED_PRECONDITION`: the plugin cannot work as it was set up.
    FailedPrecondition,
    /// `INTERNAL`: the plugin tried and failed.
    Internal,
    /// `UNAVAILABLE`: something it relies on is down; a retry may work.
    Unavailable,
    /// `UNIMPLEMENTED`: the plugin has no handler for what it was sent
    /// (an event it does not handle).
    Unimplemented,
}

impl Code {
    /// The code's name as gRPC spells it, e.g. `INVALID_ARGUMENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unimplemented => "UNIMPLEMENTED",
        }
    }

    fn to_tonic(self) -> tonic::Code {
        match self {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::FailedPrecondition => tonic::Code::FailedPrecondition,
            Code::Internal => tonic::Code::Internal,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::Unimplemented => tonic::Code::Unimplemented,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a plugin refused or failed a call. Each kind maps to one gRPC status
/// code, and the message travels to the host, which shows it with the
/// plugin's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The configuration cannot be used (`INVALID_ARGUMENT`).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The phase context lacks something the plugin needs or holds
    /// something it cannot read (`INVALID_ARGUMENT`).
    #[error("invalid context: {0}")]
    InvalidContext(String),
    /// The plugin tried and failed (`INTERNAL`).
    #[error("{0}")]
    Failed(String),
    /// Something the plugin relies on is down; a retry may work
    /// (`UNAVAILABLE`).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The plugin cannot work as it was set up, typically a permission it
    /// needs was not granted (`FAILED_PRECONDITION`, PROTOCOL.md §8.3).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The plugin has no handler for the call, e.g. an event it subscribed
    /// to without handling it (`UNIMPLEMENTED`, so that the host retries
    /// and then dead-letters the delivery instead of counting it done).
    #[error("{0}")]
    Unimplemented(String),
}

impl PluginError {
    /// A config the plugin cannot use; say which field and why.
    pub fn invalid_config(message: impl Into<String>) -> PluginError {
        PluginError::InvalidConfig(message.into())
    }

    /// A phase context the plugin cannot work with; say which path and why.
    pub fn invalid_context(message: impl Into<String>) -> PluginError {
        PluginError::InvalidContext(message.into())
    }

    /// The plugin failed while doing its job.
    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError::Failed(message.into())
    }

    /// A bug or broken invariant inside the plugin; the same status as
    /// [`PluginError::failed`].
    pub fn internal(message: impl Into<String>) -> PluginError {
        PluginError::Failed(message.into())
    }

    /// A dependency of the plugin is unavailable; the call may be retried.
    pub fn unavailable(message: impl Into<String>) -> PluginError {
        PluginError::Unavailable(message.into())
    }

    /// The plugin cannot work as it was set up, e.g. a permission it needs
    /// was not granted; say which.
    pub fn failed_precondition(message: impl Into<String>) -> PluginError {
        PluginError::FailedPrecondition(message.into())
    }

    /// The plugin has nothing to handle the call with; say what.
    pub fn unimplemented(message: impl Into<String>) -> PluginError {
        PluginError::Unimplemented(message.into())
    }

    /// The gRPC status code the host receives.
    pub fn code(&self) -> Code {
        match self {
            PluginError::InvalidConfig(_) | PluginError::InvalidContext(_) => Code::InvalidArgument,
            PluginError::Failed(_) => Code::Internal,
            PluginError::Unavailable(_) => Code::Unavailable,
            PluginError::FailedPrecondition(_) => Code::FailedPrecondition,
            PluginError::Unimplemented(_) => Code::Unimplemented,
        }
    }

    /// The message as the plugin gave it, without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            PluginError::InvalidConfig(m)
            | PluginError::InvalidContext(m)
            | PluginError::Failed(m)
            | PluginError::Unavailable(m)
            | PluginError::FailedPrecondition(m)
            | PluginError::Unimplemented(m) => m,
        }
    }

    /// The status the call is answered with.
    pub(crate) fn to_status(&self) -> tonic::Status {
        // The Display form keeps "invalid config:" in front, which is what an
        // operator reading the host's report needs to see.
        tonic::Status::new(self.code().to_tonic(), self.to_string())
    }
}

/// Why [`serve`](crate::serve) could not start or stopped with an error.
/// Every variant names the plugin (its manifest name).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The environment is not a host's: see [`SettingsError`].
    #[error("{}", settings_message(plugin, source))]
    Settings {
        /// The plugin's manifest name.
        plugin: String,
        /// What is wrong with the environment.
        source: SettingsError,
    },
    /// The plugin's own manifest is invalid, so no host would accept it.
    #[error("{plugin}: the plugin's manifest is invalid: {source}")]
    Manifest {
        /// The plugin's manifest name, as given (it may be the invalid part).
        plugin: String,
        /// Every problem found.
        source: crate::manifest::ManifestError,
    },
    /// The socket could not be bound or secured.
    #[error("{plugin}: cannot {action} socket {}: {source}", path.display())]
    Socket {
        /// The plugin's manifest name.
        plugin: String,
        /// What was attempted ("bind", "set permissions on").
        action: &'static str,
        /// The socket path from `OUTBOARD_SOCKET`.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("{plugin}: cannot listen for SIGTERM/SIGINT: {source}")]
    Signals {
        /// The plugin's manifest name.
        plugin: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The handshake line could not be written to stdout.
    #[error("{plugin}: cannot write the handshake line to stdout: {source}")]
    Handshake {
        /// The plugin's manifest name.
        plugin: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("{plugin}: the gRPC server failed: {source}")]
    Server {
        /// The plugin's manifest name.
        plugin: String,
        /// The transport's error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The tokio runtime could not be built (only from [`run`](crate::run)).
    #[error("{plugin}: cannot start the async runtime: {source}")]
    Runtime {
        /// The plugin's manifest name.
        plugin: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

fn settings_message(plugin: &str, err: &SettingsError) -> String {
    match err {
        // The one sentence a person who ran the binary by hand reads.
        SettingsError::NotStartedByHost => format!(
            "{plugin} is an Outboard plugin: start it from an Outboard host \
             (for example `outboard describe -- <this command>`), not directly."
        ),
        other => format!("{plugin}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_status_codes_and_keep_the_message() {
        let cases = [
            (
                PluginError::invalid_config("memory: \"lots\" is not a size"),
                Code::InvalidArgument,
                "invalid config: memory: \"lots\" is not a size",
            ),
            (
                PluginError::invalid_context("no /env"),
                Code::InvalidArgument,
                "invalid context: no /env",
            ),
            (
                PluginError::failed("disk full"),
                Code::Internal,
                "disk full",
            ),
            (PluginError::internal("bug"), Code::Internal, "bug"),
            (
                PluginError::unavailable("vault down"),
                Code::Unavailable,
                "unavailable: vault down",
            ),
            (
                PluginError::failed_precondition("env:write was not granted"),
                Code::FailedPrecondition,
                "env:write was not granted",
            ),
            (
                PluginError::unimplemented("no handler for event \"x\""),
                Code::Unimplemented,
                "no handler for event \"x\"",
            ),
        ];
        for (err, code, message) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            let status = err.to_status();
            assert_eq!(status.code(), code.to_tonic(), "{err:?}");
            assert_eq!(status.message(), message);
        }
        assert_eq!(Code::FailedPrecondition.to_string(), "FAILED_PRECONDITION");
        assert_eq!(PluginError::failed("x").message(), "x");
    }

    #[test]
    fn not_started_by_host_is_one_sentence_naming_the_plugin() {
        let err = ServeError::Settings {
            plugin: "env-injector".into(),
            source: SettingsError::NotStartedByHost,
        };
        assert_eq!(
            err.to_string(),
            "env-injector is an Outboard plugin: start it from an Outboard host \
             (for example `outboard describe -- <this command>`), not directly."
        );
    }
}
