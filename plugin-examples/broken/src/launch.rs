//! What the host puts in a plugin's environment: where to bind, the token
//! every call must carry, and the protocol versions it speaks.

use std::path::PathBuf;

use outboard_proto::handshake;

/// What the host put in the environment.
#[derive(Debug)]
pub(crate) struct Launch {
    /// Where to bind.
    pub(crate) socket: PathBuf,
    /// What every call must carry.
    pub(crate) token: String,
    /// The newest version both sides speak.
    pub(crate) protocol_version: u32,
    /// Where to serve the invoke fast path, if the host offers it.
    pub(crate) fastpath: Option<PathBuf>,
}

impl Launch {
    /// Reads the handshake variables and negotiates the protocol version.
    pub(crate) fn from_env() -> Result<Launch, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set"))
        };
        let socket = PathBuf::from(var(handshake::ENV_SOCKET)?);
        if !socket.is_absolute() {
            return Err(format!(
                "{} {} is not an absolute path",
                handshake::ENV_SOCKET,
                socket.display()
            ));
        }
        let token = var(handshake::ENV_TOKEN)?;
        let offered = var(handshake::ENV_PROTOCOL_VERSIONS)?;
        let host_versions = handshake::parse_versions(&offered)
            .map_err(|e| format!("{}: {e}", handshake::ENV_PROTOCOL_VERSIONS))?;
        let protocol_version = handshake::negotiate(
            &host_versions,
            handshake::SUPPORTED_PROTOCOL_VERSIONS,
        )
        .ok_or_else(|| {
            format!(
                "no protocol version in common: the host speaks {offered}, this plugin speaks {}",
                handshake::format_versions(handshake::SUPPORTED_PROTOCOL_VERSIONS)
            )
        })?;
        let fastpath = std::env::var_os(handshake::ENV_FASTPATH_SOCKET)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ok(Launch {
            socket,
            token,
            protocol_version,
            fastpath,
        })
    }
}
