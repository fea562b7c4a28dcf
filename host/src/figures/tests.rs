//! The figures of a host of fake plugins, in virtual time: what each event
//! counts, and that nothing resets when a supervisor is replaced.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use outboard_proto::patch::PatchOp;
use serde_json::Map;

use super::{Figures, JobResult};
use crate::config::{HostConfig, Mode, PhaseSpec, PluginSpec};
use crate::error::ErrorKind;
use crate::host::Host;
use crate::instance::Reply;
use crate::job::{self, FailureKind, Job};
use crate::launch::Exit;
use crate::supervisor::State;
use crate::supervisor::fake::{FakeCall, FakeHealth, FakeLauncher, FakePlugin, FakeStart};

const SECOND: Duration = Duration::from_secs(1);

/// Long enough for anything a test waits for; only virtual time passes.
const PATIENCE: Duration = Duration::from_secs(3600);

/// A fake plugin `name` subscribing to phase `p`, and its spec: no crash
/// loop within reach, so every restart a test causes happens.
fn plugin(launcher: &FakeLauncher, name: &str) -> (Arc<FakePlugin>, PluginSpec) {
    let fake = launcher.plugin(name, &[("p", 0, false)]);
    let mut spec = PluginSpec::new(name, format!("/fake/{name}"));
    spec.supervision.crash_loop_starts = 100;
    (fake, spec)
}

fn continuing(patch: Vec<PatchOp>) -> FakeCall {
    FakeCall::Reply(Reply::Continue {
        patch,
        message: String::new(),
    })
}

/// A plugin's restarts under `reason`.
fn restarts(figures: &Figures, name: &str, reason: &str) -> u64 {
    figures.plugin(name).unwrap().restarts[reason]
}

/// Waits (in virtual time) until `name` is ready after `starts` starts.
async fn until_ready(host: &Host, name: &str, starts: u32) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let status = host.plugin(name).unwrap().status();
            if status.state == State::Ready && status.starts == starts {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} never ready after {starts} starts"));
}

#[tokio::test(start_paused = true)]
async fn counts_survive_a_reload_that_replaces_the_plugin_and_an_optional_change_restarts_nothing()
{
    let launcher = FakeLauncher::new();
    let (fake, spec) = plugin(&launcher, "a");
    let mut config = HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    };
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    host.dispatch("p", Map::new()).await;
    let first = host.plugin("a").unwrap();

    // Changed: replaced blue/green by a new supervisor, which starts in 3 s.
    fake.script_starts([FakeStart::ReadyAfter(3 * SECOND)]);
    config.plugins[0].args = vec!["--v2".into()];
    host.reload(&config).await.unwrap();
    let second = host.plugin("a").unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    host.dispatch("p", Map::new()).await;

    let figures = host.figures();
    let a = figures.plugin("a").unwrap();
    assert_eq!(a.calls.len(), 1);
    assert_eq!(
        (a.calls[0].phase.as_str(), a.calls[0].outcomes.ok),
        ("p", 2)
    );
    assert_eq!(a.calls[0].duration.count, 2);
    assert_eq!(restarts(&figures, "a", "reload"), 1);
    assert_eq!(a.restarts_total(), 1);
    assert_eq!(a.last_restart.map(|r| r.as_str()), Some("reload"));
    assert_eq!(a.last_start_duration, Some(3 * SECOND));
    // The supervisor's statistics are the same store.
    assert_eq!(second.stats().snapshot().outcomes.ok, 2);
    assert_eq!(second.stats().snapshot().window, 2);

    // Only `optional` changes: no restart, the running plugin takes it.
    assert!(!second.status().optional);
    config.plugins[0].optional = true;
    let plan = host.reload(&config).await.unwrap();
    assert_eq!(plan.unchanged, ["a"]);
    assert!(Arc::ptr_eq(&second, &host.plugin("a").unwrap()));
    assert_eq!(fake.instances().len(), 2);
    assert!(second.status().optional);
    assert_eq!(host.figures().plugin("a").unwrap().restarts_total(), 1);

    // Removed: its figures stay (a counter never goes backwards).
    config.plugins.clear();
    host.reload(&config).await.unwrap();
    assert!(host.plugin("a").is_none());
    let kept = host.figures();
    assert_eq!(kept.plugin("a").unwrap().calls[0].outcomes.ok, 2);
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_restart_is_counted_under_its_reason() {
    let launcher = FakeLauncher::new();
    let (fake, spec) = plugin(&launcher, "r");
    let config = HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    };
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    assert_eq!(host.figures().plugin("r").unwrap().restarts_total(), 0);

    fake.instance().crash();
    until_ready(&host, "r", 2).await;
    fake.instance().exit(Exit::with_code(0));
    until_ready(&host, "r", 3).await;
    fake.instance().set_health(FakeHealth::NotServing);
    until_ready(&host, "r", 4).await;
    host.restart("r");
    until_ready(&host, "r", 5).await;
    // A crash, then a start that fails, then one that succeeds.
    fake.script_starts([FakeStart::Fail(ErrorKind::ExitedBeforeHandshake {
        status: "status 3".into(),
        stderr: Vec::new(),
    })]);
    fake.instance().exit(Exit::with_code(1));
    until_ready(&host, "r", 7).await;
    host.disable("r").await.unwrap();
    host.enable("r").await.unwrap();
    until_ready(&host, "r", 8).await;

    let figures = host.figures();
    let r = figures.plugin("r").unwrap();
    let counted: Vec<(&str, u64)> = r
        .restarts
        .iter()
        .map(|(reason, n)| (reason.as_str(), *n))
        .collect();
    assert_eq!(
        counted,
        [
            ("crashed", 2),
            ("enabled", 1),
            ("exited", 1),
            ("health", 1),
            ("operator", 1),
            ("reload", 0),
            ("start_failed", 1),
        ]
    );
    assert_eq!(r.last_restart.map(|r| r.as_str()), Some("enabled"));
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_phase_counts_its_results_conflicts_and_refusals() {
    let launcher = FakeLauncher::new();
    let (one, one_spec) = plugin(&launcher, "one");
    let (two, two_spec) = plugin(&launcher, "two");
    let parallel = PhaseSpec {
        mode: Mode::Parallel,
        ..PhaseSpec::default()
    };
    let config = HostConfig {
        plugins: vec![one_spec, two_spec],
        phases: [("p".to_owned(), parallel)].into(),
        ..HostConfig::default()
    };
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    let same = || PatchOp::set("/x", 1).unwrap();
    one.script_calls([
        continuing(Vec::new()),
        continuing(vec![same()]),
        FakeCall::Reply(Reply::Abort {
            message: "no".into(),
        }),
    ]);
    two.script_calls([
        continuing(Vec::new()),
        continuing(vec![same()]),
        continuing(Vec::new()),
    ]);
    assert!(host.dispatch("p", Map::new()).await.passed());
    host.dispatch("p", Map::new()).await;
    host.dispatch("p", Map::new()).await;
    // Not routed: no figures for a phase named at will.
    host.dispatch("nobody-routes-this", Map::new()).await;
    host.shutdown().await;
    host.dispatch("p", Map::new()).await;

    let figures = host.figures();
    let p = figures.phase("p").unwrap();
    let verdicts: Vec<(&str, u64)> = p.verdicts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        verdicts,
        [("failed", 1), ("passed", 1), ("refused", 1), ("vetoed", 1)]
    );
    assert_eq!(p.conflicts, 1);
    // Refused dispatches are not timed; the buckets are cumulative.
    assert_eq!(p.duration.count, 3);
    let counts: Vec<u64> = p.duration.buckets.iter().map(|(_, c)| *c).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(counts.last().is_some_and(|c| *c <= 3), "{counts:?}");
    assert!(figures.phase("nobody-routes-this").is_none());
    // The job profile's phases are routed, so listed, at zero.
    assert_eq!(figures.phase("cleanup").unwrap().duration.count, 0);
    // A conflict fails both plugins' calls.
    let two = figures.plugin("two").unwrap().outcomes();
    assert_eq!((two.ok, two.failed), (2, 1));
    assert_eq!(figures.plugin("one").unwrap().outcomes().vetoed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_job_on_the_host_is_counted_by_result() {
    let launcher = FakeLauncher::new();
    let veto = launcher.plugin("veto", &[("pre_validation", 0, false)]);
    let config = HostConfig {
        plugins: vec![PluginSpec::new("veto", "/fake/veto")],
        ..HostConfig::default()
    };
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    veto.script_calls([FakeCall::Reply(Reply::Abort {
        message: "not today".into(),
    })]);
    let (_interrupt, interrupted) = tokio::sync::watch::channel(false);
    let dry = |_| Job {
        command: vec!["true".into()],
        env: Map::new(),
        dry_run: true,
    };
    let vetoed = job::run(&host, dry(()), interrupted.clone()).await;
    let passed = job::run(&host, dry(()), interrupted).await;
    assert_eq!(
        (JobResult::of(&vetoed), JobResult::of(&passed)),
        (JobResult::Failed(FailureKind::Vetoed), JobResult::Succeeded)
    );
    let jobs = host.figures().jobs;
    assert_eq!(jobs.get(JobResult::Succeeded), 1);
    assert_eq!(jobs.get(JobResult::Failed(FailureKind::Vetoed)), 1);
    assert_eq!(jobs.by_result.values().sum::<u64>(), 2);
    host.stop().await;
}

#[test]
fn the_ledger_keeps_at_most_so_many_phases_apart() {
    let ledger = super::Ledger::default();
    for i in 0..super::MAX_PHASES {
        assert!(ledger.phase(&format!("phase-{i}")).is_some());
    }
    assert!(ledger.phase("one-too-many").is_none());
    // Those it has are still handed out.
    assert!(ledger.phase("phase-0").is_some());
    assert_eq!(ledger.figures().phases.len(), super::MAX_PHASES);
}
