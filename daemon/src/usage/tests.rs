use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::proc::{ProcStat, parse_stat};
use super::*;

/// A line of `/proc/<pid>/stat` whose command name holds `) (` and spaces.
const STAT: &str = "4242 (we (i) rd) name) S 1 4240 4240 0 -1 4194560 120 0 0 0 \
                    250 50 7 3 20 0 2 0 98765 10485760 1536 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    assert_eq!(
        parse_stat(STAT),
        Some(ProcStat {
            pid: 4242,
            live: true,
            pgrp: 4240,
            cpu_ticks: 250 + 50 + 7 + 3,
            start_ticks: 98765,
            rss_pages: 1536,
        })
    );
    let zombie = STAT.replace(") S 1", ") Z 1");
    assert_eq!(parse_stat(&zombie).map(|s| s.live), Some(false));
    assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
    assert_eq!(parse_stat(""), None);
}

#[test]
fn ticks_become_durations() {
    assert_eq!(HZ.duration(250), Duration::from_millis(2500));
    assert_eq!(HZ.duration(1), Duration::from_millis(10));
}

const HZ: Units = Units {
    ticks_per_second: 100,
    page_bytes: 4096,
};

fn totals(cpu_ticks: u64, leader_start: u64) -> Totals {
    Totals {
        processes: 2,
        rss_pages: 256,
        cpu_ticks,
        leader_start: Some(leader_start),
        earliest_start: leader_start,
    }
}

#[test]
fn cpu_percent_between_samples() {
    let t0 = Instant::now();
    // First seen 2 s after its start (uptime 1200 ticks, started at
    // 1000), with 1 s of CPU: 50% over its lifetime.
    let (first, kept) = next(None, &totals(100, 1000), t0, 1200, HZ);
    assert_eq!(first.cpu_percent, 50.0);
    assert_eq!(first.cpu_time, Duration::from_secs(1));
    assert_eq!((first.processes, first.rss_bytes), (2, 1 << 20));

    // 2 s later, 2 s more CPU: one core's worth.
    let t1 = t0 + Duration::from_secs(2);
    let (second, kept) = next(Some(kept), &totals(300, 1000), t1, 1400, HZ);
    assert_eq!(second.cpu_percent, 100.0);

    // Asked again too soon: the same figure, the same baseline.
    let soon = t1 + Duration::from_millis(100);
    let (again, same) = next(Some(kept), &totals(310, 1000), soon, 1410, HZ);
    assert_eq!(again.cpu_percent, 100.0);
    assert_eq!(same, kept);
    assert_eq!(again.cpu_time, Duration::from_millis(3100));

    // 4 s after the baseline, 1 s more: measured from the baseline.
    let t2 = t1 + Duration::from_secs(4);
    let (later, kept) = next(Some(same), &totals(400, 1000), t2, 1800, HZ);
    assert_eq!(later.cpu_percent, 25.0);

    // A process exited and took its time along: zero, not negative.
    let t3 = t2 + Duration::from_secs(1);
    let (dropped, kept) = next(Some(kept), &totals(50, 1000), t3, 1900, HZ);
    assert_eq!(dropped.cpu_percent, 0.0);

    // The id now names another group (another leader's start): a first
    // sample again, over the new leader's lifetime.
    let (other, _) = next(Some(kept), &totals(10, 1880), t3, 1900, HZ);
    assert_eq!(other.cpu_percent, 50.0);
}

/// A process group that burns one core in a child and holds `MIB` MiB in
/// its leader; killed, group and all, when dropped.
struct Burner(Child);

const MIB: u64 = 48;

impl Burner {
    fn start() -> Burner {
        let script = format!(
            "while :; do :; done & \
             held=$(head -c {} /dev/zero | tr '\\0' x); \
             echo ready; \
             while :; do sleep 1; done",
            MIB << 20
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .expect("start sh");
        Burner(child)
    }

    fn group(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        // SAFETY: signals the group this test started; no memory involved.
        unsafe {
            libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Samples `groups` until `done` holds for the figures, or 20 s pass.
fn sample_until(
    sampler: &mut Sampler,
    groups: &[u32],
    done: impl Fn(&HashMap<u32, GroupUsage>) -> bool,
) -> HashMap<u32, GroupUsage> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let usage = sampler.sample(groups).expect("sample /proc");
        if done(&usage) || Instant::now() > deadline {
            return usage;
        }
        // Polling: the CPU figure needs time between two samples to mean
        // anything.
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_group_shows_its_memory_and_cpu() {
    let burner = Burner::start();
    let group = burner.group();
    let mut sampler = Sampler::new();
    let first = sampler.sample(&[group]).expect("sample /proc");
    let first = first.get(&group).copied().expect("the group is live");
    assert!(first.processes >= 1, "{first:?}");
    // The leader's lifetime so far is short and the child burns: the first
    // figure is already a lifetime average, not zero-by-default.
    assert!(first.cpu_percent >= 0.0, "{first:?}");

    let usage = sample_until(&mut sampler, &[group], |u| {
        u.get(&group).is_some_and(|g| {
            g.processes >= 2 && g.rss_bytes >= (MIB - 8) << 20 && g.cpu_percent > 30.0
        })
    });
    let g = usage.get(&group).copied().expect("the group is live");
    assert!(g.processes >= 2, "the burning child counts: {g:?}");
    assert!(
        g.rss_bytes >= (MIB - 8) << 20,
        "the held memory counts: {g:?}"
    );
    assert!(g.cpu_percent > 30.0, "the burning child shows: {g:?}");
    assert!(g.cpu_percent < 250.0, "two cores at most: {g:?}");
    assert!(g.cpu_time > Duration::ZERO, "{g:?}");
}

#[test]
fn only_the_groups_asked_for_and_alive_are_reported() {
    let burner = Burner::start();
    let group = burner.group();
    let mut sampler = Sampler::new();
    let usage = sampler.sample(&[]).expect("sample /proc");
    assert!(usage.is_empty());
    let usage = sampler.sample(&[group]).expect("sample /proc");
    assert!(usage.contains_key(&group), "{usage:?}");
    drop(burner);
    // Killed: its processes die (and zombies do not count) as soon as
    // the kernel has delivered the signal.
    let usage = sample_until(&mut sampler, &[group], |u| !u.contains_key(&group));
    assert!(
        !usage.contains_key(&group),
        "a killed group is gone: {usage:?}"
    );
}
