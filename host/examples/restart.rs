//! Measures supervision: how long from SIGKILL to ready again, and how long
//! until a plugin that fails at every start is quarantined.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p outboard-host --example restart -- -n 200 target/release/stress
//! ```
//!
//! Restart latency: one supervised plugin is SIGKILLed `-n` times, each kill
//! after the previous restart is ready; the time is from the kill to the
//! supervisor reporting a new ready instance (exit noticed, process group
//! reaped, spawn, handshake, Describe, Configure, health check). Each kill
//! counts as a first restart (which is immediate by design), since the
//! backoff here resets after 1 ms of uptime.
//!
//! Quarantine: the plugin is wrapped in a script that fails at start while
//! a marker file exists; with the default supervision settings (5 starts in
//! 60 s, backoff 100 ms doubling), the time is from the kill to `failed`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outboard_host::Host;
use outboard_host::HostConfig;
use outboard_host::State;
use outboard_host::config::spec_for_command;

/// Sends SIGKILL to `pid`.
fn kill(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Prints the distribution of `samples` in milliseconds on one line.
fn summary(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    println!(
        "{label:<34} n={:<4} min {:>7.2}  p50 {:>7.2}  p90 {:>7.2}  p99 {:>7.2}  max {:>7.2} ms",
        samples.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (kills, plugin) = parse_args()?;
    let plugin = std::path::absolute(plugin)?;
    restart_latency(&plugin, kills).await?;
    time_to_quarantine(&plugin).await
}

/// `[-n KILLS] PLUGIN`: the number of kills (200 by default) and the
/// plugin's command.
fn parse_args() -> anyhow::Result<(usize, String)> {
    let mut args = std::env::args().skip(1);
    let mut kills = 200usize;
    let mut plugin = None;
    while let Some(arg) = args.next() {
        if arg == "-n" {
            kills = args.next().context("-n takes a count")?.parse()?;
        } else {
            plugin = Some(arg);
        }
    }
    let Some(plugin) = plugin else {
        bail!("usage: restart [-n KILLS] PLUGIN");
    };
    Ok((kills, plugin))
}

/// SIGKILLs one supervised plugin `kills` times, each time once the
/// previous restart is ready, and prints how long each took to be ready
/// again.
async fn restart_latency(plugin: &Path, kills: usize) -> anyhow::Result<()> {
    let mut spec = spec_for_command(&[plugin.display().to_string()])?;
    spec.name = "victim".into();
    spec.supervision.backoff_reset_after = Duration::from_millis(1);
    spec.supervision.crash_loop_starts = u32::MAX;
    let host = Host::start(&HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    })
    .await?;
    let sup = host.plugin("victim").context("the plugin")?.clone();
    let mut samples = Vec::with_capacity(kills);
    for _ in 0..kills {
        let old = sup.status().pid.context("ready")?;
        let killed = Instant::now();
        kill(old);
        loop {
            let status = sup.status();
            if status.state == State::Ready && status.pid.is_some_and(|p| p != old) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(killed.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    summary("SIGKILL -> ready again", &mut samples);
    host.stop().await;
    Ok(())
}

/// Ten times: makes the plugin fail at every start, SIGKILLs it and times
/// how long the default supervision takes to quarantine it; then lets it
/// start again.
async fn time_to_quarantine(plugin: &Path) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let marker = scratch.path().join("fail");
    let script = failing_wrapper(scratch.path(), &marker, plugin)?;
    let mut spec = spec_for_command(&[script.display().to_string()])?;
    spec.name = "flappy".into();
    let host = Host::start(&HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    })
    .await?;
    let sup = host.plugin("flappy").context("the plugin")?.clone();
    let mut samples = Vec::new();
    let mut reason = String::new();
    for _ in 0..10 {
        std::fs::write(&marker, "")?;
        let killed = Instant::now();
        kill(sup.status().pid.context("ready")?);
        if !sup
            .wait_for_state(State::Failed, Duration::from_secs(60))
            .await
        {
            bail!("not quarantined within 60 s: {:?}", sup.status());
        }
        samples.push(killed.elapsed());
        reason = sup.status().reason.unwrap_or_default();
        std::fs::remove_file(&marker)?;
        sup.restart();
        if !sup
            .wait_for_state(State::Ready, Duration::from_secs(10))
            .await
        {
            bail!("not ready after restart: {:?}", sup.status());
        }
    }
    summary("SIGKILL -> quarantined (defaults)", &mut samples);
    println!("quarantine reason: {reason}");
    host.stop().await;
    Ok(())
}

/// Writes `dir/plugin.sh`, which fails at start while `marker` exists and
/// otherwise runs `plugin`.
fn failing_wrapper(dir: &Path, marker: &Path, plugin: &Path) -> anyhow::Result<PathBuf> {
    let script = dir.join("plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -e {m} ] && {{ echo 'cannot start: {m} exists' >&2; exit 3; }}\nexec {p}\n",
            m = marker.display(),
            p = plugin.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}
