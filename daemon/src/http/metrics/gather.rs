//! A [`Scrape`] read from the running daemon: the host's figures and
//! supervisors, the log book's counts, the plugins' process groups and the
//! daemon's own process. Blocking reads of `/proc`: run it off the async
//! threads.

use super::process;
use super::scrape::{CallScrape, PhaseScrape, PluginScrape, Scrape};
use crate::http::state::Shared;
use crate::usage::GroupUsage;
use std::collections::{BTreeMap, HashMap};

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
    // Each supervisor's status read once: the pid sampled is the pid shown.
    let supervisors: Vec<_> = host
        .plugins()
        .into_iter()
        .map(|sup| {
            let status = sup.status();
            (sup, status)
        })
        .collect();
    let groups: Vec<u32> = supervisors.iter().filter_map(|(_, s)| s.pid).collect();
    let usage = group_usage(shared, &groups);
    let figures = host.figures();
    // Every plugin the host has figures for: those running, and those a
    // reload removed (their counters stay, with no state).
    let mut plugins: BTreeMap<String, PluginScrape> = figures
        .plugins
        .into_iter()
        .map(|f| {
            let scrape = PluginScrape {
                name: f.name.clone(),
                restarts: f.restarts,
                last_start_duration: f.last_start_duration,
                calls: f
                    .calls
                    .into_iter()
                    .map(|c| CallScrape {
                        phase: c.phase,
                        outcomes: c.outcomes.by_name(),
                        duration: c.duration,
                    })
                    .collect(),
                ..PluginScrape::default()
            };
            (f.name, scrape)
        })
        .collect();
    for (sup, status) in &supervisors {
        let plugin = plugins
            .entry(sup.name().to_owned())
            .or_insert_with(|| PluginScrape {
                name: sup.name().to_owned(),
                ..PluginScrape::default()
            });
        plugin.state = Some(status.state);
        plugin.optional = sup.optional();
        plugin.usage = status.pid.and_then(|pid| usage.get(&pid).copied());
    }
    for plugin in plugins.values_mut() {
        plugin.log = shared.logs().counts(&plugin.name);
    }
    Scrape {
        plugins: plugins.into_values().collect(),
        phases: figures
            .phases
            .into_iter()
            .map(|p| PhaseScrape {
                phase: p.phase,
                duration: p.duration,
                results: p.verdicts,
                conflicts: p.conflicts,
            })
            .collect(),
        jobs: figures.jobs.by_result,
        process,
    }
}

/// The process groups' memory and CPU, by group (a plugin's pid).
fn group_usage(shared: &Shared, groups: &[u32]) -> HashMap<u32, GroupUsage> {
    shared
        .sample(groups)
        .inspect_err(|err| tracing::warn!("cannot read the plugins' memory and CPU use: {err}"))
        .unwrap_or_default()
}
