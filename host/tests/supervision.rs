//! Supervision over real plugin processes: restarts after a kill, waiting
//! dispatches, crash-loop quarantine and manual restart, restart policies,
//! retries of idempotent subscriptions, and graceful shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Sandbox, bin};
use outboard_host::Host;
use outboard_host::launch::ProcStat;
use outboard_host::{FailureKind, Outcome, Verdict};
use outboard_host::{HostConfig, PluginSpec};
use outboard_host::{RestartPolicy, State};
use outboard_host::{Retry, SubscriptionOverride};
use serde_json::json;

fn host_config(plugins: Vec<PluginSpec>) -> HostConfig {
    HostConfig {
        plugins,
        ..HostConfig::default()
    }
}

fn pid_of(host: &Host, name: &str) -> u32 {
    host.plugin(name).unwrap().status().pid.expect("ready")
}

fn kill(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

fn fast(mut spec: PluginSpec) -> PluginSpec {
    spec.supervision.backoff_initial = Duration::from_millis(10);
    spec.supervision.backoff_max = Duration::from_millis(100);
    spec
}

#[tokio::test]
async fn a_killed_plugin_is_restarted_and_a_dispatch_during_the_restart_waits_for_it() {
    let sb = Sandbox::new();
    let mut spec = fast(sb.scripted("steady", "x:0", json!({"x": {"set": {"/answered": true}}})));
    // Slow to come back, so that the dispatch arrives mid-restart.
    spec.env
        .insert("SCRIPTED_START_DELAY_MS".into(), "300".into());
    let host = Host::start(&host_config(vec![spec])).await.unwrap();
    let first = pid_of(&host, "steady");
    kill(first);
    while ProcStat::read(first).is_some() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Dispatched while the plugin restarts: it waits instead of failing.
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert_eq!(report.verdict, Verdict::Passed, "{:?}", report.entries);
    assert_eq!(report.context, json!({"answered": true}));
    let sup = host.plugin("steady").unwrap();
    assert!(
        sup.wait_for_state(State::Ready, Duration::from_secs(5))
            .await
    );
    let status = sup.status();
    assert_eq!(status.starts, 2);
    assert_eq!(status.reason, None);
    let second = pid_of(&host, "steady");
    assert_ne!(first, second);
    assert!(
        ProcStat::read(first).is_none(),
        "the killed process was reaped"
    );
    host.stop().await;
    sb.assert_empty();
}

/// A plugin that starts normally until `marker` exists, then exits at once
/// with a message on stderr.
fn failing_once_marked(
    sb: &Sandbox,
    scratch: &std::path::Path,
    marker: &std::path::Path,
) -> PluginSpec {
    let script = scratch.join("plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {marker} ]; then echo 'cannot start: {marker} is present' >&2; exit 3; fi\nexec {bin}\n",
            marker = marker.display(),
            bin = bin("scripted-plugin").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = fast(sb.scripted("flappy", "x:0", json!({})));
    spec.command = script;
    spec.supervision.crash_loop_starts = 3;
    spec
}

#[tokio::test]
async fn a_crash_loop_is_quarantined_with_its_reason_and_a_manual_restart_revives_it() {
    let sb = Sandbox::new();
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("broken");
    let host = Host::start(&host_config(vec![failing_once_marked(
        &sb,
        scratch.path(),
        &marker,
    )]))
    .await
    .unwrap();
    std::fs::write(&marker, "").unwrap();
    let killed_at = Instant::now();
    kill(pid_of(&host, "flappy"));
    let sup = host.plugin("flappy").unwrap();
    assert!(
        sup.wait_for_state(State::Failed, Duration::from_secs(10))
            .await,
        "{:?}",
        sup.status()
    );
    eprintln!("quarantined {:?} after the kill", killed_at.elapsed());
    let status = sup.status();
    let reason = status.reason.unwrap();
    assert!(
        reason.starts_with("crash loop: 3 starts within 1m"),
        "{reason}"
    );
    assert!(
        reason.contains("exited with status 3 before the handshake"),
        "{reason}"
    );
    assert!(
        reason.contains("cannot start:"),
        "the last stderr lines are kept: {reason}"
    );

    // While quarantined, calls fail at once, saying why.
    let started = Instant::now();
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let entry = &report.entries[0];
    assert_eq!(
        (entry.outcome, entry.failure),
        (Outcome::Failed, Some(FailureKind::Unavailable))
    );
    assert!(entry.message.contains("quarantined"), "{}", entry.message);

    std::fs::remove_file(&marker).unwrap();
    assert!(host.restart("flappy"));
    assert!(
        sup.wait_for_state(State::Ready, Duration::from_secs(10))
            .await,
        "{:?}",
        sup.status()
    );
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert_eq!(report.verdict, Verdict::Passed);
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn restart_never_leaves_an_exited_plugin_failed() {
    let sb = Sandbox::new();
    let mut spec = sb.scripted("once", "x:0", json!({}));
    spec.supervision.restart = RestartPolicy::Never;
    let host = Host::start(&host_config(vec![spec])).await.unwrap();
    kill(pid_of(&host, "once"));
    let sup = host.plugin("once").unwrap();
    assert!(
        sup.wait_for_state(State::Failed, Duration::from_secs(5))
            .await
    );
    assert_eq!(
        sup.status().reason.as_deref(),
        Some("exited with signal 9 (SIGKILL)")
    );
    assert_eq!(sup.status().starts, 1);
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn an_idempotent_subscription_is_retried_after_a_crash_and_others_are_not() {
    let sb = Sandbox::new();
    let scratch = tempfile::tempdir().unwrap();
    let retry = SubscriptionOverride {
        retry: Some(Retry {
            attempts: 3,
            backoff: Duration::from_millis(10),
        }),
        ..Default::default()
    };
    let mut idempotent = fast(sb.scripted(
        "again",
        "x:0:idempotent",
        json!({"x": {"crash_once_marker": scratch.path().join("m1"), "set": {"/again": true}}}),
    ));
    idempotent.subscriptions.insert("x".into(), retry);
    let mut once = fast(sb.scripted(
        "once",
        "x:1",
        json!({"x": {"crash_once_marker": scratch.path().join("m2"), "set": {"/once": true}}}),
    ));
    once.subscriptions.insert("x".into(), retry);
    let host = Host::start(&HostConfig {
        phases: [(
            "x".to_owned(),
            outboard_host::PhaseSpec {
                failure_policy: outboard_host::FailurePolicy::FailOpen,
                ..Default::default()
            },
        )]
        .into(),
        ..host_config(vec![idempotent, once])
    })
    .await
    .unwrap();
    let report = host.dispatch("x", serde_json::Map::new()).await;
    let again = &report.entries[0];
    assert_eq!(
        (again.outcome, again.attempts),
        (Outcome::Ok, 2),
        "{again:?}"
    );
    let once = &report.entries[1];
    assert_eq!(
        (once.outcome, once.attempts, once.failure),
        (Outcome::Failed, 1, Some(FailureKind::Crashed))
    );
    assert_eq!(report.context, json!({"again": true}));
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn shutdown_refuses_new_dispatches_and_stops_every_plugin() {
    let sb = Sandbox::new();
    let host = Host::start(&host_config(vec![
        sb.scripted("a", "x:0", json!({})),
        sb.scripted("b", "x:1", json!({})),
    ]))
    .await
    .unwrap();
    let pids = [pid_of(&host, "a"), pid_of(&host, "b")];
    host.shutdown().await;
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert_eq!(
        report.verdict,
        Verdict::Failed {
            plugins: vec![],
            error: "the host is shutting down".into()
        }
    );
    for name in ["a", "b"] {
        assert_eq!(host.plugin(name).unwrap().state(), State::Stopped);
    }
    for pid in pids {
        assert!(ProcStat::read(pid).is_none(), "{pid} still exists");
    }
    drop(host);
    sb.assert_empty();
}

#[tokio::test]
async fn a_plugin_reporting_not_serving_is_restarted_after_its_misses() {
    let sb = Sandbox::new();
    let mut spec = fast(sb.stress("sickly", "x:0", json!({"health": "not_serving_after:1"})));
    spec.supervision.health_interval = Duration::from_millis(100);
    spec.supervision.health_misses = 2;
    let host = Host::start(&host_config(vec![spec])).await.unwrap();
    let first = pid_of(&host, "sickly");
    // The first call turns it NOT_SERVING; two misses later it is restarted.
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert_eq!(report.verdict, Verdict::Passed);
    let sup = host.plugin("sickly").unwrap();
    let restarted = async {
        loop {
            let status = sup.status();
            if status.starts >= 2 && status.state == State::Ready {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(10), restarted)
        .await
        .expect("restarted within 10 s");
    assert_ne!(status.pid, Some(first));
    assert!(
        ProcStat::read(first).is_none(),
        "the unhealthy process was killed and reaped"
    );
    // The new instance counts from 1 again.
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert_eq!(report.context["metadata"]["stress"]["sickly"]["count"], 1);
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn a_plugin_whose_health_check_hangs_is_restarted() {
    let sb = Sandbox::new();
    let mut spec = fast(sb.stress("stuck", "x:0", json!({"health": "stop_answering_after:1"})));
    spec.supervision.health_interval = Duration::from_millis(100);
    spec.supervision.health_misses = 2;
    spec.call_timeout = Duration::from_millis(200);
    let host = Host::start(&host_config(vec![spec])).await.unwrap();
    let first = pid_of(&host, "stuck");
    host.dispatch("x", serde_json::Map::new()).await;
    let sup = host.plugin("stuck").unwrap();
    let restarted = async {
        while sup.status().starts < 2 || sup.state() != State::Ready {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), restarted)
        .await
        .expect("restarted within 10 s");
    assert_ne!(pid_of(&host, "stuck"), first);
    host.stop().await;
    sb.assert_empty();
}
