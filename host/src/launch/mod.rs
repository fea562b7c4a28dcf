//! One plugin process, from nothing to a ready channel: its private runtime
//! directory and the sweep of dead hosts' ones, its scrubbed environment,
//! the long-lived spawner thread, its process group and the reaper, the
//! handshake line, and the authenticated gRPC channel.

pub mod channel;
pub mod handshake;
pub mod process;

use std::sync::Arc;

use outboard_proto::handshake::{
    self as wire, ENV_MAGIC_COOKIE, ENV_PLUGIN_NAME, ENV_PROTOCOL_VERSIONS, ENV_SOCKET, ENV_TOKEN,
    MAGIC_COOKIE_VALUE, SUPPORTED_PROTOCOL_VERSIONS,
};
use rand::Rng;
use tokio::io::BufReader;

use crate::config::PluginSpec;
use crate::output::{self, Stream, Tail};

pub use channel::{Clients, connect};
pub use process::{Launch, PluginProcess, ProcStat, RuntimeDir, describe_exit, group_members};

/// Spawns `launch` and starts logging its stderr under `name`, remembering
/// the last lines; returns the process, its stdout (where the handshake
/// comes next) and the stderr tail.
pub async fn spawn_logged(
    name: &Arc<str>,
    launch: &Launch,
) -> std::io::Result<(PluginProcess, BufReader<tokio::process::ChildStdout>, Tail)> {
    let (process, pipes) = PluginProcess::spawn(launch).await?;
    let stderr = Tail::default();
    tokio::spawn(output::forward(
        name.clone(),
        Stream::Stderr,
        BufReader::new(pipes.stderr),
        Some(stderr.clone()),
    ));
    Ok((process, BufReader::new(pipes.stdout), stderr))
}

/// A fresh random token: 32 bytes as hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh runtime directory for `spec`: under its `runtime_base`, else
/// under `$OUTBOARD_RUNTIME_DIR` or `/tmp`.
pub fn runtime_dir_for(spec: &PluginSpec) -> std::io::Result<RuntimeDir> {
    match &spec.runtime_base {
        Some(base) => RuntimeDir::create_in(base),
        None => RuntimeDir::create(),
    }
}

/// What to spawn for `spec`, with the handshake variables for a launch on
/// `socket` with `token` (set last, so configuration cannot override them).
pub fn launch_for(spec: &PluginSpec, socket: &std::path::Path, token: &str) -> Launch {
    Launch {
        command: spec.command.clone(),
        args: spec.args.clone(),
        env: spec.env.clone(),
        handshake_env: vec![
            (ENV_MAGIC_COOKIE.into(), MAGIC_COOKIE_VALUE.into()),
            (
                ENV_PROTOCOL_VERSIONS.into(),
                wire::format_versions(SUPPORTED_PROTOCOL_VERSIONS),
            ),
            (ENV_SOCKET.into(), socket.display().to_string()),
            (ENV_TOKEN.into(), token.to_owned()),
            (ENV_PLUGIN_NAME.into(), spec.name.clone()),
        ],
        working_dir: spec.working_dir.clone(),
    }
}

/// A plugin's stdout or stderr forwarded as log records under its name.
pub use crate::output::forward as forward_output;
