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
//! sample is its CPU time over its oldest process's lifetime.
//!
//! CPU time counts each live process's own time and that of the children
//! it has waited for (a plugin that forks short-lived workers is charged
//! for them once they are reaped); a child still running counts as a live
//! process of its own.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

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
    /// CPU use since the previous sample, in percent of one core (above
    /// 100 when the group runs on several cores at once).
    pub cpu_percent: f64,
}

/// One process, as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pid: u32,
    /// False for a zombie (exited, not yet reaped) or a dead process.
    live: bool,
    /// Its process group.
    pgrp: u32,
    /// User and system time, with that of the children it waited for, in
    /// clock ticks.
    cpu_ticks: u64,
    /// When it started, in clock ticks after boot.
    start_ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

/// A group's totals from one scan, before the sampler's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Totals {
    processes: u32,
    rss_pages: u64,
    cpu_ticks: u64,
    /// The group leader's start, if the leader lives.
    leader_start: Option<u64>,
    /// The oldest live process's start.
    earliest_start: u64,
}

/// The kernel's units: clock ticks per second and bytes per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Units {
    ticks_per_second: u64,
    page_bytes: u64,
}

impl Units {
    fn of_this_machine() -> Units {
        // SAFETY: sysconf reads a configuration value; it has no
        // preconditions and touches no memory of ours.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Units {
            // Linux has answered 100 and 4096 on every common platform;
            // these stand in only if sysconf fails.
            ticks_per_second: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
            page_bytes: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        }
    }

    fn duration(self, ticks: u64) -> Duration {
        let whole = ticks / self.ticks_per_second;
        let rest = ticks % self.ticks_per_second;
        Duration::from_secs(whole)
            + Duration::from_nanos(rest * 1_000_000_000 / self.ticks_per_second)
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name, in
/// parentheses, may itself hold spaces and parentheses: the fields are
/// counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, tail) = text.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15)
    // cutime(16) cstime(17) ... starttime(22) vsize(23) rss(24).
    let fields: Vec<&str> = tail.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let signed = |n: usize| -> Option<u64> {
        // cutime, cstime and rss are signed in the kernel's format; a
        // negative value never means anything here.
        Some(u64::try_from(fields.get(n - 3)?.parse::<i64>().ok()?).unwrap_or(0))
    };
    let state = fields.first()?;
    Some(ProcStat {
        pid,
        live: !matches!(*state, "Z" | "X" | "x"),
        pgrp: u32::try_from(field(5)?).ok()?,
        cpu_ticks: field(14)? + field(15)? + signed(16)? + signed(17)?,
        start_ticks: field(22)?,
        rss_pages: signed(24)?,
    })
}

/// Reads every process under `proc_root` once and totals those in
/// `groups`. Processes that exit during the scan are skipped; groups with
/// no live process are absent from the answer.
fn scan_totals(proc_root: &Path, groups: &HashSet<u32>) -> std::io::Result<HashMap<u32, Totals>> {
    let mut totals: HashMap<u32, Totals> = HashMap::new();
    if groups.is_empty() {
        return Ok(totals);
    }
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Gone since the listing, or not ours to read: not counted.
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(stat) = parse_stat(&text).filter(|s| s.pid == pid && s.live) else {
            continue;
        };
        if !groups.contains(&stat.pgrp) {
            continue;
        }
        let group = totals.entry(stat.pgrp).or_insert(Totals {
            earliest_start: u64::MAX,
            ..Totals::default()
        });
        group.processes += 1;
        group.rss_pages += stat.rss_pages;
        group.cpu_ticks += stat.cpu_ticks;
        group.earliest_start = group.earliest_start.min(stat.start_ticks);
        if stat.pid == stat.pgrp {
            group.leader_start = Some(stat.start_ticks);
        }
    }
    Ok(totals)
}

/// Seconds since boot, from `/proc/uptime`, in clock ticks.
fn uptime_ticks(proc_root: &Path, units: Units) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(proc_root.join("uptime"))?;
    let seconds: f64 = text
        .split_ascii_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}/uptime: not a number of seconds", proc_root.display()),
            )
        })?;
    Ok((seconds * units.ticks_per_second as f64) as u64)
}

/// Process-group figures, with CPU% between successive samples.
#[derive(Debug)]
pub struct Sampler {
    units: Units,
    /// `/proc`, or a stand-in in tests.
    proc_root: std::path::PathBuf,
    /// Each group's previous sample.
    previous: HashMap<u32, Previous>,
}

/// What the sampler remembers of a group.
#[derive(Debug, Clone, Copy)]
struct Previous {
    at: Instant,
    cpu_ticks: u64,
    /// The leader's start: a different one is a different group that
    /// reuses the id.
    leader_start: Option<u64>,
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
        let units = self.units;
        self.previous.retain(|group, _| totals.contains_key(group));
        let mut usage = HashMap::with_capacity(totals.len());
        for (group, t) in totals {
            let known = self
                .previous
                .get(&group)
                .filter(|p| p.leader_start == t.leader_start);
            let (busy, over) = match known {
                Some(p) => (
                    units.duration(t.cpu_ticks.saturating_sub(p.cpu_ticks)),
                    now.duration_since(p.at),
                ),
                None => (
                    units.duration(t.cpu_ticks),
                    units.duration(uptime.saturating_sub(t.earliest_start)),
                ),
            };
            let cpu_percent = if over.is_zero() {
                0.0
            } else {
                busy.as_secs_f64() / over.as_secs_f64() * 100.0
            };
            self.previous.insert(
                group,
                Previous {
                    at: now,
                    cpu_ticks: t.cpu_ticks,
                    leader_start: t.leader_start,
                },
            );
            usage.insert(
                group,
                GroupUsage {
                    processes: t.processes,
                    rss_bytes: t.rss_pages * units.page_bytes,
                    cpu_time: units.duration(t.cpu_ticks),
                    cpu_percent,
                },
            );
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests;
