//! `outboard events [-f]`: the daemon's Watch stream, one line per event;
//! with `--dead` or `--retry`, its dead letters (`dead_letters`).

use std::io::Write;

use anyhow::Context;
use outboard_proto::control::v1::WatchRequest;

use super::unless_interrupted;
use crate::args::EventsArgs;
use crate::client::{Daemon, call_error};
use crate::exit::EXIT_INTERRUPTED;
use crate::render;
use crate::signals::Signals;

/// Prints the recent events and the snapshot, and with `-f` every new one
/// until a signal.
pub(crate) async fn run(args: EventsArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let work = async {
        if args.dead {
            return super::dead_letters::list(&args).await;
        }
        if let Some(id) = &args.retry {
            return super::dead_letters::retry(&args, id).await;
        }
        let daemon = Daemon::connect(args.control.control_socket.as_deref()).await?;
        let request = WatchRequest {
            plugin: args.plugin.clone().unwrap_or_default(),
            follow: args.follow,
        };
        let failed = |s: tonic::Status| call_error(&daemon.socket, &s);
        let mut stream = daemon
            .rpc
            .clone()
            .watch(request)
            .await
            .map_err(failed)?
            .into_inner();
        while let Some(msg) = stream.message().await.map_err(failed)? {
            let mut out = std::io::stdout().lock();
            render::events::event(&mut out, &msg, args.json)?;
            out.flush().context("cannot print the events on stdout")?;
        }
        Ok(0)
    };
    match unless_interrupted(work, signals.recv()).await {
        Some(result) => result,
        None => Ok(EXIT_INTERRUPTED),
    }
}
