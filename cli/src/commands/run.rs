//! `outboard run -- CMD`: a command as a job, the job profile's phases
//! around it. Host errors exit 125 here (`job::EXIT_HOST_ERROR`), since the
//! command's own statuses 1 to 120 must stay distinguishable.

use std::io::Write;
use std::path::Path;

use outboard_host::{Host, job};
use serde_json::Value;

use super::load_config;
use crate::args::RunArgs;
use crate::render;
use crate::signals::Signals;

/// Runs the job; returns the status to exit with. The first signal stops
/// the job the orderly way (on_error and cleanup still run); a second one
/// cuts it short.
pub(crate) async fn run(args: RunArgs, mut signals: Signals) -> u8 {
    let config = match load_config(&args.source) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("outboard: {err:#}");
            return job::EXIT_HOST_ERROR;
        }
    };
    let host = tokio::select! {
        host = Host::start(&config) => host,
        () = signals.recv() => {
            eprintln!("outboard: interrupted");
            return job::EXIT_INTERRUPTED;
        }
    };
    let host = match host {
        Ok(host) => host,
        Err(err) => {
            eprintln!("outboard: {err}");
            return job::EXIT_HOST_ERROR;
        }
    };
    let spec = job::Job {
        command: args.command,
        env: own_environment(),
        dry_run: args.dry_run,
    };
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    let two_signals = async {
        signals.recv().await;
        eprintln!(
            "outboard: stopping the job; on_error and cleanup still run (signal again to cut them short)"
        );
        let _ = interrupt.send(true);
        signals.recv().await;
    };
    let report = tokio::select! {
        report = job::run(&host, spec, interrupted) => report,
        () = two_signals => {
            eprintln!("outboard: interrupted twice; stopping plugins now");
            host.stop().await;
            return job::EXIT_INTERRUPTED;
        }
    };
    host.stop().await;
    publish(&report, args.json, args.report.as_deref())
}

/// `outboard`'s own environment, as the first phase's `context.env`.
fn own_environment() -> serde_json::Map<String, Value> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

/// The summary on stderr, the report on stdout (`--json`) and in
/// `report_file`; returns the job's exit status, or 125 if the report file
/// of a job that succeeded could not be written.
fn publish(report: &job::JobReport, as_json: bool, report_file: Option<&Path>) -> u8 {
    let _ = render::job::summary(&mut std::io::stderr().lock(), report);
    if as_json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => {
                if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
                    eprintln!("outboard: cannot print the report: {e}");
                }
            }
            Err(e) => eprintln!("outboard: cannot print the report: {e}"),
        }
    }
    if let Some(path) = report_file
        && let Err(err) = write_report(path, report)
    {
        eprintln!(
            "outboard: cannot write the report to {}: {err:#}",
            path.display()
        );
        // Whoever asked for the file relies on it: a job that succeeded
        // without its report is a host error.
        if report.exit_code == 0 {
            return job::EXIT_HOST_ERROR;
        }
    }
    report.exit_code
}

/// Writes `report` to a temporary file beside `path`, then renames it over
/// `path`, so a reader never sees half a report.
fn write_report(path: &Path, report: &job::JobReport) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut file, report)?;
    file.write_all(b"\n")?;
    file.persist(path)?;
    Ok(())
}
