//! `outboard invoke PHASE`: one phase on every plugin subscribed to it.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use outboard_host::{Report, Verdict, trace};
use outboard_proto::control::v1::InvokeRequest;
use outboard_proto::json::json_to_struct;
use serde_json::{Map, Value};

use super::{load_config, services, stop, unless_interrupted};
use crate::args::InvokeArgs;
use crate::client::{Daemon, call_error, traced};
use crate::exit::{EXIT_INTERRUPTED, EXIT_PHASE_FAILED, EXIT_PHASE_VETOED};
use crate::render;
use crate::signals::Signals;

/// Starts the plugins, dispatches `args.phase` with `args.context`, prints
/// the report and stops them. A signal while they start or while the phase
/// runs stops them the graceful way (exit 130); a signal while they stop
/// kills them at once.
pub(crate) async fn run(args: InvokeArgs, mut signals: Signals) -> anyhow::Result<u8> {
    if args.daemon.daemon {
        return on_daemon(args, signals).await;
    }
    let config = load_config(&args.source)?;
    let Some(context) =
        unless_interrupted(read_context(args.context.clone()), signals.recv()).await
    else {
        return Ok(EXIT_INTERRUPTED);
    };
    let context = parse_context(&context?)?;
    let services = services::open(
        args.state.state_dir.as_deref(),
        &config,
        services::scope(&args.source),
    )?;
    let Some(host) = unless_interrupted(services::start(&config, &services), signals.recv()).await
    else {
        return Ok(EXIT_INTERRUPTED);
    };
    let host = host?;
    if host.subscribers(&args.phase).is_empty() {
        no_subscriber(&args.phase);
    }
    let report = tokio::select! {
        // A traced caller's TRACEPARENT is the dispatch's parent, as for `run`.
        report = trace::under(trace::env_parent(), host.dispatch(&args.phase, context)) => Some(report),
        () = signals.recv() => {
            // Ready plugins get the whole stop sequence, not a SIGKILL,
            // unless a signal comes again.
            say!("outboard: interrupted; stopping plugins (signal again to kill them)");
            None
        }
    };
    // Event delivery stops before the plugins do: a delivery cut off by
    // their stop would count as a failed attempt.
    services.events().shutdown().await;
    let groups = stop::Groups::of(&host);
    stop::stop_or_kill(host.shutdown(), &groups, &mut signals).await;
    services.shutdown().await;
    let Some(report) = report else {
        return Ok(EXIT_INTERRUPTED);
    };
    publish(&report, args.json)
}

/// `invoke --daemon`: the same phase on a running daemon's plugins, with
/// the same output. A signal drops the call, which cancels it there.
async fn on_daemon(args: InvokeArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let work = async {
        let context = parse_context(&read_context(args.context.clone()).await?)?;
        let daemon = Daemon::connect(args.daemon.control_socket.as_deref()).await?;
        let request = InvokeRequest {
            phase: args.phase.clone(),
            context: Some(json_to_struct(&context)),
        };
        let response = daemon
            .rpc
            .clone()
            .invoke(traced(request))
            .await
            .map_err(|s| call_error(&daemon.socket, &s))?;
        let report = response.into_inner().report.with_context(|| {
            format!(
                "the daemon at {} answered without a report",
                daemon.socket.display()
            )
        })?;
        anyhow::Ok(outboard_daemon::wire::report_from_proto(report)?)
    };
    let Some(report) = unless_interrupted(work, signals.recv()).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let report = report?;
    // Entries list every subscriber, so none means nobody subscribes.
    if report.entries.is_empty() && report.passed() {
        no_subscriber(&args.phase);
    }
    publish(&report, args.json)
}

/// Not an error (the phase passes, the context unchanged), but most likely
/// a typo or a plugin that is not configured.
fn no_subscriber(phase: &str) {
    say!(
        "outboard: no plugin subscribes to phase {phase} (or every subscription is disabled); \
         it passes with the context unchanged"
    );
}

/// Prints `report` (JSON, or the text) and returns the status its verdict
/// gives.
fn publish(report: &Report, as_json: bool) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?).and_then(|()| out.flush())
    } else {
        render::report::phase(&mut out, report).and_then(|()| out.flush())
    }
    .context("cannot print the report on stdout")?;
    Ok(match report.verdict {
        Verdict::Passed => 0,
        Verdict::Vetoed { .. } => EXIT_PHASE_VETOED,
        // A verdict this command does not know yet is not a success.
        Verdict::Failed { .. } | _ => EXIT_PHASE_FAILED,
    })
}

/// The most `--context @FILE` may hold: a context is a few kilobytes; a
/// file that goes on (`/dev/zero`) must not fill the memory.
const MAX_CONTEXT_FILE: u64 = 16 << 20;

/// `--context` as given: the text itself, or, for `@FILE`, the file's text
/// (read on a thread of its own, so that a FIFO nobody writes to cannot
/// keep a signal from stopping `outboard`), with where it came from.
async fn read_context(arg: String) -> anyhow::Result<(String, String)> {
    let Some(file) = arg.strip_prefix('@').map(str::to_owned) else {
        return Ok((arg, "--context".to_owned()));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = file.clone();
    // A plain thread, not the blocking pool: the runtime would wait for a
    // blocked read at exit.
    std::thread::spawn(move || {
        let _ = tx.send(read_capped(&path));
    });
    let text = rx
        .await
        .map_err(|_| anyhow::anyhow!("reading --context file {file} failed"))?
        .with_context(|| format!("cannot read --context file {file}"))?;
    Ok((text, file))
}

/// The text of `path`, refused past [`MAX_CONTEXT_FILE`] bytes.
fn read_capped(path: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONTEXT_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONTEXT_FILE {
        bail!("larger than {} MiB", MAX_CONTEXT_FILE >> 20);
    }
    Ok(text)
}

/// Parses `--context`'s text (from [`read_context`]): a JSON object, nested
/// no deeper than a plugin can decode.
fn parse_context((text, origin): &(String, String)) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            outboard_proto::json::check_struct(&map).with_context(|| origin.clone())?;
            Ok(map)
        }
        Ok(other) => bail!("{origin}: the context must be a JSON object, not {other}"),
        Err(err) => bail!("{origin}: not valid JSON: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_must_be_an_object() {
        let given = |text: &str| (text.to_owned(), "--context".to_owned());
        assert!(parse_context(&given(r#"{"env": {}}"#)).is_ok());
        let err = parse_context(&given("[1]")).expect_err("array");
        assert_eq!(
            err.to_string(),
            "--context: the context must be a JSON object, not [1]"
        );
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(47), "]".repeat(47));
        let err = parse_context(&given(&deep)).expect_err("too deep");
        assert_eq!(
            format!("{err:#}"),
            format!(
                "--context: /a{} is nested too deep: more than 96 protobuf message levels \
                 (an object costs 3, an array 2), more than a plugin can decode",
                "/0".repeat(47)
            )
        );
        let err = parse_context(&given("{oops")).expect_err("bad json");
        assert!(
            err.to_string().starts_with("--context: not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn a_context_file_that_goes_on_is_refused() {
        let err = read_capped("/dev/zero").expect_err("endless");
        assert_eq!(err.to_string(), "larger than 16 MiB");
    }
}
