//! `outboard run -- CMD`: a command as a job, the job profile's phases
//! around it. Host errors exit 125 here (`job::EXIT_HOST_ERROR`), since the
//! command's own statuses 1 to 120 must stay distinguishable.

use std::io::Write;
use std::path::Path;

use outboard_host::job;
use serde_json::Value;

use outboard_host::Escaped;

use super::{job_events, load_config, report_file, services, stop};
use crate::args::RunArgs;
use crate::client::Daemon;
use crate::client::DaemonPhases;
use crate::render;
use crate::signals::Signals;

/// How long a job's host waits, once the job is over, for its plugins' event
/// deliveries that are due (`job.finished` among them).
const EVENTS_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the job; returns the status to exit with. The first signal stops
/// the job the orderly way (on_error and cleanup still run); a second one
/// cuts it short.
pub(crate) async fn run(args: RunArgs, mut signals: Signals) -> u8 {
    let env = match own_environment() {
        Ok(env) => env,
        Err(err) => {
            say!("outboard: {err:#}");
            return job::EXIT_HOST_ERROR;
        }
    };
    if args.daemon.daemon {
        return on_daemon(args, env, signals).await;
    }
    let config = match load_config(&args.source) {
        Ok(config) => config,
        Err(err) => {
            say!("outboard: {err:#}");
            return job::EXIT_HOST_ERROR;
        }
    };
    let services = match services::open(
        args.state.state_dir.as_deref(),
        &config,
        services::scope(&args.source),
    ) {
        Ok(services) => services,
        Err(err) => {
            say!("outboard: {err:#}");
            return job::EXIT_HOST_ERROR;
        }
    };
    let host = tokio::select! {
        host = services::start(&config, &services) => host,
        () = signals.recv() => {
            say!("outboard: interrupted");
            return job::EXIT_INTERRUPTED;
        }
    };
    let host = match host {
        Ok(host) => host,
        Err(err) => {
            say!("outboard: {}", Escaped::block(&err.to_string()));
            return job::EXIT_HOST_ERROR;
        }
    };
    let phases = job_events::Evented::new(&host, services.events(), args.command.clone());
    let spec = job::Job {
        command: args.command,
        env,
        dry_run: args.dry_run,
    };
    let report = run_job(&phases, spec, &mut signals).await;
    if let Some(report) = &report {
        job_events::finished(services.events(), report).await;
        // The host lives for this job only: its plugins' event deliveries
        // due now get a bounded chance before it stops; the rest stay
        // pending for the next host of this configuration.
        services.events().settle(EVENTS_SETTLE).await;
        // Then delivery stops while the plugins still answer: a delivery
        // cut off by their stop would count as a failed attempt.
        services.events().shutdown().await;
    }
    let groups = stop::Groups::of(&host);
    let Some(report) = report else {
        say!("outboard: interrupted twice; killing plugins now");
        stop::kill_then_stop(host.shutdown(), &groups, &mut signals).await;
        services.shutdown().await;
        return job::EXIT_INTERRUPTED;
    };
    // The job is decided: a signal now only cuts the plugins' stop short,
    // and the report still comes out with the job's own status.
    stop::stop_or_kill(host.shutdown(), &groups, &mut signals).await;
    services.shutdown().await;
    publish(&report, args.json, args.report.as_deref())
}

/// `run --daemon`: the same job, its phases dispatched on a running
/// daemon's plugins; the command runs here as it would standalone. The
/// first signal stops the job the orderly way (the phase in flight is
/// cancelled, on_error and cleanup still run on the daemon); a second one
/// cuts it short. Once the job is over, `job::run` records its result with
/// the daemon (RecordJob, through [`DaemonPhases`]), which counts jobs by
/// result; a job cut short by a second signal is not recorded.
async fn on_daemon(args: RunArgs, env: serde_json::Map<String, Value>, mut signals: Signals) -> u8 {
    let connect = Daemon::connect(args.daemon.control_socket.as_deref());
    let daemon = tokio::select! {
        daemon = connect => daemon,
        () = signals.recv() => {
            say!("outboard: interrupted");
            return job::EXIT_INTERRUPTED;
        }
    };
    let phases = match daemon {
        Ok(daemon) => DaemonPhases {
            daemon,
            command: args.command.clone(),
            began: std::time::Instant::now(),
        },
        Err(err) => {
            say!("outboard: {}", Escaped::block(&format!("{err:#}")));
            return job::EXIT_HOST_ERROR;
        }
    };
    let spec = job::Job {
        command: args.command,
        env,
        dry_run: args.dry_run,
    };
    let Some(report) = run_job(&phases, spec, &mut signals).await else {
        say!("outboard: interrupted twice");
        return job::EXIT_INTERRUPTED;
    };
    publish(&report, args.json, args.report.as_deref())
}

/// Runs the job on `phases`; the first signal stops it the orderly way,
/// a second one drops it (`None`).
async fn run_job(
    phases: &impl job::Phases,
    spec: job::Job,
    signals: &mut Signals,
) -> Option<job::JobReport> {
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    let two_signals = async {
        signals.recv().await;
        say!(
            "outboard: stopping the job; on_error and cleanup still run (signal again to cut them short)"
        );
        let _ = interrupt.send(true);
        signals.recv().await;
    };
    tokio::select! {
        report = job::run(phases, spec, interrupted) => Some(report),
        () = two_signals => None,
    }
}

/// `outboard`'s own environment, as the first phase's `context.env`. The
/// context is JSON, whose strings are UTF-8: a variable whose name or
/// value is not cannot reach the command unchanged, so the job is refused,
/// naming it, rather than passing on a mangled value.
fn own_environment() -> anyhow::Result<serde_json::Map<String, Value>> {
    std::env::vars_os()
        .map(|(k, v)| match (k.to_str(), v.to_str()) {
            (Some(k), Some(v)) => Ok((k.to_owned(), Value::String(v.to_owned()))),
            _ => anyhow::bail!(
                "the environment variable {} is not UTF-8 (name or value); the job's context \
                 cannot carry it unchanged: unset it or set it to UTF-8 text",
                Escaped::line(&k.to_string_lossy())
            ),
        })
        .collect()
}

/// The summary on stderr, the report on stdout (`--json`) and in
/// `report_file`; returns the job's exit status, or 125 if the report of a
/// job that succeeded could not be printed or written.
fn publish(report: &job::JobReport, as_json: bool, report_file: Option<&Path>) -> u8 {
    let _ = render::job::summary(&mut std::io::stderr().lock(), report);
    let mut failed = false;
    if as_json && let Err(err) = print_json(report) {
        say!("outboard: cannot print the report on stdout: {err:#}");
        failed = true;
    }
    if let Some(path) = report_file
        && let Err(err) = report_file::write_json(path, report)
    {
        say!(
            "outboard: cannot write the report to {}: {err:#}",
            path.display()
        );
        failed = true;
    }
    // Whoever asked for the report relies on it: a job that succeeded
    // without it is a host error; a failed job keeps its own status.
    if failed && report.exit_code == 0 {
        return job::EXIT_HOST_ERROR;
    }
    report.exit_code
}

/// The report as JSON on stdout, flushed: a full disk or a closed pipe is
/// an error here, not lost at exit.
fn print_json(report: &job::JobReport) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}
