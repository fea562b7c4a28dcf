//! A running daemon's plugins, as `status`, `restart`, `stop` and `start`
//! print them: a table for people, the same rows as JSON for scripts. The
//! rows are built from the control API's messages here, so the JSON shape
//! is this module's, not the wire's.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use outboard_host::Escaped;
use outboard_proto::control::v1 as wire;
use serde::Serialize;

pub(crate) use super::sandbox::WallView;

/// The daemon itself, for `status --json`.
#[derive(Debug, Serialize)]
pub(crate) struct DaemonView {
    /// Its process.
    pub(crate) pid: u32,
    /// The outboard version it runs.
    pub(crate) version: String,
    /// When it started (RFC 3339, UTC).
    pub(crate) started_at: Option<String>,
    /// What it reads on a reload.
    pub(crate) config_source: String,
    /// Its control socket.
    pub(crate) control_socket: String,
    /// Reloads applied since it started.
    pub(crate) reloads: u64,
    /// Dispatches under way.
    pub(crate) in_flight: u64,
    /// Jobs whose phases ran on it, by result (every result, zeros
    /// included).
    pub(crate) jobs: BTreeMap<String, u64>,
}

/// One plugin, for every command that shows plugins.
#[derive(Debug, Serialize)]
pub(crate) struct PluginView {
    /// Its name.
    pub(crate) name: String,
    /// Its version, from its manifest.
    pub(crate) version: String,
    /// `starting`, `ready`, `unhealthy`, `restarting`, `failed`,
    /// `stopping`, `stopped`, `disabled` (or `unknown`).
    pub(crate) state: &'static str,
    /// Its process; `None` when none runs.
    pub(crate) pid: Option<u32>,
    /// Milliseconds since its instance became ready.
    pub(crate) uptime_ms: Option<u64>,
    /// True if the daemon's readiness does not wait for it.
    pub(crate) optional: bool,
    /// How `Invoke` reaches it: `"fastpath"` or `"grpc"`; `None` when no
    /// instance runs (or the daemon does not say).
    pub(crate) invoke_path: Option<String>,
    /// Starts after the first since the daemon started.
    pub(crate) restarts: u32,
    /// Those by reason (every reason, zeros included).
    pub(crate) restarts_by_reason: BTreeMap<String, u64>,
    /// Why it was last started again.
    pub(crate) last_restart_reason: Option<String>,
    /// Spawn to ready of its latest start, in ms.
    pub(crate) last_start_ms: Option<f64>,
    /// Log lines the daemon recorded from it.
    pub(crate) log_lines: u64,
    /// Of those, lines evicted from its log ring (no longer readable).
    pub(crate) log_lines_dropped: u64,
    /// Why it last failed or exited.
    pub(crate) last_exit_reason: Option<String>,
    /// Its last stderr lines when it last failed.
    pub(crate) last_stderr: Vec<String>,
    /// The phases it serves.
    pub(crate) phases: Vec<String>,
    /// Its calls by outcome.
    pub(crate) invocations: Invocations,
    /// Median call latency over the recent window, in ms.
    pub(crate) latency_p50_ms: Option<f64>,
    /// 99th percentile call latency over the recent window, in ms.
    pub(crate) latency_p99_ms: Option<f64>,
    /// How many recent calls the latencies cover.
    pub(crate) latency_window: u32,
    /// Resident memory of its process group; `None` until first measured
    /// (no process runs, or it was not sampled yet).
    pub(crate) rss_bytes: Option<u64>,
    /// CPU use of its process group, percent of one core; `None` when
    /// `rss_bytes` is.
    pub(crate) cpu_percent: Option<f64>,
    /// CPU time of its process group's live processes, in ms.
    pub(crate) cpu_time_ms: u64,
    /// The walls around its latest start, as the daemon's machine enforces
    /// them; empty before any start.
    pub(crate) sandbox: Vec<WallView>,
}

/// Calls by outcome; each call counts once.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Invocations {
    /// Continued.
    pub(crate) ok: u64,
    /// Vetoed the phase.
    pub(crate) vetoed: u64,
    /// Failed otherwise (an error, unavailable, a conflict, a bad patch).
    pub(crate) failed: u64,
    /// Did not answer in time.
    pub(crate) timed_out: u64,
    /// Its process died during the call.
    pub(crate) crashed: u64,
    /// Not called: the phase had already stopped.
    pub(crate) skipped: u64,
}

impl DaemonView {
    /// The view of the daemon's status message.
    pub(crate) fn of(d: &wire::DaemonStatus) -> DaemonView {
        DaemonView {
            pid: d.pid,
            version: d.version.clone(),
            started_at: d
                .started_at
                .and_then(|t| SystemTime::try_from(t).ok())
                .map(rfc3339),
            config_source: d.config_source.clone(),
            control_socket: d.control_socket.clone(),
            reloads: d.reloads,
            in_flight: d.in_flight,
            jobs: d.jobs.clone().into_iter().collect(),
        }
    }
}

impl PluginView {
    /// The view of one plugin's status message.
    pub(crate) fn of(p: &wire::PluginStatus) -> PluginView {
        let counts = p.invocations.unwrap_or_default();
        let window = p.latency_window;
        let latency =
            |d: Option<prost_types::Duration>| d.filter(|_| window > 0).and_then(duration).map(ms);
        // A measured process group has resident memory: zero means that
        // nothing was measured, and its CPU figure means nothing either.
        let measured = p.pid != 0 && p.rss_bytes != 0;
        PluginView {
            name: p.name.clone(),
            version: p.version.clone(),
            state: state_name(p.state),
            pid: (p.pid != 0).then_some(p.pid),
            uptime_ms: p.uptime.and_then(duration).map(|d| d.as_millis() as u64),
            optional: p.optional,
            invoke_path: (!p.invoke_path.is_empty()).then(|| p.invoke_path.clone()),
            restarts: p.restarts,
            restarts_by_reason: p.restarts_by_reason.clone().into_iter().collect(),
            last_restart_reason: (!p.last_restart_reason.is_empty())
                .then(|| p.last_restart_reason.clone()),
            last_start_ms: p.last_start_duration.and_then(duration).map(ms),
            log_lines: p.log_lines,
            log_lines_dropped: p.log_lines_dropped,
            last_exit_reason: (!p.last_exit_reason.is_empty()).then(|| p.last_exit_reason.clone()),
            last_stderr: p.last_stderr.clone(),
            phases: p.phases.clone(),
            invocations: Invocations {
                ok: counts.ok,
                vetoed: counts.vetoed,
                failed: counts.failed,
                timed_out: counts.timed_out,
                crashed: counts.crashed,
                skipped: counts.skipped,
            },
            latency_p50_ms: latency(p.latency_p50),
            latency_p99_ms: latency(p.latency_p99),
            latency_window: window,
            rss_bytes: measured.then_some(p.rss_bytes),
            cpu_percent: measured.then(|| (p.cpu_percent * 10.0).round() / 10.0),
            cpu_time_ms: p
                .cpu_time
                .and_then(duration)
                .map_or(0, |d| d.as_millis() as u64),
            sandbox: p.sandbox.iter().map(WallView::of).collect(),
        }
    }
}

/// A state's name as the JSON and the table spell it.
pub(crate) fn state_name(state: i32) -> &'static str {
    match wire::PluginState::try_from(state) {
        Ok(wire::PluginState::Starting) => "starting",
        Ok(wire::PluginState::Ready) => "ready",
        Ok(wire::PluginState::Unhealthy) => "unhealthy",
        Ok(wire::PluginState::Restarting) => "restarting",
        Ok(wire::PluginState::Failed) => "failed",
        Ok(wire::PluginState::Stopping) => "stopping",
        Ok(wire::PluginState::Stopped) => "stopped",
        Ok(wire::PluginState::Disabled) => "disabled",
        Ok(wire::PluginState::Unspecified) | Err(_) => "unknown",
    }
}

/// A wire duration, if it is one.
fn duration(d: prost_types::Duration) -> Option<Duration> {
    outboard_daemon::wire::duration_from_proto(Some(d), "").ok()
}

/// Milliseconds to 0.1 ms.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// A time as RFC 3339 in UTC, to the millisecond.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The status as one JSON object: `{"daemon": ..., "plugins": [...]}`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusView {
    /// The daemon.
    pub(crate) daemon: Option<DaemonView>,
    /// Its plugins, by name.
    pub(crate) plugins: Vec<PluginView>,
}

impl StatusView {
    /// The view of a GetStatus answer.
    pub(crate) fn of(status: &wire::GetStatusResponse) -> StatusView {
        StatusView {
            daemon: status.daemon.as_ref().map(DaemonView::of),
            plugins: status.plugins.iter().map(PluginView::of).collect(),
        }
    }
}

/// The daemon's line above the table.
pub(crate) fn daemon_line(out: &mut impl Write, d: &DaemonView) -> std::io::Result<()> {
    writeln!(
        out,
        "outboard daemon {} (pid {}), since {}; {}; {} reload{}, {} in flight; jobs: {}; socket {}",
        Escaped::line(&d.version),
        d.pid,
        d.started_at.as_deref().unwrap_or("-"),
        Escaped::line(&d.config_source),
        d.reloads,
        if d.reloads == 1 { "" } else { "s" },
        d.in_flight,
        jobs(&d.jobs),
        Escaped::line(&d.control_socket),
    )
}

/// Jobs by result, only those that happened: `3 succeeded, 1 vetoed`.
fn jobs(jobs: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = jobs
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(result, n)| format!("{n} {}", Escaped::line(&result.replace('_', " "))))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The table's header.
const HEADER: [&str; 12] = [
    "NAME", "VERSION", "STATE", "PID", "UPTIME", "RESTARTS", "CALLS", "P50", "P99", "RSS", "CPU%",
    "PHASES",
];

/// The cells of one plugin, `-` where there is nothing to show; every
/// text that came from a plugin escaped.
fn cells(p: &PluginView) -> [String; 12] {
    let dash = || "-".to_owned();
    let latency = |l: Option<f64>| l.map_or_else(dash, |ms| format!("{ms:.1}ms"));
    [
        Escaped::line(&p.name).to_string(),
        if p.version.is_empty() {
            dash()
        } else {
            Escaped::line(&p.version).to_string()
        },
        if p.optional {
            format!("{} (optional)", p.state)
        } else {
            p.state.to_owned()
        },
        p.pid.map_or_else(dash, |pid| pid.to_string()),
        p.uptime_ms
            .map_or_else(dash, |ms| uptime(Duration::from_millis(ms))),
        match &p.last_restart_reason {
            Some(last) if p.restarts > 0 => format!("{} ({})", p.restarts, Escaped::line(last)),
            _ => p.restarts.to_string(),
        },
        calls(&p.invocations),
        latency(p.latency_p50_ms),
        latency(p.latency_p99_ms),
        // Nothing measured yet (a group sampled before its first tick).
        p.rss_bytes.map_or_else(dash, bytes),
        p.cpu_percent.map_or_else(dash, |cpu| format!("{cpu:.1}")),
        if p.phases.is_empty() {
            dash()
        } else {
            Escaped::line(&p.phases.join(",")).to_string()
        },
    ]
}

/// The calls by outcome, only those that happened: `12 ok, 1 timed out`.
fn calls(i: &Invocations) -> String {
    let parts: Vec<String> = [
        (i.ok, "ok"),
        (i.vetoed, "vetoed"),
        (i.failed, "failed"),
        (i.timed_out, "timed out"),
        (i.crashed, "crashed"),
        (i.skipped, "skipped"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// An uptime in its two largest units: `42s`, `12m03s`, `3h04m`, `2d03h`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A size in binary units, one decimal: `12.3MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// The plugins as an aligned table, then the walls of each one that has
/// more than `no_new_privs`, then each one's last exit reason and stderr
/// lines.
pub(crate) fn table(out: &mut impl Write, plugins: &[PluginView]) -> std::io::Result<()> {
    let rows: Vec<[String; 12]> = plugins.iter().map(cells).collect();
    super::columns::aligned(out, HEADER, &rows)?;
    let walled: Vec<&PluginView> = plugins
        .iter()
        .filter(|p| super::sandbox::any_beyond_the_default(&p.sandbox))
        .collect();
    if !walled.is_empty() {
        writeln!(out)?;
    }
    for p in walled {
        writeln!(
            out,
            "{}: sandbox: {}",
            Escaped::line(&p.name),
            super::sandbox::line(&p.sandbox)
        )?;
    }
    for p in plugins {
        if let Some(reason) = &p.last_exit_reason {
            writeln!(
                out,
                "\n{}: last exit: {}",
                Escaped::line(&p.name),
                Escaped::line(reason)
            )?;
            for l in &p.last_stderr {
                writeln!(out, "  | {}", Escaped::line(l))?;
            }
        }
    }
    Ok(())
}

/// `status`'s whole text: the daemon's line, then the table.
pub(crate) fn status(out: &mut impl Write, view: &StatusView) -> std::io::Result<()> {
    if let Some(d) = &view.daemon {
        daemon_line(out, d)?;
        writeln!(out)?;
    }
    table(out, &view.plugins)
}

#[cfg(test)]
mod tests;
