//! Reading `/proc`: one process's `stat` line, and the totals of process
//! groups from one pass over every process.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// One process, as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    pub(super) pid: u32,
    /// False for a zombie (exited, not yet reaped) or a dead process.
    pub(super) live: bool,
    /// Its process group.
    pub(super) pgrp: u32,
    /// User and system time, with that of the children it waited for, in
    /// clock ticks.
    pub(super) cpu_ticks: u64,
    /// When it started, in clock ticks after boot.
    pub(super) start_ticks: u64,
    /// Resident pages.
    pub(super) rss_pages: u64,
}

/// A group's totals from one scan, before the sampler's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Totals {
    pub(super) processes: u32,
    pub(super) rss_pages: u64,
    pub(super) cpu_ticks: u64,
    /// The group leader's start, if the leader lives.
    pub(super) leader_start: Option<u64>,
    /// The oldest live process's start.
    pub(super) earliest_start: u64,
}

/// The kernel's units: clock ticks per second and bytes per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Units {
    pub(super) ticks_per_second: u64,
    pub(super) page_bytes: u64,
}

impl Units {
    pub(super) fn of_this_machine() -> Units {
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

    pub(super) fn duration(self, ticks: u64) -> Duration {
        let whole = ticks / self.ticks_per_second;
        let rest = ticks % self.ticks_per_second;
        Duration::from_secs(whole)
            + Duration::from_nanos(rest * 1_000_000_000 / self.ticks_per_second)
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name, in
/// parentheses, may itself hold spaces and parentheses: the fields are
/// counted from the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<ProcStat> {
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
pub(super) fn scan_totals(
    proc_root: &Path,
    groups: &HashSet<u32>,
) -> std::io::Result<HashMap<u32, Totals>> {
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
pub(super) fn uptime_ticks(proc_root: &Path, units: Units) -> std::io::Result<u64> {
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
