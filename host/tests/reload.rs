//! Reloads over real plugin processes: callers dispatching all the while see
//! each dispatch entirely on the old routing or entirely on the new one and
//! none fails; a reload whose new plugin cannot start changes nothing; an
//! operator's disable and enable.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Sandbox;
use outboard_host::{Host, HostConfig, PluginSpec, ReloadError, Report, State};
use serde_json::{Value, json};

/// Callers dispatching at once for the whole of the first test.
const CALLERS: usize = 16;
/// Dispatches each caller still makes once the reload is done.
const AFTER: usize = 5;

/// A scripted plugin subscribed to `test` at `priority` that sets
/// `/seen/<name>` to `version`, after `sleep_ms`.
fn echo(sandbox: &Sandbox, name: &str, priority: i32, version: &str, sleep_ms: u64) -> PluginSpec {
    sandbox.scripted(
        name,
        &format!("test:{priority}"),
        json!({"test": {"sleep_ms": sleep_ms, "set": {format!("/seen/{name}"): version}}}),
    )
}

fn config(plugins: Vec<PluginSpec>) -> HostConfig {
    HostConfig {
        plugins,
        ..HostConfig::default()
    }
}

/// A routing as a report shows it: each plugin and what it wrote.
fn routing(report: &Report) -> (Vec<String>, Value) {
    let names = report
        .entries
        .iter()
        .map(|e| e.plugin.to_string())
        .collect();
    (names, report.context["seen"].clone())
}

/// `(names, seen)` for plugins each with the version it writes.
fn expected(plugins: &[(&str, &str)]) -> (Vec<String>, Value) {
    let names = plugins.iter().map(|(n, _)| (*n).to_owned()).collect();
    let seen: serde_json::Map<String, Value> = plugins
        .iter()
        .map(|(n, v)| ((*n).to_owned(), json!(v)))
        .collect();
    (names, Value::Object(seen))
}

async fn dispatch(host: &Host) -> Report {
    host.dispatch("test", json!({"seen": {}}).as_object().cloned().unwrap())
        .await
}

/// The pids of the running plugins, by name.
fn pids(host: &Host) -> BTreeMap<String, Option<u32>> {
    host.plugins()
        .iter()
        .map(|p| (p.name().to_owned(), p.status().pid))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_dispatching_through_a_reload_each_see_one_whole_routing_and_none_fails() {
    let sandbox = Sandbox::new();
    let before = config(vec![
        echo(&sandbox, "alpha", 1, "v1", 15),
        echo(&sandbox, "beta", 2, "v1", 15),
        echo(&sandbox, "gone", 3, "v1", 5),
        echo(&sandbox, "keep", 4, "v1", 5),
    ]);
    let after = config(vec![
        echo(&sandbox, "alpha", 1, "v2", 15),
        echo(&sandbox, "beta", 2, "v2", 15),
        echo(&sandbox, "fresh", 3, "v2", 5),
        echo(&sandbox, "keep", 4, "v1", 5),
    ]);
    let old = expected(&[
        ("alpha", "v1"),
        ("beta", "v1"),
        ("gone", "v1"),
        ("keep", "v1"),
    ]);
    let new = expected(&[
        ("alpha", "v2"),
        ("beta", "v2"),
        ("fresh", "v2"),
        ("keep", "v1"),
    ]);
    let host = Arc::new(Host::start(&before).await.unwrap());
    let keep_pid = pids(&host)["keep"];

    let reloaded = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (host, reloaded) = (host.clone(), reloaded.clone());
            tokio::spawn(async move {
                let mut reports = Vec::new();
                let mut left = AFTER;
                while left > 0 {
                    if reloaded.load(Ordering::Acquire) {
                        left -= 1;
                    }
                    reports.push(dispatch(&host).await);
                }
                reports
            })
        })
        .collect();
    // Every caller is under way before the reload begins.
    tokio::time::timeout(Duration::from_secs(30), async {
        while host.in_flight() < CALLERS / 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let plan = host.reload(&after).await.unwrap();
    reloaded.store(true, Ordering::Release);
    assert_eq!(plan.unchanged, ["keep"]);
    assert_eq!(plan.added, ["fresh"]);
    assert_eq!(plan.removed, ["gone"]);
    let changed: Vec<_> = plan
        .changed
        .iter()
        .map(|c| (c.name.as_str(), c.fields.clone()))
        .collect();
    assert_eq!(
        changed,
        [
            ("alpha", vec!["config".to_owned()]),
            ("beta", vec!["config".to_owned()])
        ]
    );

    let (mut olds, mut news) = (0, 0);
    for caller in callers {
        for report in caller.await.unwrap() {
            assert!(report.passed(), "{:?}", report.verdict);
            let seen = routing(&report);
            if seen == old {
                olds += 1;
            } else if seen == new {
                news += 1;
            } else {
                panic!("a mixed routing: {seen:?}");
            }
        }
    }
    // At least those in flight when the reload began ran on the old one.
    assert!(olds >= CALLERS / 2, "{olds} dispatches on the old routing");
    assert!(
        news >= CALLERS * AFTER,
        "{news} dispatches on the new routing"
    );
    assert_eq!(
        pids(&host)["keep"],
        keep_pid,
        "an unchanged plugin keeps its process"
    );
    host.shutdown().await;
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_reload_whose_new_plugins_cannot_start_changes_nothing() {
    let sandbox = Sandbox::new();
    let before = config(vec![
        echo(&sandbox, "alpha", 1, "v1", 0),
        echo(&sandbox, "keep", 2, "v1", 0),
    ]);
    let host = Host::start(&before).await.unwrap();
    let running = pids(&host);
    let mut ghost = PluginSpec::new("ghost", "/nonexistent/outboard-ghost-plugin");
    ghost.runtime_base = Some(sandbox.path().to_owned());
    let after = config(vec![
        echo(&sandbox, "alpha", 1, "v2", 0),
        sandbox.broken("exit-early"),
        ghost,
        echo(&sandbox, "keep", 2, "v1", 0),
    ]);

    let err = host.reload(&after).await.unwrap_err();
    let ReloadError::Start(failures) = &err else {
        panic!("{err}")
    };
    let failed: Vec<&str> = failures.0.iter().map(|e| e.plugin.as_str()).collect();
    assert_eq!(failed, ["broken-exit-early", "ghost"]);
    let message = err.to_string();
    assert!(message.contains("nothing changed"), "{message}");
    assert!(
        message.contains("plugin broken-exit-early: exited with status 3 before the handshake"),
        "{message}"
    );
    assert!(
        message.contains("/nonexistent/outboard-ghost-plugin"),
        "{message}"
    );

    assert_eq!(pids(&host), running, "the running set is untouched");
    let report = dispatch(&host).await;
    assert_eq!(
        routing(&report),
        expected(&[("alpha", "v1"), ("keep", "v1")])
    );
    // The new instance of alpha is gone again: only the running plugins'
    // runtime directories are left.
    assert_eq!(std::fs::read_dir(sandbox.path()).unwrap().count(), 2);
    host.shutdown().await;
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_disabled_plugin_stops_and_an_enabled_one_is_routed_again() {
    let sandbox = Sandbox::new();
    let host = Host::start(&config(vec![
        echo(&sandbox, "alpha", 1, "v1", 0),
        echo(&sandbox, "keep", 2, "v1", 0),
    ]))
    .await
    .unwrap();
    let first = pids(&host)["alpha"].unwrap();

    host.disable("alpha").await.unwrap();
    let alpha = host.plugin("alpha").unwrap();
    assert_eq!((alpha.state(), alpha.status().pid), (State::Disabled, None));
    // Its process is gone, and reaped.
    assert!(!std::path::Path::new(&format!("/proc/{first}")).exists());
    assert_eq!(routing(&dispatch(&host).await), expected(&[("keep", "v1")]));

    host.enable("alpha").await.unwrap();
    assert_eq!(alpha.state(), State::Ready);
    assert_ne!(alpha.status().pid, Some(first));
    assert_eq!(
        routing(&dispatch(&host).await),
        expected(&[("alpha", "v1"), ("keep", "v1")])
    );
    host.shutdown().await;
    sandbox.assert_empty();
}
