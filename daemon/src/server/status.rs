//! Plugins' statuses as the control API gives them: the supervisor's
//! status with the latest manifest, the call statistics and figures (the
//! host's store, the one the metrics read), the log book's counts and,
//! for `GetStatus`, the process group's memory and CPU sampled at the
//! call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use outboard_host::{Host, Status, Supervisor};
use outboard_proto::control::v1 as wire;

use crate::logs::LogBook;
use crate::usage::{GroupUsage, Sampler};
use crate::wire::{PluginFacts, plugin_status};

/// The process-group sampler, shared by every `GetStatus` (CPU% is
/// measured between successive samples).
pub(crate) type SharedSampler = Arc<Mutex<Sampler>>;

/// `plugins`' statuses, sorted by name, with their log counts from `logs`
/// and their groups' usage sampled now (blocking reads of `/proc`, off the
/// async threads).
pub(crate) async fn with_usage(
    plugins: Vec<Arc<Supervisor>>,
    sampler: &SharedSampler,
    logs: &LogBook,
) -> Vec<wire::PluginStatus> {
    let statuses: Vec<(Arc<Supervisor>, Status)> = plugins
        .into_iter()
        .map(|p| {
            let status = p.status();
            (p, status)
        })
        .collect();
    let groups: Vec<u32> = statuses.iter().filter_map(|(_, s)| s.pid).collect();
    let sampler = sampler.clone();
    let usage = tokio::task::spawn_blocking(move || {
        let mut sampler = sampler.lock().unwrap_or_else(|e| e.into_inner());
        sampler.sample(&groups)
    })
    .await;
    let usage: HashMap<u32, GroupUsage> = match usage {
        Ok(Ok(usage)) => usage,
        Ok(Err(err)) => {
            tracing::warn!("cannot read the plugins' memory and CPU use: {err}");
            HashMap::new()
        }
        Err(err) => {
            tracing::warn!("the memory and CPU sampler failed: {err}");
            HashMap::new()
        }
    };
    let mut out: Vec<wire::PluginStatus> = statuses
        .iter()
        .map(|(plugin, status)| {
            let group = status.pid.and_then(|pid| usage.get(&pid));
            status_of(plugin, status, group, logs)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `plugin`'s status as of `status`, with `usage` if sampled and its log
/// counts from `logs`.
pub(crate) fn status_of(
    plugin: &Supervisor,
    status: &Status,
    usage: Option<&GroupUsage>,
    logs: &LogBook,
) -> wire::PluginStatus {
    let manifest = plugin.manifest();
    let stats = plugin.stats().snapshot();
    // The host's figures of this plugin: the store `Host::figures` reads.
    let figures = plugin.stats().figures(plugin.name());
    let sandbox = plugin.sandbox();
    plugin_status(PluginFacts {
        name: plugin.name(),
        manifest: &manifest,
        status,
        stats: &stats,
        figures: &figures,
        logs: logs.counts(plugin.name()),
        usage,
        sandbox: &sandbox,
        now: SystemTime::now(),
    })
}

/// A status change of the plugin `name` for the journal: its manifest,
/// statistics and log counts as they are now, no usage. A plugin the host
/// no longer has (a reload removed it) is described by its state alone.
pub(crate) fn event_status(
    host: &Host,
    logs: &LogBook,
    name: &str,
    status: &Status,
) -> wire::PluginStatus {
    match host.plugin(name) {
        Some(plugin) => status_of(&plugin, status, None, logs),
        None => wire::PluginStatus {
            name: name.to_owned(),
            state: crate::wire::state_to_proto(status.state) as i32,
            pid: status.pid.unwrap_or(0),
            optional: status.optional,
            // Its figures outlive it in the host.
            restarts: host
                .figures()
                .plugin(name)
                .map_or(0, |f| u32::try_from(f.restarts_total()).unwrap_or(u32::MAX)),
            last_exit_reason: status.reason.clone().unwrap_or_default(),
            last_stderr: status.stderr.clone(),
            ..wire::PluginStatus::default()
        },
    }
}
