//! Errors. Each one concerning a plugin names it and says exactly what went
//! wrong, in words an operator can act on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::launch::refusal_in;
use crate::manifest::{ConfigSchemaError, ManifestError};
use crate::output::Escaped;

/// Something went wrong with a plugin.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {kind}")]
pub struct Error {
    /// The plugin's name as the host knows it.
    pub plugin: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// An error about `plugin`.
    pub fn new(plugin: impl Into<String>, kind: impl Into<ErrorKind>) -> Error {
        Error {
            plugin: plugin.into(),
            kind: kind.into(),
        }
    }
}

/// What went wrong with a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Its spec (built in code: a loaded config is checked at load) holds a
    /// value past the limits of docs/CONFIG.md §2.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A wall of its sandbox cannot be had: not enforceable on this
    /// machine (and not `best_effort`), or a user or group that does not
    /// exist.
    #[error("sandbox.{setting} {problem}")]
    Sandbox {
        /// The setting, as in outboard.toml.
        setting: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Its private runtime directory could not be created.
    #[error("cannot create its runtime directory: {0}")]
    RuntimeDir(std::io::Error),
    /// What the embedder attaches to each launch (host services) could not
    /// be set up.
    #[error("cannot attach host services: {0}")]
    Attach(String),
    /// Its process could not be spawned.
    #[error("cannot start {}: {source}", command.display())]
    Spawn {
        /// The executable.
        command: PathBuf,
        /// Why it could not be spawned.
        source: std::io::Error,
    },
    /// It exited before printing its handshake line.
    #[error("exited with {status} before the handshake{}", StderrTail(stderr))]
    ExitedBeforeHandshake {
        /// Its exit, described (`status 3`, `signal 9 (SIGKILL)`).
        status: String,
        /// Its last stderr lines.
        stderr: Vec<String>,
    },
    /// It closed its stdout before printing its handshake line.
    #[error(
        "closed its stdout without printing a handshake line{}",
        StderrTail(stderr)
    )]
    ClosedStdout {
        /// Its last stderr lines.
        stderr: Vec<String>,
    },
    /// It printed no handshake line in time.
    #[error(
        "printed no handshake line within {} (expected `outboard|1|unix|<socket>|grpc` on stdout){}",
        humantime::format_duration(*timeout),
        StderrTail(stderr)
    )]
    HandshakeTimeout {
        /// How long it had.
        timeout: Duration,
        /// Its last stderr lines.
        stderr: Vec<String>,
    },
    /// Its handshake line cannot be read.
    #[error("printed a malformed handshake line {line:?}: {reason}")]
    MalformedHandshake {
        /// The line as printed.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// It chose a protocol version the host does not speak.
    #[error(
        "chose protocol version {plugin} in its handshake, but the host speaks only {}",
        list(host)
    )]
    UnsupportedVersion {
        /// The version it chose.
        plugin: u32,
        /// The versions the host speaks.
        host: Vec<u32>,
    },
    /// It announced a socket other than the one it was given.
    #[error(
        "announced socket {} in its handshake, but was told to bind {expected}",
        Escaped::line(announced)
    )]
    WrongSocket {
        /// The socket it announced.
        announced: String,
        /// The socket it was told to bind.
        expected: String,
    },
    /// The host cannot connect to its socket.
    #[error("cannot connect to its socket {}: {reason}", socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why the connection failed.
        reason: String,
    },
    /// It lists the invoke fast path's feature, but its fast-path socket
    /// cannot be connected to, or did not answer the HELLO.
    #[error(
        "lists {} but its fast path at {} failed: {reason}",
        outboard_proto::fastpath::FEATURE,
        socket.display()
    )]
    Fastpath {
        /// The fast path's socket.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `Describe` failed.
    #[error("Describe failed: {0}")]
    Describe(CallError),
    /// Its manifest is invalid.
    #[error("invalid manifest: {0}")]
    InvalidManifest(#[from] ManifestError),
    /// Its config does not match the schema its manifest declares.
    #[error("its config does not match the schema it declares: {0}")]
    ConfigSchema(#[from] ConfigSchemaError),
    /// It rejected its config in `Configure`.
    #[error("rejected its config: {}", Escaped::line(.0))]
    ConfigRejected(String),
    /// `Configure` failed.
    #[error("Configure failed: {0}")]
    Configure(CallError),
    /// It is not healthy after `Configure`.
    #[error("is not healthy after Configure: {0}")]
    Unhealthy(String),
    /// A call failed.
    #[error("{0}")]
    Call(#[from] CallError),
    /// Its manifest's dependencies are missing, unsatisfied or cyclic, or
    /// one of them failed to start.
    #[error("{0}")]
    Dependencies(crate::depends::DependencyErrors),
}

/// Why one call to a plugin failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// It did not answer within the call's timeout.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Its process exited during the call.
    #[error("crashed: exited with {status} during the call{}", StderrTail(stderr))]
    Crashed {
        /// Its exit, described (`status 101`).
        status: String,
        /// Its last stderr lines.
        stderr: Vec<String>,
    },
    /// The connection broke or could not be made again: gRPC `UNAVAILABLE`
    /// raised by the host's own transport, not answered by the plugin.
    #[error("connection lost: {}", Escaped::line(.0))]
    Unavailable(String),
    /// The host would not reconnect to its socket: what is at the path now
    /// is not what the plugin bound, or runs as another user. Nothing was
    /// sent there.
    #[error("{0}")]
    PeerRefused(String),
    /// It refused the host's token (gRPC `UNAUTHENTICATED`).
    #[error("refused the host's token: {}", Escaped::line(.0))]
    Unauthenticated(String),
    /// It answered with another error status.
    #[error("returned {code:?}: {}", Escaped::line(message))]
    Status {
        /// The status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// Its answer cannot be used.
    #[error("returned an invalid response: {0}")]
    InvalidResponse(String),
    /// It was restarting or quarantined, and not ready in time.
    #[error("is not ready: {0}")]
    NotReady(String),
}

impl CallError {
    /// Classifies a gRPC status from a call. `UNAVAILABLE` is a lost
    /// connection only when the host's transport raised it (the status then
    /// carries the transport error as its source); a plugin that answers
    /// `UNAVAILABLE` itself is alive and said so, like any other status.
    pub fn from_status(status: &tonic::Status) -> CallError {
        let message = status.message().to_owned();
        let from_transport = std::error::Error::source(status).is_some();
        if let Some(refused) = std::error::Error::source(status).and_then(refusal_in) {
            return CallError::PeerRefused(refused.to_string());
        }
        match status.code() {
            tonic::Code::Unavailable if from_transport => CallError::Unavailable(message),
            tonic::Code::Unauthenticated => CallError::Unauthenticated(message),
            code => CallError::Status { code, message },
        }
    }
}

/// Renders a stderr tail after an error message, or nothing.
struct StderrTail<'a>(&'a [String]);

impl fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, " (it wrote nothing to stderr)");
        }
        write!(f, "; last stderr lines:")?;
        for line in self.0 {
            write!(f, "\n    | {}", Escaped::line(line))?;
        }
        Ok(())
    }
}

fn list(versions: &[u32]) -> String {
    let parts: Vec<String> = versions.iter().map(u32::to_string).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_plugin_and_the_cause() {
        let err = Error::new(
            "env-injector",
            ErrorKind::ExitedBeforeHandshake {
                status: "status 3".into(),
                stderr: vec!["fatal: no config".into()],
            },
        );
        assert_eq!(
            err.to_string(),
            "plugin env-injector: exited with status 3 before the handshake; last stderr lines:\n    | fatal: no config"
        );
        let err = Error::new(
            "p",
            ErrorKind::UnsupportedVersion {
                plugin: 99,
                host: vec![1],
            },
        );
        assert_eq!(
            err.to_string(),
            "plugin p: chose protocol version 99 in its handshake, but the host speaks only [1]"
        );
        let err = Error::new("p", CallError::Timeout(Duration::from_millis(250)));
        assert_eq!(err.to_string(), "plugin p: timed out after 250ms");
    }

    #[test]
    fn unavailable_is_a_lost_connection_only_when_the_transport_says_so() {
        let answered = tonic::Status::unavailable("draining, try later");
        assert_eq!(
            CallError::from_status(&answered),
            CallError::Status {
                code: tonic::Code::Unavailable,
                message: "draining, try later".into()
            }
        );
        let mut broken = tonic::Status::unavailable("error trying to connect");
        broken.set_source(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(
            CallError::from_status(&broken),
            CallError::Unavailable("error trying to connect".into())
        );
    }
}
