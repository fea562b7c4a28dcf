//! Supervision in memory: fake instances from the fake launcher, time
//! paused (it jumps to the next timer whenever every task waits), so a
//! minute of backoff and health checks takes milliseconds and every delay is
//! measured exactly.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use outboard_proto::patch::PatchOp;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::launch::Exit;
use tokio::time::Instant;

use super::fake::{Ending, FakeCall, FakeHealth, FakeLauncher, FakePlugin, FakeStart};
use super::{Instance, State, Status, Supervisor};
use crate::config::{
    FailurePolicy, HostConfig, PhaseSpec, PluginSpec, RestartPolicy, Retry, SubscriptionOverride,
    Supervision,
};
use crate::dispatch::{FailureKind, Outcome, Verdict};
use crate::error::{CallError, ErrorKind};
use crate::host::Host;
use crate::instance::Reply;
use crate::sandbox::Wall;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// Long enough for anything a test waits for; only virtual time passes.
const PATIENCE: Duration = Duration::from_secs(3600);

/// A fake plugin `name` under a supervisor with `knobs`.
async fn supervised(name: &str, knobs: Supervision) -> (Arc<FakePlugin>, Arc<Supervisor>) {
    let launcher = FakeLauncher::new();
    let plugin = launcher.plugin(name, &[("x", 0, false)]);
    let mut spec = PluginSpec::new(name, format!("/fake/{name}"));
    spec.supervision = knobs;
    let first = plugin.start(&spec).await.unwrap();
    let supervisor = Supervisor::supervise(first, launcher);
    (plugin, supervisor)
}

/// Knobs where only what a test sets matters: no crash-loop quarantine and
/// no stable-run reset unless asked for.
fn knobs() -> Supervision {
    Supervision {
        crash_loop_starts: 1000,
        backoff_reset_after: PATIENCE,
        ..Supervision::default()
    }
}

/// The status once `what` holds, waiting for the change events.
async fn until(supervisor: &Supervisor, what: impl Fn(&Status) -> bool) -> Status {
    let mut changes = supervisor.subscribe();
    let wait = async {
        let mut status = supervisor.status();
        loop {
            if what(&status) {
                return status;
            }
            status = match changes.recv().await {
                Ok(status) => status,
                Err(RecvError::Lagged(_)) => supervisor.status(),
                Err(RecvError::Closed) => panic!("the supervisor is gone: {status:?}"),
            };
        }
    };
    match tokio::time::timeout(PATIENCE, wait).await {
        Ok(status) => status,
        Err(_) => panic!("never reached: {:?}", supervisor.status()),
    }
}

/// The status once the plugin is ready after `starts` starts.
async fn ready_after(supervisor: &Supervisor, starts: u32) -> Status {
    until(supervisor, |s| {
        s.state == State::Ready && s.starts == starts
    })
    .await
}

/// The time between consecutive starts, from the `from`-th on.
fn gaps(plugin: &FakePlugin, from: usize) -> Vec<Duration> {
    let starts = plugin.starts();
    starts[from..].windows(2).map(|w| w[1] - w[0]).collect()
}

fn failed_start() -> FakeStart {
    FakeStart::Fail(ErrorKind::ExitedBeforeHandshake {
        status: "status 3".into(),
        stderr: vec!["cannot start".into()],
    })
}

/// A wall of `setting` with `value`, built by `mechanism`.
fn wall(setting: &str, value: &str, mechanism: &str) -> Wall {
    Wall {
        setting: setting.into(),
        value: value.into(),
        mechanism: mechanism.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_walls_shown_are_the_latest_starts_and_outlast_its_exit() {
    let launcher = FakeLauncher::new();
    let plugin = launcher.plugin("walled", &[("x", 0, false)]);
    let first = vec![wall("memory", "64Mi", "cgroup v1 memory.limit_in_bytes")];
    plugin.walled(first.clone());
    let spec = PluginSpec::new("walled", "/fake/walled");
    let started = plugin.start(&spec).await.unwrap();
    let supervisor = Supervisor::supervise(started, launcher);
    assert_eq!(&*supervisor.sandbox(), first.as_slice());

    // Crashed, and its next start failed: still the walls of the start
    // that ran.
    let second = vec![wall("network", "none", "network namespace of its own")];
    plugin.walled(second.clone());
    plugin.script_starts([failed_start()]);
    plugin.instance().crash();
    plugin.wait_for_starts(2).await;
    until(&supervisor, |s| {
        s.state == State::Restarting && s.starts == 2
    })
    .await;
    assert_eq!(&*supervisor.sandbox(), first.as_slice());

    // The next start that succeeds brings its own.
    ready_after(&supervisor, 3).await;
    assert_eq!(&*supervisor.sandbox(), second.as_slice());
    supervisor.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_first_restart_is_immediate_then_backoff_doubles_with_jitter_up_to_the_cap() {
    let (plugin, sup) = supervised(
        "flaky",
        Supervision {
            backoff_initial: 100 * MS,
            backoff_max: SECOND,
            ..knobs()
        },
    )
    .await;
    plugin.script_starts((0..7).map(|_| failed_start()));
    let crashed_at = Instant::now();
    plugin.instance().crash();
    ready_after(&sup, 9).await;

    assert_eq!(
        plugin.starts()[1],
        crashed_at,
        "the first restart waits for nothing"
    );
    let full = [100, 200, 400, 800, 1000, 1000, 1000].map(|ms| ms * MS);
    let gaps = gaps(&plugin, 1);
    assert_eq!(gaps.len(), full.len());
    for (gap, full) in gaps.iter().zip(full) {
        // Timers have a millisecond's resolution.
        assert!(
            *gap >= full / 2 && *gap <= full + MS,
            "{gap:?} not within [{:?}, {full:?}]: {gaps:?}",
            full / 2
        );
    }
    assert_eq!(plugin.instances()[0].ending(), Some(Ending::Killed));
}

#[tokio::test(start_paused = true)]
async fn a_stable_run_resets_the_backoff() {
    let (plugin, sup) = supervised(
        "steady",
        Supervision {
            backoff_initial: 100 * MS,
            backoff_reset_after: 60 * SECOND,
            ..knobs()
        },
    )
    .await;
    // Two crashes in a row: the second restart waits.
    plugin.instance().crash();
    ready_after(&sup, 2).await;
    plugin.instance().crash();
    ready_after(&sup, 3).await;
    let waited = gaps(&plugin, 1)[0];
    assert!(waited >= 50 * MS && waited <= 100 * MS, "{waited:?}");

    // A minute up is stable: the next crash is a first one again.
    tokio::time::sleep(60 * SECOND).await;
    let crashed_at = Instant::now();
    plugin.instance().crash();
    ready_after(&sup, 4).await;
    assert_eq!(plugin.starts()[3], crashed_at);
    // And the one after it waits the initial delay, not double.
    plugin.instance().crash();
    ready_after(&sup, 5).await;
    let waited = gaps(&plugin, 3)[0];
    assert!(waited >= 50 * MS && waited <= 100 * MS, "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn starts_older_than_the_crash_loop_window_fall_out_of_it() {
    let (plugin, sup) = supervised(
        "flappy",
        Supervision {
            crash_loop_starts: 3,
            crash_loop_window: 60 * SECOND,
            ..knobs()
        },
    )
    .await;
    plugin.instance().crash();
    ready_after(&sup, 2).await;
    tokio::time::sleep(30 * SECOND).await;
    plugin.instance().crash();
    ready_after(&sup, 3).await;
    // Three starts within a minute; but by now the first two are older than
    // the window, so this crash is restarted.
    tokio::time::sleep(31 * SECOND).await;
    plugin.instance().crash();
    ready_after(&sup, 4).await;
    plugin.instance().crash();
    ready_after(&sup, 5).await;
    // Now three starts are within the window: the next crash quarantines.
    plugin.instance().crash();
    let status = until(&sup, |s| s.state == State::Failed).await;
    assert_eq!(
        status.reason.as_deref(),
        Some("crash loop: 3 starts within 1m, the last failure: exited with signal 9 (SIGKILL)")
    );
    assert_eq!(plugin.starts().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn missed_health_checks_restart_the_instance() {
    let (plugin, sup) = supervised("sickly", knobs()).await;
    let first = plugin.instance();
    let since = Instant::now();
    first.set_health(FakeHealth::NotServing);
    let status = until(&sup, |s| s.state == State::Unhealthy).await;
    // Checked every 5 s; the third miss in a row restarts it.
    assert_eq!(since.elapsed(), 15 * SECOND);
    assert_eq!(
        status.reason.as_deref(),
        Some("3 health checks missed in a row, the last: health status is NOT_SERVING")
    );
    let status = ready_after(&sup, 2).await;
    assert_eq!(first.ending(), Some(Ending::Killed));
    assert_ne!(status.pid, Some(first.pid()));
}

#[tokio::test(start_paused = true)]
async fn the_last_health_check_is_kept_with_its_misses_and_message() {
    let (plugin, sup) = supervised("watched", knobs()).await;
    assert_eq!(
        sup.last_health_check(),
        None,
        "no check before the first interval"
    );
    tokio::time::sleep(5 * SECOND + SECOND / 2).await;
    let check = sup.last_health_check().expect("a check after one interval");
    assert!(check.passed);
    assert_eq!((check.message, check.misses), (None, 0));
    plugin.instance().set_health(FakeHealth::NotServing);
    tokio::time::sleep(5 * SECOND).await;
    let check = sup.last_health_check().expect("a second check");
    assert!(!check.passed);
    assert_eq!(check.misses, 1);
    assert_eq!(
        check.message.as_deref(),
        Some("health status is NOT_SERVING")
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_that_hangs_is_a_miss_at_its_timeout() {
    let (plugin, sup) = supervised("stuck", knobs()).await;
    let since = Instant::now();
    plugin.instance().set_health(FakeHealth::Hang);
    let status = until(&sup, |s| s.state == State::Unhealthy).await;
    // Checks at 5, 10 and 15 s, each cut off after the call timeout (2 s).
    assert_eq!(since.elapsed(), 17 * SECOND);
    assert!(
        status
            .reason
            .unwrap()
            .ends_with("health check failed: timed out after 2s"),
        "{:?}",
        sup.status()
    );
}

/// A health check belongs to the instance that answered it: once that
/// instance is gone (restarted, or quarantined), no check is shown until
/// the next instance's first.
#[tokio::test(start_paused = true)]
async fn the_last_health_check_goes_with_its_instance() {
    for crash_loop_starts in [1000, 1] {
        let (plugin, sup) = supervised(
            "checked",
            Supervision {
                crash_loop_starts,
                ..knobs()
            },
        )
        .await;
        let first = sup.status().pid;
        tokio::time::sleep(5 * SECOND + SECOND / 2).await;
        assert!(sup.last_health_check().expect("a first check").passed);
        plugin.instance().crash();
        let status = until(&sup, |s| {
            s.state == State::Failed || (s.state == State::Ready && s.pid != first)
        })
        .await;
        assert_eq!(
            sup.last_health_check(),
            None,
            "the dead instance's check, shown at {status:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_of_one_start_says_start_not_starts() {
    let (plugin, sup) = supervised(
        "once",
        Supervision {
            crash_loop_starts: 1,
            ..knobs()
        },
    )
    .await;
    plugin.instance().crash();
    let status = until(&sup, |s| s.state == State::Failed).await;
    let reason = status.reason.unwrap();
    assert!(
        reason.starts_with("crash loop: 1 start within 1m, the last failure: "),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quarantined_plugin_stays_down_until_restarted() {
    let (plugin, sup) = supervised(
        "broken",
        Supervision {
            crash_loop_starts: 2,
            ..knobs()
        },
    )
    .await;
    plugin.script_starts([failed_start()]);
    plugin.instance().crash();
    let status = until(&sup, |s| s.state == State::Failed).await;
    let reason = status.reason.unwrap();
    assert!(
        reason.starts_with("crash loop: 2 starts within 1m, the last failure: exited with status 3 before the handshake"),
        "{reason}"
    );
    assert!(reason.contains("cannot start"), "{reason}");

    // An hour later it is still down, and callers hear why at once.
    tokio::time::sleep(PATIENCE).await;
    assert_eq!(sup.state(), State::Failed);
    assert_eq!(plugin.starts().len(), 2);
    let asked = Instant::now();
    let err = sup.ready(asked + SECOND).await.unwrap_err();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert!(err.to_string().contains("quarantined"), "{err}");

    sup.restart();
    ready_after(&sup, 3).await;
    assert_eq!(plugin.starts().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_starting_abandons_the_start() {
    let (plugin, sup) = supervised("slow", knobs()).await;
    plugin.script_starts([FakeStart::Hang]);
    plugin.instance().crash();
    plugin.wait_for_starts(2).await;
    assert_eq!(sup.state(), State::Starting);
    sup.stop().await;
    assert_eq!(sup.state(), State::Stopped);
    assert_eq!(plugin.abandoned(), 1);
    assert_eq!(plugin.instances().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_disable_while_starting_abandons_the_start_and_only_an_enable_starts_it_again() {
    let (plugin, sup) = supervised("slow", knobs()).await;
    plugin.script_starts([FakeStart::Hang]);
    plugin.instance().crash();
    plugin.wait_for_starts(2).await;
    sup.disable().await;
    let status = sup.status();
    assert_eq!(
        (status.state, status.pid, status.since),
        (State::Disabled, None, None)
    );
    assert_eq!(plugin.abandoned(), 1);

    // An hour later, a restart request included, it is still disabled.
    sup.restart();
    tokio::time::sleep(PATIENCE).await;
    assert_eq!(sup.state(), State::Disabled);
    assert_eq!(plugin.starts().len(), 2);
    let err = sup.ready(Instant::now() + SECOND).await.unwrap_err();
    assert!(err.to_string().contains("disabled"), "{err}");

    sup.enable();
    let status = ready_after(&sup, 3).await;
    assert!(status.since.is_some());
    assert_eq!(plugin.instances().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_ready_terminates_the_instance() {
    let (plugin, sup) = supervised("calm", knobs()).await;
    sup.stop().await;
    assert_eq!(sup.status().state, State::Stopped);
    assert_eq!(sup.status().pid, None);
    assert_eq!(plugin.instance().ending(), Some(Ending::Terminated));
}

#[tokio::test(start_paused = true)]
async fn callers_waiting_in_ready_get_the_restarted_instance_or_their_deadline() {
    let (plugin, sup) = supervised("steady", knobs()).await;
    plugin.script_starts([FakeStart::ReadyAfter(300 * MS)]);
    let first = plugin.instance();
    first.crash();
    let asked = Instant::now();
    let patient = async {
        let ready = sup.ready(asked + SECOND).await;
        (ready, asked.elapsed())
    };
    let hurried = async {
        let ready = sup.ready(asked + 100 * MS).await;
        (ready, asked.elapsed())
    };
    let ((patient, waited), (hurried, gave_up)) = tokio::join!(patient, hurried);

    let instance = patient.unwrap();
    assert_eq!(waited, 300 * MS);
    assert_eq!(instance.pid(), plugin.instance().pid());
    assert_ne!(instance.pid(), first.pid());
    assert_eq!(gave_up, 100 * MS);
    let err = hurried.unwrap_err();
    assert!(
        matches!(&err, CallError::NotReady(m) if m.starts_with("still starting at the call's deadline")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_every_state_of_a_restart() {
    let (plugin, sup) = supervised("watched", knobs()).await;
    let mut changes = sup.subscribe();
    plugin.instance().crash();
    let mut seen = Vec::new();
    while seen.last() != Some(&State::Ready) {
        seen.push(changes.recv().await.unwrap().state);
    }
    assert_eq!(seen, [State::Restarting, State::Starting, State::Ready]);
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_only_failed_exits_and_never_leaves_it_failed() {
    let (plugin, sup) = supervised(
        "picky",
        Supervision {
            restart: RestartPolicy::OnFailure,
            ..knobs()
        },
    )
    .await;
    plugin.instance().exit(Exit::with_code(1));
    ready_after(&sup, 2).await;
    plugin.instance().exit(Exit::with_code(0));
    let status = until(&sup, |s| s.state == State::Failed).await;
    assert_eq!(status.reason.as_deref(), Some("exited with status 0"));

    let (plugin, sup) = supervised(
        "once",
        Supervision {
            restart: RestartPolicy::Never,
            ..knobs()
        },
    )
    .await;
    plugin.instance().crash();
    let status = until(&sup, |s| s.state == State::Failed).await;
    assert_eq!(status.starts, 1);
    // Restarted by hand, it comes back.
    sup.restart();
    ready_after(&sup, 2).await;
}

// === dispatch through Supervisor::ready ===

/// A host over fake plugins, each `(name, priority, idempotent)` subscribing
/// to phase `x` (fail open) with up to 3 attempts.
async fn host_of(plugins: &[(&str, i32, bool)]) -> (Host, Vec<Arc<FakePlugin>>) {
    let launcher = FakeLauncher::new();
    let retry = SubscriptionOverride {
        retry: Some(Retry {
            attempts: 3,
            backoff: 10 * MS,
        }),
        ..Default::default()
    };
    let mut specs = Vec::new();
    let mut fakes = Vec::new();
    for &(name, priority, idempotent) in plugins {
        fakes.push(launcher.plugin(name, &[("x", priority, idempotent)]));
        let mut spec = PluginSpec::new(name, format!("/fake/{name}"));
        spec.subscriptions.insert("x".into(), retry);
        specs.push(spec);
    }
    let phase = PhaseSpec {
        failure_policy: FailurePolicy::FailOpen,
        ..Default::default()
    };
    let config = HostConfig {
        plugins: specs,
        phases: [("x".to_owned(), phase)].into(),
        ..HostConfig::default()
    };
    let host = Host::start_with(&config, launcher).await.unwrap();
    (host, fakes)
}

fn setting(path: &str) -> FakeCall {
    FakeCall::Reply(Reply::Continue {
        patch: vec![PatchOp::set(path, true).unwrap()],
        message: String::new(),
    })
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_subscription_is_retried_after_a_crash_and_others_are_not() {
    let (host, fakes) = host_of(&[("again", 0, true), ("once", 1, false)]).await;
    fakes[0].script_calls([FakeCall::Crash, setting("/again")]);
    fakes[1].script_calls([FakeCall::Crash, setting("/once")]);
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
    // The retry went to the restarted instance.
    let instances = fakes[0].instances();
    assert_eq!(instances.len(), 2);
    assert_eq!(
        instances
            .iter()
            .map(|i| i.invocations())
            .collect::<Vec<_>>(),
        [1, 1]
    );
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_in_ready_for_a_slow_restart() {
    let (host, fakes) = host_of(&[("again", 0, true)]).await;
    fakes[0].script_starts([FakeStart::ReadyAfter(500 * MS)]);
    fakes[0].script_calls([FakeCall::Crash, setting("/again")]);
    let started = Instant::now();
    let report = host.dispatch("x", serde_json::Map::new()).await;
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!(report.entries[0].attempts, 2, "{:?}", report.entries[0]);
    assert_eq!(report.context, json!({"again": true}));
    // It waited for the restart, not for a retry per backoff.
    assert_eq!(started.elapsed(), 500 * MS);
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retries_give_up_after_their_attempts() {
    let (host, fakes) = host_of(&[("again", 0, true)]).await;
    fakes[0].script_calls([FakeCall::Crash, FakeCall::Crash, FakeCall::Crash]);
    let report = host.dispatch("x", serde_json::Map::new()).await;
    let entry = &report.entries[0];
    assert_eq!(
        (entry.outcome, entry.attempts, entry.failure),
        (Outcome::Failed, 3, Some(FailureKind::Crashed))
    );
    ready_after(&host.plugin("again").unwrap(), 4).await;
    assert_eq!(fakes[0].instances().len(), 4, "each crash was restarted");
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_is_retried_and_an_error_answer_is_not() {
    let (host, fakes) = host_of(&[("slow", 0, true), ("wrong", 1, true)]).await;
    fakes[0].script_calls([FakeCall::Hang, setting("/slow")]);
    fakes[1].script_calls([FakeCall::Fail(CallError::Status {
        code: tonic::Code::Internal,
        message: "no".into(),
    })]);
    let started = Instant::now();
    let report = host.dispatch("x", serde_json::Map::new()).await;
    let slow = &report.entries[0];
    assert_eq!((slow.outcome, slow.attempts), (Outcome::Ok, 2), "{slow:?}");
    // Its 2 s call timeout, then the 10 ms retry backoff.
    assert_eq!(started.elapsed(), 2 * SECOND + 10 * MS);
    let wrong = &report.entries[1];
    assert_eq!(
        (wrong.outcome, wrong.attempts, wrong.failure),
        (Outcome::Failed, 1, Some(FailureKind::Error))
    );
    // A timeout does not restart the plugin.
    assert_eq!(fakes[0].instances().len(), 1);
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_plugin_killed_while_the_host_stops_is_not_restarted() {
    let (host, fakes) = host_of(&[("a", 0, false), ("b", 1, false)]).await;
    let host = Arc::new(host);
    // a's call keeps the drain going while b is killed.
    fakes[0].script_calls([FakeCall::Hang]);
    let call = tokio::spawn({
        let host = host.clone();
        async move { host.dispatch("x", serde_json::Map::new()).await }
    });
    while host.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let stopping = tokio::spawn({
        let host = host.clone();
        async move { host.shutdown_within(10 * SECOND).await }
    });
    // The shutdown task runs up to its drain (the gate closed).
    tokio::task::yield_now().await;
    let b = host.plugin("b").unwrap();
    let mut changes = b.subscribe();
    fakes[1].instance().crash();
    let next = changes.recv().await.unwrap();
    assert_eq!(next.state, State::Stopping, "{next:?}");
    assert_eq!(
        next.reason.as_deref(),
        Some("exited with signal 9 (SIGKILL)")
    );
    stopping.await.unwrap();
    call.await.unwrap();
    assert_eq!(b.state(), State::Stopped);
    assert_eq!(fakes[1].starts().len(), 1, "never started again");
}

#[tokio::test(start_paused = true)]
async fn a_stopping_plugin_shows_the_pid_of_the_process_it_stops() {
    let (plugin, sup) = supervised("leaving", knobs()).await;
    let pid = plugin.instance().pid();
    let mut changes = sup.subscribe();
    let stop = tokio::spawn({
        let sup = sup.clone();
        async move { sup.stop().await }
    });
    let stopping = changes.recv().await.unwrap();
    assert_eq!((stopping.state, stopping.pid), (State::Stopping, Some(pid)));
    stop.await.unwrap();
    let stopped = sup.status();
    assert_eq!((stopped.state, stopped.pid), (State::Stopped, None));
}

// === trace spans over dispatch ===

#[tokio::test(start_paused = true)]
async fn each_attempt_is_an_invoke_span_under_the_dispatch_and_a_failed_one_says_why() {
    use opentelemetry::trace::{Status as SpanStatus, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing_subscriber::layer::SubscriberExt;

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    // This test's runtime has one thread: every task sees the subscriber.
    let _traced = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let (host, fakes) = host_of(&[("again", 0, true)]).await;
    fakes[0].script_calls([FakeCall::Crash, setting("/again")]);
    host.dispatch("x", serde_json::Map::new()).await;
    host.stop().await;

    let spans = exporter.get_finished_spans().expect("finished spans");
    let attr = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    // Counts are exported as integers, not strings.
    let int = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .and_then(|kv| match kv.value {
                opentelemetry::Value::I64(n) => Some(n),
                _ => None,
            })
    };
    let [dispatch] = &spans
        .iter()
        .filter(|s| s.name == "outboard.dispatch")
        .collect::<Vec<_>>()[..]
    else {
        panic!("one dispatch span: {spans:?}")
    };
    assert_eq!(attr(dispatch, "outboard.phase").as_deref(), Some("x"));
    assert_eq!(
        attr(dispatch, "outboard.mode").as_deref(),
        Some("sequential")
    );
    assert_eq!(int(dispatch, "outboard.subscribers"), Some(1));
    assert_eq!(
        attr(dispatch, "outboard.verdict").as_deref(),
        Some("passed")
    );

    let mut calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "outboard.invoke")
        .collect();
    calls.sort_by_key(|s| attr(s, "outboard.attempt"));
    let [crashed, ok] = &calls[..] else {
        panic!("two attempts: {spans:?}")
    };
    for call in [crashed, ok] {
        assert_eq!(call.parent_span_id, dispatch.span_context.span_id());
        assert_eq!(attr(call, "outboard.plugin").as_deref(), Some("again"));
        assert_eq!(attr(call, "outboard.phase").as_deref(), Some("x"));
    }
    assert_eq!(int(crashed, "outboard.attempt"), Some(1));
    assert_eq!(
        attr(crashed, "outboard.outcome").as_deref(),
        Some("crashed")
    );
    assert!(
        matches!(&crashed.status, SpanStatus::Error { description } if description.starts_with("crashed: ")),
        "{:?}",
        crashed.status
    );
    assert_eq!(
        attr(crashed, "outboard.failure").as_deref(),
        Some("crashed")
    );
    assert_eq!(int(ok, "outboard.attempt"), Some(2));
    assert_eq!(attr(ok, "outboard.outcome").as_deref(), Some("ok"));
    assert_eq!(attr(ok, "outboard.failure"), None);
    assert_eq!(int(ok, "outboard.patch.ops"), Some(1));
    assert_eq!(ok.status, SpanStatus::Unset);
}
