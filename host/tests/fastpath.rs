//! The invoke fast path against real plugin processes: the same dispatches
//! give the same reports over the fast path and over gRPC (a property
//! test), and plugins that offer the fast path but fail on its socket are
//! reported naming them and the fast path, and restarted.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Sandbox;
use outboard_host::{
    FailureKind, FailurePolicy, Host, HostConfig, Mode, Outcome, PhaseSpec, Plugin, RestartReason,
    State,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

const PLUGINS: [&str; 3] = ["alpha", "bravo", "charlie"];

/// The phases every plugin subscribes to, and how they run.
const PHASES: [(&str, Mode, FailurePolicy); 3] = [
    ("seq", Mode::Sequential, FailurePolicy::FailClosed),
    ("par", Mode::Parallel, FailurePolicy::FailOpen),
    ("parc", Mode::Parallel, FailurePolicy::FailClosed),
];

/// A call's timeout, and how long a plugin told to time out sleeps.
const TIMEOUT: Duration = Duration::from_secs(1);
const SLEEP_MS: u64 = 3_000;

/// Three scripted plugins, each doing what the context's `/do/<name>`
/// says, over the fast path or not.
fn config(sb: &Sandbox, fastpath: bool) -> HostConfig {
    let plugins = PLUGINS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let script = json!({"from_context": "/do"});
            let scripts: Map<String, Value> = PHASES
                .iter()
                .map(|(phase, ..)| ((*phase).to_owned(), script.clone()))
                .collect();
            let subscribe: Vec<String> = PHASES
                .iter()
                .map(|(phase, ..)| format!("{phase}:{i}"))
                .collect();
            let mut spec = sb.scripted(name, &subscribe.join(","), Value::Object(scripts));
            spec.fastpath = fastpath;
            spec.call_timeout = TIMEOUT;
            spec
        })
        .collect();
    HostConfig {
        plugins,
        phases: PHASES
            .iter()
            .map(|&(name, mode, failure_policy)| {
                let spec = PhaseSpec {
                    mode,
                    timeout: None,
                    failure_policy,
                };
                (name.to_owned(), spec)
            })
            .collect::<BTreeMap<_, _>>(),
        ..HostConfig::default()
    }
}

/// Any JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        "[a-z\u{e9}\u{4e2d} ]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Where a plugin may write: existing and missing paths, into objects and
/// arrays, some of which do not apply.
fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "/data/a",
        "/data/b",
        "/data/list",
        "/data/a/deep",
        "/out/x",
        "/out",
        "/nope/x",
        "/data/list/0",
    ])
    .prop_map(str::to_owned)
}

/// What one plugin does: continue with a patch, veto, fail with an error
/// code, or outlive its timeout.
fn script() -> impl Strategy<Value = Value> {
    let patch = (
        prop::collection::btree_map(path(), json_value(), 0..3),
        prop::collection::btree_map(path(), json_value(), 0..2),
        prop::collection::vec(path(), 0..2),
    )
        .prop_map(|(set, append, remove)| json!({"set": set, "append": append, "remove": remove}));
    let kind = prop::sample::select(vec![
        "internal",
        "invalid_context",
        "failed_precondition",
        "unimplemented",
        "unavailable",
    ]);
    prop_oneof![
        6 => patch,
        1 => "[a-z ]{0,12}".prop_map(|m| json!({"abort": m})),
        2 => (kind, "[a-z ]{1,12}").prop_map(|(k, m)| json!({"error": m, "error_kind": k})),
        1 => Just(json!({"sleep_ms": SLEEP_MS})),
    ]
}

/// A context: what each plugin does, and data to patch.
fn context() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::collection::vec(script(), PLUGINS.len()),
        json_value(),
        json_value(),
        prop::collection::vec(json_value(), 0..3),
        json_value(),
    )
        .prop_map(|(scripts, a, b, list, extra)| {
            let scripts: Map<String, Value> = PLUGINS
                .iter()
                .map(|p| (*p).to_owned())
                .zip(scripts)
                .collect();
            let context = json!({
                "do": scripts,
                "data": {"a": a, "b": b, "list": list},
                "extra": extra,
            });
            context.as_object().cloned().unwrap()
        })
}

/// One call of phase `test`, as the fixtures subscribe.
async fn invoke(plugin: &Plugin) -> Result<outboard_host::Reply, outboard_host::CallError> {
    plugin
        .invoke(
            "test",
            "inv-1",
            1,
            Default::default(),
            Duration::from_secs(5),
        )
        .await
}

/// The first status of `plugin` from the call on that `what` accepts;
/// bounded.
fn until<'a>(
    plugin: &'a outboard_host::Supervisor,
    what: impl Fn(&outboard_host::Status) -> bool + 'a,
) -> impl Future<Output = outboard_host::Status> + 'a {
    let mut changes = plugin.subscribe();
    async move {
        let wait = async {
            loop {
                let status = changes.recv().await.unwrap();
                if what(&status) {
                    return status;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("never came; now {:?}", plugin.status()))
    }
}

/// A host running `spec` alone, restarting it after a short backoff.
async fn supervised(mut spec: outboard_host::PluginSpec) -> Host {
    spec.supervision.backoff_initial = Duration::from_millis(10);
    Host::start(&HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    })
    .await
    .unwrap()
}

/// A report as JSON, without what differs from run to run (ids, times).
fn comparable(report: &outboard_host::Report) -> Value {
    let mut report = serde_json::to_value(report).unwrap();
    let object = report.as_object_mut().unwrap();
    object.remove("invocation_id");
    object.remove("duration_ms");
    for entry in object["entries"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("duration_ms");
    }
    report
}

#[test]
fn the_fast_path_and_grpc_give_identical_reports() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sb = Sandbox::new();
    let (fast, grpc) = runtime.block_on(async {
        let fast = Host::start(&config(&sb, true)).await.unwrap();
        let grpc = Host::start(&config(&sb, false)).await.unwrap();
        (fast, grpc)
    });
    for name in PLUGINS {
        let path = |host: &Host| host.plugin(name).unwrap().status().invoke_path;
        assert_eq!(path(&fast), Some("fastpath"), "{name}");
        assert_eq!(path(&grpc), Some("grpc"), "{name}");
    }
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(BTreeMap::<String, usize>::new());
    let result = runner.run(&context(), |context| {
        runtime.block_on(async {
            for (phase, ..) in PHASES {
                let (a, b) = tokio::join!(
                    fast.dispatch(phase, context.clone()),
                    grpc.dispatch(phase, context.clone())
                );
                for entry in &a.entries {
                    let kind = format!("{:?}/{:?}", entry.outcome, entry.failure);
                    *seen.borrow_mut().entry(kind).or_default() += 1;
                }
                let (a, b) = (comparable(&a), comparable(&b));
                if a != b {
                    return Err(TestCaseError::fail(format!(
                        "{phase}: fast path\n{a:#}\ngRPC\n{b:#}"
                    )));
                }
            }
            Ok(())
        })
    });
    let seen = seen.into_inner();
    eprintln!("outcomes over the fast path: {seen:?}");
    runtime.block_on(async {
        fast.stop().await;
        grpc.stop().await;
    });
    sb.assert_empty();
    result.unwrap();
    // The property covered what it claims to.
    for kind in [
        "Ok/None",
        "Vetoed/None",
        "Failed/Some(Error)",
        "Failed/Some(Timeout)",
    ] {
        assert!(seen.contains_key(kind), "no {kind} among {seen:?}");
    }
}

#[tokio::test]
async fn a_plugin_listing_the_fast_path_that_never_binds_it_fails_its_start_naming_the_socket() {
    let sb = Sandbox::new();
    let spec = sb.broken("fast-never-binds");
    let err = Plugin::start(&spec).await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "plugin broken-fast-never-binds: lists invoke-fastpath/1 but its fast path at "
        ) && err.contains("/fast.sock failed: ")
            && err.contains("No such file or directory"),
        "{err}"
    );
    sb.assert_empty();

    // Not offered the fast path, it is not held to it: gRPC serves.
    let mut spec = sb.broken("fast-never-binds");
    spec.fastpath = false;
    let plugin = Plugin::start(&spec).await.unwrap();
    assert_eq!(plugin.invoke_path(), "grpc");
    invoke(&plugin).await.unwrap();
    plugin.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn a_plugin_closing_its_fast_path_at_once_fails_its_start_saying_so() {
    let sb = Sandbox::new();
    let err = Plugin::start(&sb.broken("fast-closes-at-once"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "plugin broken-fast-closes-at-once: lists invoke-fastpath/1 but its fast path at "
        ) && err.contains("HELLO"),
        "{err}"
    );
    sb.assert_empty();
}

#[tokio::test]
async fn an_optional_plugin_whose_fast_path_fails_is_started_again_and_shows_why() {
    let sb = Sandbox::new();
    let mut spec = sb.broken("fast-closes-at-once");
    spec.optional = true;
    let host = supervised(spec).await;
    let plugin = host.plugin("broken-fast-closes-at-once").unwrap();
    // A second failed start: the supervisor keeps trying.
    let status = until(&plugin, |s| s.starts >= 2 && s.state != State::Starting).await;
    let reason = status.reason.unwrap();
    assert!(
        reason.contains("its fast path at ") && reason.contains("HELLO"),
        "{reason}"
    );
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn garbage_on_the_fast_path_fails_the_call_naming_the_plugin_and_the_fast_path() {
    let sb = Sandbox::new();
    let plugin = Plugin::start(&sb.broken("fast-garbage")).await.unwrap();
    assert_eq!(plugin.invoke_path(), "fastpath");
    for _ in 0..2 {
        let err = invoke(&plugin).await.unwrap_err();
        let err = outboard_host::Error::new(plugin.name(), err).to_string();
        assert!(
            err.starts_with(
                "plugin broken-fast-garbage: returned an invalid response: a RESULT that does not decode ("
            ) && err.ends_with(") on its fast path"),
            "{err}"
        );
    }
    // Alive: a malformed answer is the call's failure, not the plugin's end.
    assert!(plugin.exited().is_none());
    plugin.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn a_fast_path_closed_mid_call_fails_the_call_and_the_supervisor_restarts_the_plugin() {
    let sb = Sandbox::new();
    let host = supervised(sb.broken("fast-closes-mid-call")).await;
    let plugin = host.plugin("broken-fast-closes-mid-call").unwrap();
    let first_pid = plugin.status().pid.unwrap();
    assert_eq!(plugin.status().invoke_path, Some("fastpath"));
    let lost = until(&plugin, |s| s.state == State::Restarting);
    let restarted = until(&plugin, |s| s.state == State::Ready && s.starts == 2);
    let report = host.dispatch("test", Map::new()).await;
    let entry = &report.entries[0];
    assert_eq!(
        (entry.outcome, entry.failure),
        (Outcome::Failed, Some(FailureKind::Error)),
        "{entry:?}"
    );
    assert_eq!(
        entry.message,
        "connection lost: its fast-path connection closed: end of stream"
    );
    // Killed and started again, as after a crash.
    assert_eq!(
        lost.await.reason.as_deref(),
        Some("its fast-path connection closed: end of stream")
    );
    let status = restarted.await;
    assert_ne!(status.pid, Some(first_pid));
    assert_eq!(status.invoke_path, Some("fastpath"));
    assert!(ProcGone(first_pid).gone());
    let figures = host.figures();
    let restarts = &figures
        .plugin("broken-fast-closes-mid-call")
        .unwrap()
        .restarts;
    assert_eq!(
        restarts.get(RestartReason::Crashed.as_str()),
        Some(&1),
        "{restarts:?}"
    );
    host.stop().await;
    sb.assert_empty();
}

/// A process id that must no longer run.
struct ProcGone(u32);

impl ProcGone {
    fn gone(&self) -> bool {
        outboard_host::launch::ProcStat::read(self.0).is_none_or(|s| s.zombie)
    }
}
