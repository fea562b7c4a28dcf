//! Chaos: 10 supervised plugins, at least 20,000 dispatches from 16
//! concurrent callers, while a random plugin is SIGKILLed every 100 ms.
//! Every dispatch must return a complete report; every killed plugin must be
//! ready again; at the end nothing is left: no zombie, no orphan, no runtime
//! directory, no extra file descriptor. Bounded in count and in time.
//!
//! The same over gRPC and, fewer, over the invoke fast path (its
//! connection dies with each kill). The two run one after the other: each
//! counts the test process's descriptors and children.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Sandbox;
use outboard_host::Host;
use outboard_host::HostConfig;
use outboard_host::State;
use outboard_host::launch::ProcStat;
use outboard_host::{FailureKind, Outcome};
use outboard_host::{FailurePolicy, Mode, PhaseSpec};
use rand::Rng;
use serde_json::json;

const PLUGINS: usize = 10;
const CALLERS: usize = 16;
const TIME_LIMIT: Duration = Duration::from_secs(240);

/// One scenario at a time in this binary: each counts descriptors and
/// children of the whole test process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process that exited and were never reaped.
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ProcStat::read(pid).is_some_and(|s| s.zombie && s.ppid == me))
        .collect()
}

/// Live processes running the stress plugin's binary.
fn stress_processes() -> Vec<u32> {
    let exe = common::bin("stress");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe)
                && ProcStat::read(pid).is_some_and(|s| !s.zombie)
        })
        .collect()
}

// One scenario read top to bottom (warm up, start ten plugins, kill them
// while dispatching, then check every report and what is left), longer than
// a screen on purpose: its steps share most of their state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kills_while_dispatching_and_leaves_nothing_behind() {
    let _alone = ONE_AT_A_TIME.lock().await;
    chaos(20_000, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kills_during_fast_path_calls_and_loses_no_outcome() {
    let _alone = ONE_AT_A_TIME.lock().await;
    chaos(15_000, true).await;
}

/// `dispatches` dispatches while plugins are killed, the plugins offered
/// the fast path or not.
async fn chaos(dispatches_wanted: usize, fastpath: bool) {
    let sb = Sandbox::new();
    // Warm up what the runtime creates once (the SIGCHLD pipe, the spawner
    // thread) so that the descriptor count compares like with like.
    let warm = Host::start(&HostConfig {
        plugins: vec![sb.stress("warm", "warm:0", json!({}))],
        ..HostConfig::default()
    })
    .await
    .unwrap();
    warm.stop().await;
    let fds_before = open_fds();

    // Each plugin has a phase of its own (one call per dispatch), and all
    // share "all" (a parallel fan-out to the ten).
    let plugins = (0..PLUGINS)
        .map(|i| {
            let mut spec = sb.stress(&format!("p{i}"), &format!("own{i}:0,all:{i}"), json!({}));
            spec.call_timeout = Duration::from_secs(5);
            spec.stop_grace = Duration::from_secs(2);
            spec.supervision.backoff_initial = Duration::from_millis(5);
            spec.supervision.backoff_max = Duration::from_millis(50);
            spec.supervision.backoff_reset_after = Duration::from_millis(200);
            spec.supervision.crash_loop_starts = 100_000;
            spec.supervision.health_interval = Duration::from_secs(1);
            spec.fastpath = fastpath;
            spec
        })
        .collect();
    let phases = [(
        "all".to_owned(),
        PhaseSpec {
            mode: Mode::Parallel,
            timeout: None,
            failure_policy: FailurePolicy::FailOpen,
        },
    )]
    .into_iter()
    .chain((0..PLUGINS).map(|i| (format!("own{i}"), PhaseSpec::default())))
    .collect::<BTreeMap<_, _>>();
    let host = Arc::new(
        Host::start(&HostConfig {
            plugins,
            phases,
            ..HostConfig::default()
        })
        .await
        .unwrap(),
    );
    // The kills land during calls on the path under test: the stress
    // plugin serves Invoke on the fast path when offered it.
    let path = if fastpath { "fastpath" } else { "grpc" };
    for plugin in host.plugins() {
        assert_eq!(plugin.status().invoke_path, Some(path), "{}", plugin.name());
    }

    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let (host, done) = (host.clone(), done.clone());
        tokio::spawn(async move {
            let mut kills = 0usize;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let victim = &host.plugins()[rand::rng().random_range(0..PLUGINS)];
                if let Some(pid) = victim.status().pid {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                    kills += 1;
                }
            }
            kills
        })
    };

    let issued = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (host, issued) = (host.clone(), issued.clone());
            tokio::spawn(async move {
                let mut tally: BTreeMap<String, usize> = BTreeMap::new();
                let mut calls = 0usize;
                while issued.fetch_add(1, Ordering::Relaxed) < dispatches_wanted
                    && started.elapsed() < TIME_LIMIT
                {
                    let fan_out = rand::rng().random_ratio(1, 10);
                    let phase = if fan_out {
                        "all".to_owned()
                    } else {
                        format!("own{}", rand::rng().random_range(0..PLUGINS))
                    };
                    let report = host.dispatch(&phase, serde_json::Map::new()).await;
                    let expected = if fan_out { PLUGINS } else { 1 };
                    assert_eq!(
                        report.entries.len(),
                        expected,
                        "incomplete report for {phase}"
                    );
                    for entry in &report.entries {
                        assert_ne!(entry.outcome, Outcome::Skipped, "{phase}: {entry:?}");
                        let kind = match (entry.outcome, entry.failure) {
                            (Outcome::Ok, _) => "ok".to_owned(),
                            (_, Some(FailureKind::Crashed)) => "crashed".to_owned(),
                            (_, Some(FailureKind::Unavailable)) => "unavailable".to_owned(),
                            (_, Some(FailureKind::Timeout)) => "timeout".to_owned(),
                            (outcome, failure) => {
                                format!("{outcome:?}/{failure:?}: {}", entry.message)
                            }
                        };
                        *tally.entry(kind).or_default() += 1;
                        calls += 1;
                    }
                }
                (tally, calls)
            })
        })
        .collect();

    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut calls = 0;
    for caller in callers {
        let (t, c) = caller.await.expect("a caller panicked");
        calls += c;
        for (k, v) in t {
            *tally.entry(k).or_default() += v;
        }
    }
    let dispatches = issued.load(Ordering::Relaxed).min(dispatches_wanted);
    done.store(true, Ordering::Relaxed);
    let kills = killer.await.unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "chaos over {path}: {dispatches} dispatches ({calls} plugin calls) in {elapsed:.1?} with {kills} SIGKILLs; outcomes: {tally:?}"
    );
    assert!(
        dispatches >= dispatches_wanted,
        "only {dispatches} dispatches within {TIME_LIMIT:?}"
    );
    assert!(kills >= 10, "the killer ran only {kills} times");
    for kind in tally.keys() {
        assert!(
            ["ok", "crashed", "unavailable", "timeout"].contains(&kind.as_str()),
            "unexpected outcome {kind}"
        );
    }

    // Every plugin is ready again.
    for plugin in host.plugins() {
        assert!(
            plugin
                .wait_for_state(State::Ready, Duration::from_secs(10))
                .await,
            "{} is not ready again: {:?}",
            plugin.name(),
            plugin.status()
        );
        assert_eq!(plugin.status().invoke_path, Some(path), "{}", plugin.name());
    }

    host.shutdown().await;
    drop(host);
    // Reaping is asynchronous: allow it a moment.
    let clean = async {
        while !zombie_children().is_empty() || !stress_processes().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), clean).await;
    assert_eq!(zombie_children(), Vec::<u32>::new(), "zombies left");
    assert_eq!(
        stress_processes(),
        Vec::<u32>::new(),
        "plugin processes left"
    );
    sb.assert_empty();
    let settle = async {
        while open_fds() > fds_before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), settle).await;
    assert_eq!(open_fds(), fds_before, "file descriptors leaked");
}
