//! `outboard conformance -- CMD`: the battery's results for people (a
//! table) or scripts (JSON).

use std::io::Write;

use anyhow::Context as _;
use outboard_conformance::{Options, run as run_checks};
use serde_json::Value;

use crate::args::ConformanceArgs;
use crate::exit::EXIT_CHECK_FAILED;
use crate::render::checks::{summary, table};

/// Runs the checks, prints them (a table, or JSON with the summary on
/// stderr), and returns 0 if all passed, else 1.
pub(crate) async fn run(args: ConformanceArgs) -> anyhow::Result<u8> {
    let spec = outboard_host::config::spec_for_command(&args.command)?;
    let config = match args.config.as_deref() {
        None => None,
        Some(text) => match serde_json::from_str(text).context("--config is not JSON")? {
            Value::Object(map) => Some(map),
            _ => anyhow::bail!("--config must be a JSON object"),
        },
    };
    let options = Options {
        spec,
        handshake_timeout: args.handshake_timeout,
        config,
    };
    let checks = run_checks(&options).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&checks)?)?;
        eprintln!("{}", summary(&checks));
    } else {
        write!(out, "{}", table(&checks))?;
    }
    Ok(if checks.iter().all(|c| c.passed) {
        0
    } else {
        EXIT_CHECK_FAILED
    })
}
