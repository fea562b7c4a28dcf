//! A supervised plugin as `outboard.control.v1.PluginStatus`: its
//! supervisor's status and manifest, its call statistics and figures (the
//! host's, which the metrics read too), its log counts and its process
//! group's resource use, put together by one pure function.

use std::time::SystemTime;

use outboard_host::sandbox::Wall;
use outboard_host::{Manifest, PluginFigures, State, StatsSnapshot, Status};
use outboard_proto::control::v1 as wire;

use super::duration_to_proto;
use crate::logs::LogCounts;
use crate::usage::GroupUsage;

/// What the daemon knows of one plugin at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PluginFacts<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its latest start's manifest.
    pub manifest: &'a Manifest,
    /// Its supervisor's status.
    pub status: &'a Status,
    /// Its calls so far.
    pub stats: &'a StatsSnapshot,
    /// Its figures: restarts by reason, the latest start's duration.
    pub figures: &'a PluginFigures,
    /// Its log lines recorded and dropped.
    pub logs: LogCounts,
    /// Its process group's figures, if it runs.
    pub usage: Option<&'a GroupUsage>,
    /// The walls around its latest start.
    pub sandbox: &'a [Wall],
    /// The moment this describes (uptime is measured to it).
    pub now: SystemTime,
}

/// `facts` as the wire's `PluginStatus`.
pub fn plugin_status(facts: PluginFacts<'_>) -> wire::PluginStatus {
    let PluginFacts {
        name,
        manifest,
        status,
        stats,
        figures,
        logs,
        usage,
        sandbox,
        now,
    } = facts;
    let mut phases: Vec<String> = manifest
        .subscriptions
        .iter()
        .map(|s| s.phase.clone())
        .collect();
    phases.sort();
    phases.dedup();
    let uptime = status
        .since
        .filter(|_| status.state == State::Ready)
        .map(|since| duration_to_proto(now.duration_since(since).unwrap_or_default()));
    wire::PluginStatus {
        name: name.to_owned(),
        version: manifest.version.to_string(),
        state: state_to_proto(status.state) as i32,
        pid: status.pid.unwrap_or(0),
        uptime,
        restarts: u32::try_from(figures.restarts_total()).unwrap_or(u32::MAX),
        last_exit_reason: status.reason.clone().unwrap_or_default(),
        last_stderr: status.stderr.clone(),
        phases,
        invocations: Some(wire::InvocationCounts {
            ok: stats.outcomes.ok,
            vetoed: stats.outcomes.vetoed,
            failed: stats.outcomes.failed,
            timed_out: stats.outcomes.timed_out,
            crashed: stats.outcomes.crashed,
            skipped: stats.outcomes.skipped,
        }),
        latency_p50: stats.latency_p50.map(duration_to_proto),
        latency_p99: stats.latency_p99.map(duration_to_proto),
        latency_window: stats.window,
        rss_bytes: usage.map_or(0, |u| u.rss_bytes),
        cpu_percent: usage.map_or(0.0, |u| u.cpu_percent),
        cpu_time: usage.map(|u| duration_to_proto(u.cpu_time)),
        optional: status.optional,
        restarts_by_reason: figures.restarts.clone().into_iter().collect(),
        last_start_duration: figures.last_start_duration.map(duration_to_proto),
        log_lines: logs.lines,
        log_lines_dropped: logs.dropped,
        last_restart_reason: figures
            .last_restart
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        sandbox: sandbox.iter().map(wall_to_proto).collect(),
        invoke_path: status.invoke_path.unwrap_or_default().to_owned(),
    }
}

/// A wall of the host's plan as the wire's.
fn wall_to_proto(wall: &Wall) -> wire::SandboxWall {
    wire::SandboxWall {
        setting: wall.setting.clone(),
        value: wall.value.clone(),
        mechanism: wall.mechanism.clone(),
    }
}

/// The host's state as the wire's.
pub fn state_to_proto(state: State) -> wire::PluginState {
    match state {
        State::Starting => wire::PluginState::Starting,
        State::Ready => wire::PluginState::Ready,
        State::Unhealthy => wire::PluginState::Unhealthy,
        State::Restarting => wire::PluginState::Restarting,
        State::Failed => wire::PluginState::Failed,
        State::Stopping => wire::PluginState::Stopping,
        State::Stopped => wire::PluginState::Stopped,
        State::Disabled => wire::PluginState::Disabled,
    }
}
