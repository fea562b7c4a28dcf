//! The host in memory: fake plugins from the fake launcher, time paused
//! where timing matters.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;
use tokio::sync::broadcast;

use super::plan::{self, PluginChange, ReloadPlan, Running};
use super::{Host, HostEvent, NoSuchPlugin, ReloadError};
use crate::config::{HostConfig, PhaseSpec, PluginSpec};
use crate::config::{Mode, RestartPolicy};
use crate::dispatch::{Outcome, Report};
use crate::error::ErrorKind;
use crate::instance::Reply;
use crate::supervisor::fake::{Ending, FakeCall, FakeLauncher, FakePlugin, FakeStart};
use crate::supervisor::{Instance, State};

const SECOND: Duration = Duration::from_secs(1);

/// Long enough for anything a test waits for; only virtual time passes.
const PATIENCE: Duration = Duration::from_secs(3600);

fn spec(name: &str) -> PluginSpec {
    PluginSpec::new(name, format!("/fake/{name}"))
}

/// Fake plugins by name, each subscribing to phase `p` at the priority
/// given, and the config that runs them.
fn fakes(launcher: &FakeLauncher, plugins: &[(&str, i32)]) -> (Vec<Arc<FakePlugin>>, HostConfig) {
    let fakes = plugins
        .iter()
        .map(|&(name, priority)| launcher.plugin(name, &[("p", priority, false)]))
        .collect();
    let config = HostConfig {
        plugins: plugins.iter().map(|&(name, _)| spec(name)).collect(),
        ..HostConfig::default()
    };
    (fakes, config)
}

/// The names of the plugins a report lists, in order.
fn names(report: &Report) -> Vec<&str> {
    report.entries.iter().map(|e| &*e.plugin).collect()
}

/// A call that answers after `delay`.
fn slow(delay: Duration) -> FakeCall {
    FakeCall::ReplyAfter(
        delay,
        Reply::Continue {
            patch: Vec::new(),
            message: String::new(),
        },
    )
}

/// Dispatches phase `p` on its own task.
fn dispatch_p(host: &Arc<Host>) -> tokio::task::JoinHandle<Report> {
    let host = host.clone();
    tokio::spawn(async move { host.dispatch("p", Map::new()).await })
}

/// Waits until the host has `n` dispatches in flight, with a deadline.
async fn until_in_flight(host: &Host, n: usize) {
    tokio::time::timeout(PATIENCE, async {
        while host.in_flight() != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
}

/// The next reload event.
async fn next_reload(events: &mut broadcast::Receiver<HostEvent>) -> (ReloadPlan, Option<String>) {
    loop {
        if let HostEvent::Reload { plan, error } = events.recv().await.unwrap() {
            return (plan, error);
        }
    }
}

#[test]
fn a_plan_sorts_plugins_into_unchanged_added_removed_changed_and_disabled() {
    let (a, b, c, d) = (spec("a"), spec("b"), spec("c"), spec("d"));
    let running = [
        Running {
            spec: &a,
            disabled: false,
        },
        Running {
            spec: &b,
            disabled: false,
        },
        Running {
            spec: &c,
            disabled: false,
        },
        Running {
            spec: &d,
            disabled: true,
        },
    ];
    let mut b2 = b.clone();
    b2.args = vec!["--new".into()];
    b2.config.insert("k".into(), serde_json::json!(1));
    b2.supervision.restart = RestartPolicy::Never;
    let mut d2 = d.clone();
    d2.env.insert("X".into(), "1".into());
    let mut moved = a.clone();
    moved.source = "/elsewhere/plugin.toml".into();
    let config = HostConfig {
        plugins: vec![moved, b2, d2, spec("e")],
        ..HostConfig::default()
    };
    let plan = plan::compute(&running, &Default::default(), &config);
    assert_eq!(
        plan,
        ReloadPlan {
            unchanged: vec!["a".into()],
            added: vec!["e".into()],
            removed: vec!["c".into()],
            changed: vec![PluginChange {
                name: "b".into(),
                fields: vec!["args".into(), "config".into(), "restart".into()],
            }],
            disabled: vec!["d".into()],
            phases_changed: Vec::new(),
        }
    );
    assert!(!plan.is_empty());
}

#[test]
fn another_package_in_the_same_folder_is_a_change() {
    let mut old = spec("p");
    old.package = Some("1".repeat(64));
    let mut new = old.clone();
    assert!(plan::differences(&old, &new).is_empty());
    new.package = Some("2".repeat(64));
    assert_eq!(plan::differences(&old, &new), ["package"]);
    new.package = None;
    assert_eq!(plan::differences(&old, &new), ["package"]);
}

#[test]
fn a_plan_names_phases_declared_added_removed_or_changed() {
    let parallel = PhaseSpec {
        mode: Mode::Parallel,
        ..PhaseSpec::default()
    };
    let old = [
        ("kept", PhaseSpec::default()),
        ("gone", PhaseSpec::default()),
        ("moded", PhaseSpec::default()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into_iter()
    .collect();
    let config = HostConfig {
        phases: [
            ("kept", PhaseSpec::default()),
            ("moded", parallel),
            ("new", PhaseSpec::default()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into_iter()
        .collect(),
        ..HostConfig::default()
    };
    let plan = plan::compute(&[], &old, &config);
    assert_eq!(plan.phases_changed, ["gone", "moded", "new"]);
    assert!(!plan.is_empty());
    assert!(plan::compute(&[], &config.phases, &config).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dispatch_started_before_a_swap_completes_on_the_old_routes_then_the_old_plugin_stops() {
    let launcher = FakeLauncher::new();
    let (old, config) = fakes(&launcher, &[("a", 0), ("b", 1)]);
    let host = Arc::new(Host::start_with(&config, launcher.clone()).await.unwrap());
    let added = launcher.plugin("c", &[("p", 1, false)]);
    old[0].script_calls([slow(SECOND)]);

    let before = dispatch_p(&host);
    until_in_flight(&host, 1).await;
    let next = HostConfig {
        plugins: vec![spec("a"), spec("c")],
        ..HostConfig::default()
    };
    let reload = {
        let host = host.clone();
        tokio::spawn(async move { host.reload(&next).await })
    };
    // The new routing is in while the old dispatch still runs...
    tokio::time::timeout(PATIENCE, async {
        while host.subscribers("p").iter().all(|s| &*s.name != "c") {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let after = host.dispatch("p", Map::new()).await;
    assert_eq!(names(&after), ["a", "c"]);
    // ...and the plugin it removed still runs for it.
    assert_eq!(old[1].instance().ending(), None);
    assert!(!reload.is_finished());

    let before = before.await.unwrap();
    assert_eq!(names(&before), ["a", "b"], "entirely the old routing");
    assert!(before.entries.iter().all(|e| e.outcome == Outcome::Ok));
    assert_eq!(old[1].instance().invocations(), 1);

    let plan = reload.await.unwrap().unwrap();
    assert_eq!(
        (plan.unchanged, plan.removed, plan.added),
        (
            vec!["a".to_owned()],
            vec!["b".to_owned()],
            vec!["c".to_owned()]
        )
    );
    assert_eq!(old[1].instance().ending(), Some(Ending::Terminated));
    assert_eq!(added.instances().len(), 1);
    assert_eq!(
        old[0].instances().len(),
        1,
        "an unchanged plugin keeps its process"
    );
    let names: Vec<String> = host.plugins().iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(names, ["a", "c"]);
}

#[tokio::test(start_paused = true)]
async fn a_changed_plugin_is_replaced_by_a_ready_new_instance() {
    let launcher = FakeLauncher::new();
    let (fakes, config) = fakes(&launcher, &[("a", 0)]);
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    let first = host.plugin("a").unwrap();
    fakes[0].script_starts([FakeStart::ReadyAfter(5 * SECOND)]);
    let mut next = config.clone();
    next.plugins[0].args = vec!["--v2".into()];

    let plan = host.reload(&next).await.unwrap();
    assert_eq!(
        plan.changed,
        [PluginChange {
            name: "a".into(),
            fields: vec!["args".into()]
        }]
    );
    let instances = fakes[0].instances();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[0].ending(), Some(Ending::Terminated));
    assert_eq!(instances[1].ending(), None);
    let now = host.plugin("a").unwrap();
    assert!(!Arc::ptr_eq(&first, &now));
    assert_eq!(now.spec().args, ["--v2"]);
    assert_eq!(first.state(), State::Stopped);
    let report = host.dispatch("p", Map::new()).await;
    assert_eq!(names(&report), ["a"]);
    assert_eq!(instances[1].invocations(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reload_whose_new_plugin_fails_to_start_changes_nothing() {
    let launcher = FakeLauncher::new();
    let (fakes, config) = fakes(&launcher, &[("a", 0), ("b", 1)]);
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    let mut events = host.events();
    let broken = launcher.plugin("broken", &[("p", 2, false)]);
    broken.script_starts([FakeStart::Fail(ErrorKind::ExitedBeforeHandshake {
        status: "status 3".into(),
        stderr: vec!["no config".into()],
    })]);
    let before = host.plugins();
    let mut next = config.clone();
    next.plugins[0].env.insert("X".into(), "1".into());
    next.plugins.remove(1);
    next.plugins.push(spec("broken"));
    next.plugins.push(spec("missing"));

    let err = host.reload(&next).await.unwrap_err();
    let ReloadError::Start(failures) = &err else {
        panic!("{err}")
    };
    let failed: Vec<&str> = failures.0.iter().map(|e| e.plugin.as_str()).collect();
    assert_eq!(failed, ["broken", "missing"]);
    let message = err.to_string();
    assert!(
        message.contains("nothing changed")
            && message.contains("plugin broken: exited with status 3"),
        "{message}"
    );
    assert!(
        message.contains("plugin missing: cannot start"),
        "{message}"
    );

    // The new instance of `a` was stopped; the running set is as it was.
    let a = fakes[0].instances();
    assert_eq!(
        (a.len(), a[0].ending(), a[1].ending()),
        (2, None, Some(Ending::Terminated))
    );
    assert_eq!(fakes[1].instance().ending(), None);
    let after = host.plugins();
    assert_eq!(after.len(), before.len());
    assert!(after.iter().zip(&before).all(|(x, y)| Arc::ptr_eq(x, y)));
    assert_eq!(names(&host.dispatch("p", Map::new()).await), ["a", "b"]);
    let (plan, error) = next_reload(&mut events).await;
    assert_eq!(plan.removed, ["b"]);
    let error = error.unwrap();
    assert!(error.contains("plugin broken"), "{error}");
    // The event says that the reload failed; its error only why.
    assert!(!error.contains("reload failed"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_disabled_plugin_leaves_the_routes_after_its_calls_and_stays_disabled_across_reloads() {
    let launcher = FakeLauncher::new();
    let (fakes, mut config) = fakes(&launcher, &[("a", 0), ("b", 1)]);
    let host = Arc::new(Host::start_with(&config, launcher.clone()).await.unwrap());
    fakes[1].script_calls([slow(SECOND)]);
    let in_flight = dispatch_p(&host);
    until_in_flight(&host, 1).await;

    host.disable("b").await.unwrap();
    // Disabled only once the dispatch that was calling it finished.
    assert!(in_flight.is_finished());
    assert_eq!(names(&in_flight.await.unwrap()), ["a", "b"]);
    let b = host.plugin("b").unwrap();
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.status().since, None);
    assert_eq!(fakes[1].instance().ending(), Some(Ending::Terminated));
    assert_eq!(names(&host.dispatch("p", Map::new()).await), ["a"]);
    assert!(!host.restart("nobody"));
    assert!(host.restart("b"), "known, but a restart does not enable it");
    assert_eq!(
        host.disable("nobody").await,
        Err(NoSuchPlugin("nobody".into()))
    );

    // A reload keeps it disabled, with its new config.
    config.plugins[1].args = vec!["--v2".into()];
    let plan = host.reload(&config).await.unwrap();
    assert_eq!(
        (plan.unchanged, plan.disabled),
        (vec!["a".to_owned()], vec!["b".to_owned()])
    );
    let b = host.plugin("b").unwrap();
    assert_eq!(
        (b.state(), b.spec().args.as_slice()),
        (State::Disabled, ["--v2".to_owned()].as_slice())
    );
    assert_eq!(fakes[1].instances().len(), 1);

    host.enable("b").await.unwrap();
    assert_eq!(b.state(), State::Ready);
    assert!(b.status().since.is_some());
    assert_eq!(fakes[1].instance().spec().args, ["--v2"]);
    assert_eq!(names(&host.dispatch("p", Map::new()).await), ["a", "b"]);

    // Removed while disabled: forgotten.
    host.disable("b").await.unwrap();
    config.plugins.remove(1);
    assert_eq!(host.reload(&config).await.unwrap().removed, ["b"]);
    assert!(host.plugin("b").is_none());
    assert_eq!(b.state(), State::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_restart_with_an_upgraded_manifest_reroutes_the_plugin() {
    let launcher = FakeLauncher::new();
    let (fakes, config) = fakes(&launcher, &[("u", 0)]);
    let host = Host::start_with(&config, launcher).await.unwrap();
    let mut events = host.events();
    assert_eq!(host.subscribers("p").len(), 1);
    fakes[0].upgrade(&[("q", 0, false)]);
    fakes[0].instance().crash();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let HostEvent::Plugin { status, .. } = events.recv().await.unwrap()
                && status.state == State::Ready
            {
                return;
            }
        }
    })
    .await
    .unwrap();
    // Rerouted before the ready event went out.
    assert!(host.subscribers("p").is_empty());
    assert_eq!(host.subscribers("q").len(), 1);
    let manifest = host.plugin("u").unwrap().manifest();
    assert_eq!(manifest.subscriptions[0].phase, "q");
    assert_eq!(names(&host.dispatch("q", Map::new()).await), ["u"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_within_waits_only_so_long_for_calls_in_flight() {
    let launcher = FakeLauncher::new();
    let (fakes, mut config) = fakes(&launcher, &[("a", 0)]);
    config.plugins[0].call_timeout = PATIENCE;
    let host = Arc::new(Host::start_with(&config, launcher).await.unwrap());
    fakes[0].script_calls([FakeCall::Hang]);
    let stuck = dispatch_p(&host);
    until_in_flight(&host, 1).await;

    let started = tokio::time::Instant::now();
    host.shutdown_within(2 * SECOND).await;
    assert_eq!(started.elapsed(), 2 * SECOND);
    assert_eq!(host.plugin("a").unwrap().state(), State::Stopped);
    let report = stuck.await.unwrap();
    assert!(!report.passed(), "its plugin stopped under it");
    let refused = host.dispatch("p", Map::new()).await;
    assert!(refused.entries.is_empty() && !refused.passed());
    assert_eq!(host.in_flight(), 0);
    assert!(matches!(
        host.reload(&config).await,
        Err(ReloadError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn events_carry_status_changes_dispatches_and_reloads() {
    let launcher = FakeLauncher::new();
    let (_fakes, config) = fakes(&launcher, &[("a", 0)]);
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    let mut events = host.events();
    host.dispatch("p", Map::new()).await;
    let Ok(HostEvent::Dispatch(report)) = events.recv().await else {
        panic!("a dispatch")
    };
    assert_eq!(names(&report), ["a"]);
    assert!(
        report.context.is_null(),
        "the caller's context stays the caller's"
    );

    launcher.plugin("n", &[("p", 1, false)]);
    let mut next = config.clone();
    next.plugins.push(spec("n"));
    host.reload(&next).await.unwrap();
    let Ok(HostEvent::Plugin { name, status }) = events.recv().await else {
        panic!("n's status")
    };
    assert_eq!((&*name, status.state), ("n", State::Ready));
    let (plan, error) = next_reload(&mut events).await;
    assert_eq!((plan.added, error), (vec!["n".to_owned()], None));

    // A plugin a reload added reports its changes too.
    host.restart("n");
    let Ok(HostEvent::Plugin { name, status }) = events.recv().await else {
        panic!("n restarting")
    };
    assert_eq!((&*name, status.state), ("n", State::Restarting));
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_would_leave_a_dependency_unmet_changes_nothing_and_one_beside_running_plugins_starts()
 {
    let launcher = FakeLauncher::new();
    let (fakes, config) = fakes(&launcher, &[("app", 1), ("base", 0)]);
    fakes[0].requires(&["base"]);
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();

    // Removing what a running plugin requires is refused, naming both.
    let without_base = HostConfig {
        plugins: vec![spec("app")],
        ..HostConfig::default()
    };
    let err = host.reload(&without_base).await.unwrap_err().to_string();
    assert!(err.contains("plugin app: requires plugin base"), "{err}");
    assert_eq!(fakes[1].instance().ending(), None);
    assert_eq!(
        names(&host.dispatch("p", Map::new()).await),
        ["base", "app"]
    );

    // A new plugin requiring a running one starts beside it.
    let extra = launcher.plugin("extra", &[("p", 2, false)]);
    extra.requires(&["base"]);
    let mut with_extra = config.clone();
    with_extra.plugins.push(spec("extra"));
    assert_eq!(host.reload(&with_extra).await.unwrap().added, ["extra"]);
    assert_eq!(
        names(&host.dispatch("p", Map::new()).await),
        ["base", "app", "extra"]
    );
}

// === optional plugins that fail to start ===

fn cannot_start() -> FakeStart {
    FakeStart::Fail(ErrorKind::ExitedBeforeHandshake {
        status: "status 3".into(),
        stderr: vec!["no licence".into()],
    })
}

#[tokio::test(start_paused = true)]
async fn an_optional_plugin_that_fails_to_start_is_supervised_and_routed_once_it_starts() {
    let launcher = FakeLauncher::new();
    let (fakes, mut config) = fakes(&launcher, &[("core", 0), ("extra", 1)]);
    config.plugins[1].optional = true;
    fakes[1].script_starts([cannot_start()]);
    let host = Host::start_with(&config, launcher).await.unwrap();
    let mut events = host.events();

    // Up without it: its failure is its status, no phase routes to it.
    let extra = host.plugin("extra").expect("supervised");
    let status = extra.status();
    assert_ne!(status.state, State::Ready);
    let reason = status.reason.expect("why");
    assert!(reason.contains("no licence"), "{reason}");
    assert_eq!(names(&host.dispatch("p", Map::new()).await), ["core"]);

    // Its policy starts it again (the first restart is immediate); then
    // it is routed by its real manifest.
    tokio::time::timeout(PATIENCE, async {
        while extra.state() != State::Ready {
            events.recv().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(
        names(&host.dispatch("p", Map::new()).await),
        ["core", "extra"]
    );
    let restarts = host
        .figures()
        .plugins
        .into_iter()
        .find(|p| p.name == "extra");
    assert_eq!(restarts.unwrap().restarts.get("start_failed"), Some(&1));
    host.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_required_plugin_that_fails_to_start_still_fails_the_start() {
    let launcher = FakeLauncher::new();
    let (fakes, mut config) = fakes(&launcher, &[("core", 0), ("extra", 1)]);
    config.plugins[1].optional = true;
    fakes[0].script_starts([cannot_start()]);
    fakes[1].script_starts([cannot_start()]);
    let Err(err) = Host::start_with(&config, launcher).await else {
        panic!("a required plugin's failure fails the start")
    };
    assert_eq!(err.0.len(), 2, "both failures reported: {err}");
}

#[tokio::test(start_paused = true)]
async fn the_secrets_of_the_last_applied_config_are_watched() {
    use crate::config::{SecretSource, SecretSpec};
    let launcher = FakeLauncher::new();
    let (_fakes, mut config) = fakes(&launcher, &[("a", 0)]);
    let env = |var: &str| SecretSpec::new(SecretSource::Env(var.into()));
    config.secrets.insert("k".into(), env("ONE"));
    let host = Host::start_with(&config, launcher.clone()).await.unwrap();
    let mut secrets = host.secrets();
    assert_eq!(secrets.borrow_and_update()["k"], env("ONE"));

    config.secrets.insert("k".into(), env("TWO"));
    host.reload(&config).await.unwrap();
    assert!(secrets.has_changed().unwrap());
    assert_eq!(secrets.borrow_and_update()["k"], env("TWO"));
    host.stop().await;
}
