//! Measures spawn-to-ready for plugins: starts each given plugin executable
//! N times, one start at a time, stopping it in between, and prints the
//! percentiles of the time from spawn to ready (handshake, Describe,
//! Configure and health check done).
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p outboard-host --example startup -- -n 50 \
//!     target/release/env-injector target/release/job-timer target/release/resource-limiter
//! ```
//!
//! A plugin that needs a config gets it with `name=JSON` after its path,
//! e.g. `target/release/resource-limiter='{"memory":"512Mi","cpus":1}'`.
//! Every plugin is granted every permission it asks for (`grant = ["*"]`),
//! as `outboard conformance` does: a plugin that refuses to start without
//! one (`FAILED_PRECONDITION`, PROTOCOL.md §8.3) is measured all the same.

use std::time::Duration;

use anyhow::{Context, bail};
use outboard_host::Plugin;
use outboard_host::config::spec_for_command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut runs = 50usize;
    let mut plugins = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "-n" {
            runs = args.next().context("-n takes a count")?.parse()?;
        } else {
            plugins.push(arg);
        }
    }
    if plugins.is_empty() {
        bail!("usage: startup [-n RUNS] PLUGIN[='CONFIG JSON']...");
    }
    println!("spawn to ready, {runs} sequential starts each (ms)");
    println!(
        "{:<20} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "plugin", "min", "p50", "p90", "p99", "max"
    );
    for plugin in plugins {
        let (path, config) = match plugin.split_once('=') {
            Some((path, json)) => (path.to_owned(), serde_json::from_str(json)?),
            None => (plugin.clone(), serde_json::Map::new()),
        };
        let mut spec = spec_for_command(&[path])?;
        spec.config = config;
        spec.grant = vec!["*".to_owned()];
        let mut samples: Vec<Duration> = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Plugin::start(&spec).await?;
            samples.push(started.ready_after());
            started.stop().await;
        }
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_secs_f64() * 1000.0
        };
        println!(
            "{:<20} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            spec.name,
            at(0.0),
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
}
