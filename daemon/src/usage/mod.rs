//! What a plugin costs the machine: the resident memory and CPU time of
//! every live process in its process group, read from `/proc`.
//!
//! A plugin is the leader of its own process group (the host starts it so),
//! and whatever it forks stays in that group unless it leaves on purpose:
//! the group's figures are the plugin's. One [`scan`] of `/proc` reads every
//! process once and adds it to its group, for as many groups as asked, so
//! sampling a hundred plugins costs one pass.
//!
//! A [`Sampler`] remembers each group's CPU time from the previous sample
//! and turns the difference into a percentage of one core; a group's first
//! sample is its CPU time over its oldest process's lifetime (the group
//! leader's, unless it has died). Samples closer than [`MIN_INTERVAL`]
//! repeat the last figure.
//!
//! # Layout
//!
//! - this file: [`GroupUsage`], [`Sampler`] and its arithmetic, a pure
//!   function of the totals, the time and what it remembered.
//! - `proc`: the reading of `/proc`.
//!
//! CPU time counts each live process's own time and that of the children
//! it has waited for (a plugin that forks short-lived workers is charged
//! for them once they are reaped); a child still running counts as a live
//! process of its own.

mod proc;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proc::{Totals, Units, scan_totals, uptime_ticks};

/// A group's CPU% is measured over at least this long: a sample sooner
/// after the last one gives the last figure again rather than the noise of
/// a few clock ticks.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A process group's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupUsage {
    /// Live processes in the group.
    pub processes: u32,
    /// Their resident memory, added up.
    pub rss_bytes: u64,
    /// Their CPU time (user and system), with that of their reaped
    /// children.
    pub cpu_time: Duration,
    /// CPU use since the previous sample (at least [`MIN_INTERVAL`]
    /// before), in percent of one core: above 100 when the group runs on
    /// several cores at once.
    pub cpu_percent: f64,
}

/// Process-group figures, with CPU% between successive samples.
#[derive(Debug)]
pub struct Sampler {
    units: Units,
    /// Where the kernel's process table is: `/proc`.
    proc_root: std::path::PathBuf,
    /// Each group's previous sample.
    previous: HashMap<u32, Previous>,
}

/// What the sampler remembers of a group: the sample its next CPU figure
/// is measured from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Previous {
    at: Instant,
    cpu_ticks: u64,
    /// The leader's start: a different one is a different group that
    /// reuses the id.
    leader_start: Option<u64>,
    /// The CPU figure given then.
    cpu_percent: f64,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new()
    }
}

impl Sampler {
    /// A sampler of this machine's `/proc` that has seen nothing yet.
    pub fn new() -> Sampler {
        Sampler {
            units: Units::of_this_machine(),
            proc_root: "/proc".into(),
            previous: HashMap::new(),
        }
    }

    /// The figures of each of `groups` (process group ids: a plugin's
    /// pid) that has a live process, in one pass over `/proc`. Groups not
    /// asked for this time are forgotten. Blocking file reads: call it
    /// from a blocking context (`spawn_blocking`) in async code.
    pub fn sample(&mut self, groups: &[u32]) -> std::io::Result<HashMap<u32, GroupUsage>> {
        let wanted: HashSet<u32> = groups.iter().copied().collect();
        let totals = scan_totals(&self.proc_root, &wanted)?;
        let now = Instant::now();
        let uptime = uptime_ticks(&self.proc_root, self.units)?;
        self.previous.retain(|group, _| totals.contains_key(group));
        let mut usage = HashMap::with_capacity(totals.len());
        for (group, totals) in totals {
            let previous = self.previous.get(&group).copied();
            let (figures, remembered) = next(previous, &totals, now, uptime, self.units);
            self.previous.insert(group, remembered);
            usage.insert(group, figures);
        }
        Ok(usage)
    }
}

/// A group's figures from this scan's `totals`, `now` and the system's
/// `uptime` (in ticks), and what the sampler remembered of it; and what to
/// remember next.
fn next(
    previous: Option<Previous>,
    totals: &Totals,
    now: Instant,
    uptime: u64,
    units: Units,
) -> (GroupUsage, Previous) {
    let here = Previous {
        at: now,
        cpu_ticks: totals.cpu_ticks,
        leader_start: totals.leader_start,
        cpu_percent: 0.0,
    };
    let known = previous.filter(|p| p.leader_start == totals.leader_start);
    let remembered = match known {
        Some(p) if now.saturating_duration_since(p.at) < MIN_INTERVAL => p,
        // A process that exited takes its CPU time with it (unless a
        // group member reaped it): the total may drop, never below zero.
        Some(p) => Previous {
            cpu_percent: percent(
                units.duration(totals.cpu_ticks.saturating_sub(p.cpu_ticks)),
                now.saturating_duration_since(p.at),
            ),
            ..here
        },
        None => Previous {
            cpu_percent: percent(
                units.duration(totals.cpu_ticks),
                units.duration(uptime.saturating_sub(totals.earliest_start)),
            ),
            ..here
        },
    };
    let figures = GroupUsage {
        processes: totals.processes,
        rss_bytes: totals.rss_pages * units.page_bytes,
        cpu_time: units.duration(totals.cpu_ticks),
        cpu_percent: remembered.cpu_percent,
    };
    (figures, remembered)
}

/// `busy` as a percentage of `over`; zero over no time.
fn percent(busy: Duration, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        busy.as_secs_f64() / over.as_secs_f64() * 100.0
    }
}
