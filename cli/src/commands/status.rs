//! `outboard status [NAME] [--watch]`: a running daemon's plugins.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use outboard_proto::control::v1::watch_response::Event;
use outboard_proto::control::v1::{GetStatusRequest, WatchRequest, WatchResponse};

use super::unless_interrupted;
use crate::args::StatusArgs;
use crate::client::{Daemon, call_error};
use crate::exit::EXIT_INTERRUPTED;
use crate::render::status::{self, StatusView};
use crate::signals::Signals;

/// Prints the status once, or (`--watch`) again on every change until a
/// signal.
pub(crate) async fn run(args: StatusArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let connect = Daemon::connect(args.control.control_socket.as_deref());
    let Some(daemon) = unless_interrupted(connect, signals.recv()).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let daemon = daemon?;
    let name = args.name.clone().unwrap_or_default();
    if !args.watch {
        let Some(view) = unless_interrupted(fetch(&daemon, &name), signals.recv()).await else {
            return Ok(EXIT_INTERRUPTED);
        };
        print(&view?, args.json, Redraw::Once)?;
        return Ok(0);
    }
    let watched = async {
        let mut rpc = daemon.rpc.clone();
        let request = WatchRequest {
            plugin: name.clone(),
            follow: true,
        };
        let mut stream = rpc
            .watch(request)
            .await
            .map_err(|s| call_error(&daemon.socket, &s))?
            .into_inner();
        let redraw = if std::io::stdout().is_terminal() {
            Redraw::Clear
        } else {
            Redraw::Append
        };
        print(&fetch(&daemon, &name).await?, args.json, redraw)?;
        let mut next = stream.message().await;
        loop {
            let mut worth = match next {
                Ok(Some(event)) => worth_redrawing(&event, redraw),
                Ok(None) => {
                    anyhow::bail!("the daemon at {} ended the watch", daemon.socket.display())
                }
                Err(s) => return Err(call_error(&daemon.socket, &s)),
            };
            // Events that came together make one redraw; the first that
            // is not an event (an end, an error) is dealt with above.
            let pending = loop {
                match ready_now(&mut stream) {
                    Some(Ok(Some(event))) => worth |= worth_redrawing(&event, redraw),
                    other => break other,
                }
            };
            if worth {
                print(&fetch(&daemon, &name).await?, args.json, redraw)?;
            }
            next = match pending {
                Some(item) => item,
                None => stream.message().await,
            };
        }
    };
    match unless_interrupted(watched, signals.recv()).await {
        Some(result) => result,
        None => Ok(EXIT_INTERRUPTED),
    }
}

/// Whether `event` calls for a new status. On a terminal every event
/// redraws the screen in place; into a pipe or a file each status is
/// appended, so only a state change, a reload or missed events add one,
/// not every dispatch (its counts show in the next one).
fn worth_redrawing(event: &WatchResponse, redraw: Redraw) -> bool {
    redraw != Redraw::Append || !matches!(event.event, Some(Event::Dispatch(_)))
}

/// The next message if one is already there, without waiting.
fn ready_now<T>(stream: &mut tonic::Streaming<T>) -> Option<Result<Option<T>, tonic::Status>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let next = std::pin::pin!(stream.message());
    match next.poll(&mut cx) {
        std::task::Poll::Ready(item) => Some(item),
        std::task::Poll::Pending => None,
    }
}

/// The status of `name` (every plugin when empty).
async fn fetch(daemon: &Daemon, name: &str) -> anyhow::Result<StatusView> {
    let request = GetStatusRequest {
        plugin: name.to_owned(),
    };
    let mut rpc = daemon.rpc.clone();
    let response = daemon.promptly(rpc.get_status(request)).await?;
    Ok(StatusView::of(&response.into_inner()))
}

/// How a status is drawn again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redraw {
    /// It is not: `status` without `--watch`.
    Once,
    /// Over the last one: a terminal's screen is cleared first.
    Clear,
    /// Below the last one, after a blank line (a pipe, a file).
    Append,
}

/// Prints one status: a JSON line, or the text.
fn print(view: &StatusView, as_json: bool, redraw: Redraw) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string(view)?)
    } else {
        if redraw == Redraw::Clear {
            write!(out, "\x1b[H\x1b[2J")?;
        }
        status::status(&mut out, view).and_then(|()| {
            if redraw == Redraw::Append {
                writeln!(out)?;
            }
            Ok(())
        })
    }
    .and_then(|()| out.flush())
    .context("cannot print the status on stdout")
}

#[cfg(test)]
mod tests {
    use outboard_proto::control::v1 as wire;

    use super::*;

    #[test]
    fn into_a_pipe_a_dispatch_alone_appends_no_status() {
        let at = |event| WatchResponse {
            time: None,
            event: Some(event),
        };
        let dispatch = at(Event::Dispatch(wire::DispatchEvent::default()));
        let change = at(Event::PluginStatus(wire::PluginStatus::default()));
        assert!(!worth_redrawing(&dispatch, Redraw::Append));
        assert!(worth_redrawing(&change, Redraw::Append));
        assert!(worth_redrawing(&dispatch, Redraw::Clear));
    }
}
