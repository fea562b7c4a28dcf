//! The handshake: what the host puts in a plugin's environment, the line the
//! plugin prints once its socket is bound, and how the two agree on a
//! protocol version. docs/PROTOCOL.md is the normative description.

use std::fmt;
use std::str::FromStr;

/// Environment variable carrying [`MAGIC_COOKIE_VALUE`]. A plugin started
/// without it was started by hand, not by a host.
pub const ENV_MAGIC_COOKIE: &str = "OUTBOARD_MAGIC_COOKIE";

/// The fixed value of [`ENV_MAGIC_COOKIE`]. It is not a secret: it only tells
/// a plugin that a host started it.
pub const MAGIC_COOKIE_VALUE: &str = "0b7f4a8e-outboard-plugin";

/// Environment variable listing the protocol versions the host speaks, as
/// decimal integers separated by commas (e.g. `1` or `1,2`).
pub const ENV_PROTOCOL_VERSIONS: &str = "OUTBOARD_PROTOCOL_VERSIONS";

/// Environment variable with the absolute path of the Unix socket the plugin
/// must bind.
pub const ENV_SOCKET: &str = "OUTBOARD_SOCKET";

/// Environment variable with the absolute path of the Unix socket on which a
/// plugin listing the `invoke-fastpath/1` feature serves the invoke fast
/// path (docs/PROTOCOL.md §18); absent when the host does not want it.
pub const ENV_FASTPATH_SOCKET: &str = "OUTBOARD_FASTPATH_SOCKET";

/// Environment variable with the token every host call carries.
pub const ENV_TOKEN: &str = "OUTBOARD_TOKEN";

/// Environment variable with the name the host knows the plugin by, for the
/// plugin's own logs.
pub const ENV_PLUGIN_NAME: &str = "OUTBOARD_PLUGIN_NAME";

/// Environment variable with the absolute path of the Unix socket on which
/// the host serves `outboard.v1.HostService` to this plugin instance; absent
/// when the host offers no host services (docs/PROTOCOL.md §17.1).
pub const ENV_HOST_SOCKET: &str = "OUTBOARD_HOST_SOCKET";

/// Environment variable with the token every call to the host socket
/// carries (as `authorization: Bearer <token>`); set with
/// [`ENV_HOST_SOCKET`] or not at all.
pub const ENV_HOST_TOKEN: &str = "OUTBOARD_HOST_TOKEN";

/// The gRPC metadata key carrying the token.
pub const TOKEN_METADATA_KEY: &str = "authorization";

/// The scheme before the token in [`TOKEN_METADATA_KEY`]'s value.
pub const TOKEN_SCHEME: &str = "Bearer ";

/// The protocol version this crate describes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every protocol version this crate's peers can speak, newest last.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[u32] = &[1];

/// The first field of every handshake line.
pub const HANDSHAKE_PREFIX: &str = "outboard|";

/// The line a plugin prints on stdout once its socket is bound:
/// `outboard|<protocol version>|unix|<socket path>|grpc`.
///
/// Fields after the fifth are reserved for later protocol versions and are
/// ignored when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeLine {
    /// The protocol version the plugin chose from the host's list.
    pub protocol_version: u32,
    /// The absolute path of the bound Unix socket.
    pub socket_path: String,
}

impl fmt::Display for HandshakeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{HANDSHAKE_PREFIX}{}|unix|{}|grpc",
            self.protocol_version, self.socket_path
        )
    }
}

/// Why a handshake line could not be parsed. Each message quotes what was
/// wrong so that the host's error can be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeParseError {
    /// The line does not start with `outboard|`.
    #[error("it does not start with {HANDSHAKE_PREFIX:?}")]
    MissingPrefix,
    /// The line does not have five fields (how many it has).
    #[error(
        "it has {0} '|'-separated fields, expected 5: outboard|<version>|unix|<socket path>|grpc"
    )]
    FieldCount(usize),
    /// The protocol version is not a positive integer (as printed).
    #[error("protocol version {0:?} is not a positive integer")]
    Version(String),
    /// The network is not `unix` (as printed).
    #[error("network {0:?} is not supported, expected \"unix\"")]
    Network(String),
    /// The socket path is not absolute (as printed).
    #[error("socket path {0:?} is not an absolute path")]
    Address(String),
    /// The transport is not `grpc` (as printed).
    #[error("transport {0:?} is not supported, expected \"grpc\"")]
    Transport(String),
}

impl FromStr for HandshakeLine {
    type Err = HandshakeParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim_end_matches(['\r', '\n']);
        if !line.starts_with(HANDSHAKE_PREFIX) {
            return Err(HandshakeParseError::MissingPrefix);
        }
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 5 {
            return Err(HandshakeParseError::FieldCount(fields.len()));
        }
        let protocol_version = match fields[1].parse::<u32>() {
            Ok(v) if v > 0 => v,
            _ => return Err(HandshakeParseError::Version(fields[1].to_owned())),
        };
        if fields[2] != "unix" {
            return Err(HandshakeParseError::Network(fields[2].to_owned()));
        }
        if !fields[3].starts_with('/') {
            return Err(HandshakeParseError::Address(fields[3].to_owned()));
        }
        if fields[4] != "grpc" {
            return Err(HandshakeParseError::Transport(fields[4].to_owned()));
        }
        Ok(HandshakeLine {
            protocol_version,
            socket_path: fields[3].to_owned(),
        })
    }
}

/// Formats a version list the way [`ENV_PROTOCOL_VERSIONS`] carries it.
pub fn format_versions(versions: &[u32]) -> String {
    let parts: Vec<String> = versions.iter().map(u32::to_string).collect();
    parts.join(",")
}

/// Parses [`ENV_PROTOCOL_VERSIONS`]. Blank entries and surrounding spaces are
/// tolerated; anything else that is not a positive integer is an error that
/// quotes the entry.
pub fn parse_versions(list: &str) -> Result<Vec<u32>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<u32>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(format!("{s:?} is not a positive integer")),
        })
        .collect()
}

/// The newest version both sides speak, if any.
pub fn negotiate(host: &[u32], plugin: &[u32]) -> Option<u32> {
    host.iter().filter(|v| plugin.contains(v)).max().copied()
}

/// The metadata value carrying `token`.
pub fn bearer(token: &str) -> String {
    format!("{TOKEN_SCHEME}{token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips() {
        let line = HandshakeLine {
            protocol_version: 1,
            socket_path: "/tmp/ob-x/plugin.sock".into(),
        };
        assert_eq!(
            line.to_string(),
            "outboard|1|unix|/tmp/ob-x/plugin.sock|grpc"
        );
        assert_eq!(line.to_string().parse::<HandshakeLine>(), Ok(line));
    }

    #[test]
    fn line_tolerates_crlf_and_extra_fields() {
        let line: HandshakeLine = "outboard|2|unix|/s|grpc|future\r\n".parse().expect("valid");
        assert_eq!(line.protocol_version, 2);
        assert_eq!(line.socket_path, "/s");
    }

    #[test]
    fn line_errors_say_what_is_wrong() {
        use HandshakeParseError::*;
        let cases = [
            ("hello", MissingPrefix),
            ("outboard|1|unix|/s", FieldCount(4)),
            ("outboard|one|unix|/s|grpc", Version("one".into())),
            ("outboard|0|unix|/s|grpc", Version("0".into())),
            ("outboard|1|tcp|/s|grpc", Network("tcp".into())),
            ("outboard|1|unix|rel.sock|grpc", Address("rel.sock".into())),
            ("outboard|1|unix|/s|http", Transport("http".into())),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<HandshakeLine>(), Err(want), "{input}");
        }
    }

    #[test]
    fn versions_parse_and_negotiate() {
        assert_eq!(parse_versions("1, 2,,3"), Ok(vec![1, 2, 3]));
        assert!(parse_versions("1,x").is_err());
        assert_eq!(format_versions(&[1, 2]), "1,2");
        assert_eq!(negotiate(&[1, 2, 3], &[2, 3, 4]), Some(3));
        assert_eq!(negotiate(&[1], &[2]), None);
    }
}
