//! `outboard logs NAME [-f] [-n N] [--since DURATION]`: a plugin's lines
//! from the daemon's ring buffer.

use std::io::Write;

use anyhow::Context;
use outboard_proto::control::v1::GetLogsRequest;

use super::unless_interrupted;
use crate::args::LogsArgs;
use crate::client::{Daemon, call_error};
use crate::exit::EXIT_INTERRUPTED;
use crate::render::logs::LogPrinter;
use crate::signals::Signals;

/// Prints the lines, and with `-f` every new one until a signal.
pub(crate) async fn run(args: LogsArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let connect = Daemon::connect(args.control.control_socket.as_deref());
    let Some(daemon) = unless_interrupted(connect, signals.recv()).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let daemon = daemon?;
    let request = GetLogsRequest {
        plugin: args.name.clone(),
        lines: args.lines.unwrap_or(0),
        since: args.since.map(outboard_daemon::wire::duration_to_proto),
        follow: args.follow,
    };
    let print = async {
        let mut stream = daemon
            .rpc
            .clone()
            .get_logs(request)
            .await
            .map_err(|s| call_error(&daemon.socket, &s))?
            .into_inner();
        let mut printer = LogPrinter::new(args.json);
        while let Some(response) = stream
            .message()
            .await
            .map_err(|s| call_error(&daemon.socket, &s))?
        {
            let Some(line) = response.line else { continue };
            let mut out = std::io::stdout().lock();
            printer
                .print(&mut out, &line)
                .and_then(|()| out.flush())
                .context("cannot print the log lines on stdout")?;
        }
        Ok(0)
    };
    match unless_interrupted(print, signals.recv()).await {
        Some(result) => result,
        None => Ok(EXIT_INTERRUPTED),
    }
}
