//! Phase fan-out over real plugin processes: ordering, patches seen by the
//! next plugin, parallel merges and conflicts, vetoes, timeouts, crashes and
//! failure policies. Each test checks the report's contents.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Sandbox;
use outboard_host::Host;
use outboard_host::{FailureKind, Outcome, Report, Verdict};
use outboard_host::{FailurePolicy, Mode, PhaseSpec, SubscriptionOverride};
use outboard_host::{HostConfig, PluginSpec};
use serde_json::{Value, json};

fn config(plugins: Vec<PluginSpec>, phases: &[(&str, Mode, FailurePolicy)]) -> HostConfig {
    HostConfig {
        plugins,
        phases: phases
            .iter()
            .map(|&(name, mode, failure_policy)| {
                (
                    name.to_owned(),
                    PhaseSpec {
                        mode,
                        timeout: None,
                        failure_policy,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        ..HostConfig::default()
    }
}

async fn dispatch(host: &Host, phase: &str, context: Value) -> Report {
    host.dispatch(phase, context.as_object().cloned().unwrap())
        .await
}

fn order(report: &Report) -> Vec<&str> {
    report.entries.iter().map(|e| &*e.plugin).collect()
}

fn outcomes(report: &Report) -> Vec<(&str, Outcome)> {
    report
        .entries
        .iter()
        .map(|e| (&*e.plugin, e.outcome))
        .collect()
}

const SEQ: Mode = Mode::Sequential;
const PAR: Mode = Mode::Parallel;
const OPEN: FailurePolicy = FailurePolicy::FailOpen;
const CLOSED: FailurePolicy = FailurePolicy::FailClosed;

#[tokio::test]
async fn sequential_runs_by_priority_then_name_and_each_sees_the_patches_before_it() {
    let sb = Sandbox::new();
    let append = |name: &str| json!({"p": {"append": {"/trail": name}, "copy": {format!("/saw/{name}"): "/trail"}}});
    let host = Host::start(&config(
        vec![
            sb.scripted("alpha", "p:5", append("alpha")),
            sb.scripted("bravo", "p:1", append("bravo")),
            sb.scripted("charlie", "p:5", append("charlie")),
        ],
        &[("p", SEQ, CLOSED)],
    ))
    .await
    .unwrap();
    let report = dispatch(&host, "p", json!({"trail": [], "saw": {}})).await;
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!(order(&report), ["bravo", "alpha", "charlie"]);
    assert_eq!(
        report.context["trail"],
        json!(["bravo", "alpha", "charlie"])
    );
    // Each plugin saw the trail as left by the plugins before it.
    assert_eq!(report.context["saw"]["bravo"], json!([]));
    assert_eq!(report.context["saw"]["alpha"], json!(["bravo"]));
    assert_eq!(report.context["saw"]["charlie"], json!(["bravo", "alpha"]));
    assert!(
        report
            .entries
            .iter()
            .all(|e| e.outcome == Outcome::Ok && e.patch.len() == 2)
    );
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn parallel_plugins_see_the_same_context_and_their_patches_merge() {
    let sb = Sandbox::new();
    let host = Host::start(&config(
        vec![
            sb.scripted("one", "p:0", json!({"p": {"set": {"/m/one": 1}, "copy": {"/m/one_saw_two": "/m/two"}}})),
            sb.scripted("two", "p:0", json!({"p": {"set": {"/m/two": 2}, "copy": {"/m/two_saw_one": "/m/one"}, "sleep_ms": 50}})),
        ],
        &[("p", PAR, CLOSED)],
    ))
    .await
    .unwrap();
    let report = dispatch(&host, "p", json!({"m": {"before": true}})).await;
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!(
        report.context["m"],
        json!({"before": true, "one": 1, "two": 2, "one_saw_two": null, "two_saw_one": null})
    );
    host.stop().await;
}

#[tokio::test]
async fn overlapping_parallel_patches_fail_the_phase_naming_both_plugins() {
    let sb = Sandbox::new();
    let host = Host::start(&config(
        vec![
            sb.scripted("bystander", "p:0", json!({"p": {"set": {"/other": 1}}})),
            sb.scripted("narrow", "p:0", json!({"p": {"set": {"/env/A": "a"}}})),
            sb.scripted("wide", "p:1", json!({"p": {"remove": ["/env"]}})),
        ],
        &[("p", PAR, CLOSED)],
    ))
    .await
    .unwrap();
    let before = json!({"env": {"A": "0"}});
    let report = dispatch(&host, "p", before.clone()).await;
    let Verdict::Failed { plugins, error } = &report.verdict else {
        panic!("expected a conflict: {:?}", report.verdict);
    };
    let plugins: Vec<&str> = plugins.iter().map(|p| &**p).collect();
    assert_eq!(plugins, ["narrow", "wide"]);
    assert_eq!(
        error,
        "plugins narrow and wide both write /env: narrow writes /env/A, wide writes /env"
    );
    assert_eq!(
        outcomes(&report),
        [
            ("bystander", Outcome::Ok),
            ("narrow", Outcome::Failed),
            ("wide", Outcome::Failed)
        ]
    );
    assert_eq!(report.entries[1].failure, Some(FailureKind::Conflict));
    assert_eq!(
        report.context, before,
        "a failed parallel phase applies nothing"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_veto_stops_the_chain_and_skips_the_rest() {
    let sb = Sandbox::new();
    let host = Host::start(&config(
        vec![
            sb.scripted("first", "p:0", json!({"p": {"set": {"/a": 1}}})),
            sb.scripted(
                "gate",
                "p:1",
                json!({"p": {"abort": "rm -rf is not allowed"}}),
            ),
            sb.scripted("last", "p:2", json!({"p": {"set": {"/b": 1}}})),
        ],
        &[("p", SEQ, CLOSED)],
    ))
    .await
    .unwrap();
    let report = dispatch(&host, "p", json!({})).await;
    assert_eq!(
        report.verdict,
        Verdict::Vetoed {
            plugin: "gate".into(),
            message: "rm -rf is not allowed".into()
        }
    );
    assert_eq!(
        outcomes(&report),
        [
            ("first", Outcome::Ok),
            ("gate", Outcome::Vetoed),
            ("last", Outcome::Skipped)
        ]
    );
    assert_eq!(report.context, json!({"a": 1}));
    assert_eq!(report.entries[2].duration, Duration::ZERO);
    host.stop().await;
}

#[tokio::test]
async fn a_slow_plugin_is_cut_off_at_its_deadline() {
    let sb = Sandbox::new();
    let mut slow = sb.scripted("slow", "p:0", json!({"p": {"sleep_ms": 10_000}}));
    slow.call_timeout = Duration::from_millis(300);
    let host = Host::start(&config(vec![slow], &[("p", SEQ, CLOSED)]))
        .await
        .unwrap();
    let report = dispatch(&host, "p", json!({})).await;
    let entry = &report.entries[0];
    assert_eq!(
        (entry.outcome, entry.failure),
        (Outcome::Failed, Some(FailureKind::Timeout))
    );
    assert_eq!(entry.message, "timed out after 300ms");
    // Cut at the deadline, not when the plugin would have answered.
    assert!(
        entry.duration < Duration::from_secs(5),
        "{:?}",
        entry.duration
    );
    assert!(matches!(report.verdict, Verdict::Failed { .. }));
    host.stop().await;
}

#[tokio::test]
async fn fail_open_records_and_goes_on_fail_closed_stops() {
    let sb = Sandbox::new();
    let plugins = |sb: &Sandbox| {
        vec![
            sb.scripted("broken", "p:0", json!({"p": {"error": "database is down"}})),
            sb.scripted("after", "p:1", json!({"p": {"set": {"/after": true}}})),
        ]
    };
    let open = Host::start(&config(plugins(&sb), &[("p", SEQ, OPEN)]))
        .await
        .unwrap();
    let report = dispatch(&open, "p", json!({})).await;
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!(
        outcomes(&report),
        [("broken", Outcome::Failed), ("after", Outcome::Ok)]
    );
    assert_eq!(report.entries[0].failure, Some(FailureKind::Error));
    assert_eq!(
        report.entries[0].message,
        "returned Internal: database is down"
    );
    assert_eq!(report.context, json!({"after": true}));
    open.stop().await;

    let closed = Host::start(&config(plugins(&sb), &[("p", SEQ, CLOSED)]))
        .await
        .unwrap();
    let report = dispatch(&closed, "p", json!({})).await;
    assert_eq!(
        report.verdict,
        Verdict::Failed {
            plugins: vec!["broken".into()],
            error: "returned Internal: database is down".into()
        }
    );
    assert_eq!(
        outcomes(&report),
        [("broken", Outcome::Failed), ("after", Outcome::Skipped)]
    );
    closed.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn a_plugin_crashing_mid_call_fails_at_once_and_others_still_report() {
    let sb = Sandbox::new();
    let mut crasher = sb.scripted("crasher", "p:0", json!({"p": {"crash": true}}));
    crasher.call_timeout = Duration::from_secs(30);
    let host = Host::start(&config(
        vec![
            crasher,
            sb.scripted("steady", "p:0", json!({"p": {"set": {"/steady": 1}}})),
        ],
        &[("p", PAR, OPEN)],
    ))
    .await
    .unwrap();
    let report = dispatch(&host, "p", json!({})).await;
    assert_eq!(
        report.verdict,
        Verdict::Passed,
        "fail_open: the crash is recorded"
    );
    let crash = &report.entries[0];
    assert_eq!(
        (crash.outcome, crash.failure),
        (Outcome::Failed, Some(FailureKind::Crashed))
    );
    assert!(
        crash
            .message
            .starts_with("crashed: exited with status 101 during the call"),
        "{}",
        crash.message
    );
    assert!(
        crash.message.contains("crashing on purpose"),
        "{}",
        crash.message
    );
    assert!(
        crash.duration < Duration::from_secs(10),
        "reported at once: {:?}",
        crash.duration
    );
    assert_eq!(report.context, json!({"steady": 1}));
    // A second dispatch fails at once too: the plugin is gone.
    let again = dispatch(&host, "p", json!({})).await;
    assert_eq!(again.entries[0].failure, Some(FailureKind::Crashed));
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn the_host_overrides_priority_policy_and_can_disable_a_subscription() {
    let sb = Sandbox::new();
    let mut late = sb.scripted(
        "late",
        "p:100,q:0",
        json!({"p": {"append": {"/trail": "late"}}}),
    );
    late.subscriptions.insert(
        "p".into(),
        SubscriptionOverride {
            priority: Some(-1),
            ..Default::default()
        },
    );
    late.subscriptions.insert(
        "q".into(),
        SubscriptionOverride {
            enabled: false,
            ..Default::default()
        },
    );
    let mut flaky = sb.scripted("flaky", "p:0", json!({"p": {"error": "flaky"}}));
    flaky.subscriptions.insert(
        "p".into(),
        SubscriptionOverride {
            failure_policy: Some(OPEN),
            ..Default::default()
        },
    );
    let early = sb.scripted(
        "early",
        "p:1",
        json!({"p": {"append": {"/trail": "early"}}}),
    );
    let host = Host::start(&config(
        vec![late, flaky, early],
        &[("p", SEQ, CLOSED), ("q", SEQ, CLOSED)],
    ))
    .await
    .unwrap();
    let report = dispatch(&host, "p", json!({"trail": []})).await;
    assert_eq!(order(&report), ["late", "flaky", "early"]);
    assert_eq!(report.verdict, Verdict::Passed);
    assert_eq!(report.context["trail"], json!(["late", "early"]));
    let q = dispatch(&host, "q", json!({})).await;
    assert!(q.entries.is_empty(), "the q subscription is disabled");
    host.stop().await;
}

#[tokio::test]
async fn a_phase_nobody_subscribes_to_passes_empty() {
    let sb = Sandbox::new();
    let host = Host::start(&config(vec![sb.scripted("x", "p:0", json!({}))], &[]))
        .await
        .unwrap();
    let report = dispatch(&host, "nobody", json!({"k": 1})).await;
    assert_eq!(report.verdict, Verdict::Passed);
    assert!(report.entries.is_empty());
    assert_eq!(report.context, json!({"k": 1}));
    host.stop().await;
}

#[tokio::test]
async fn a_start_failure_stops_the_plugins_that_did_start() {
    let sb = Sandbox::new();
    let err = Host::start(&config(
        vec![
            sb.scripted("fine", "p:0", json!({})),
            sb.broken("exit-early"),
        ],
        &[],
    ))
    .await
    .expect_err("one plugin cannot start");
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].plugin, "broken-exit-early");
    sb.assert_empty();
}

/// `n` arrays around a scalar.
fn arrays(n: usize) -> Value {
    (0..n).fold(json!(1), |v, _| json!([v]))
}

/// The phase failed at `plugin` alone, with a message containing `why`;
/// the plugin after it was not called.
fn failed_at(report: &Report, plugin: &str, why: &str) {
    let Verdict::Failed { plugins, error } = &report.verdict else {
        panic!("{:?}", report.verdict);
    };
    assert_eq!(plugins.iter().map(|p| &**p).collect::<Vec<_>>(), [plugin]);
    assert!(error.contains(why), "{error}");
    assert_eq!(
        outcomes(report),
        [(plugin, Outcome::Failed), ("next", Outcome::Skipped)]
    );
    assert_eq!(report.entries[0].failure, Some(FailureKind::InvalidPatch));
}

#[tokio::test]
async fn env_names_execve_would_misread_fail_the_plugin_that_set_them() {
    let sb = Sandbox::new();
    let cases = [
        (
            json!({"/env/A=B": "x"}),
            "\"A=B\" is not a valid environment variable name",
        ),
        (
            json!({"/env/": "x"}),
            "\"\" is not a valid environment variable name",
        ),
        (json!({"/env/A\u{0}B": "x"}), "\"A\\0B\" is not a valid"),
        (
            json!({"/env": {"OK": "1", "C=D": "2"}}),
            "\"C=D\" is not a valid",
        ),
        (
            json!({"/env/OK": "a\u{0}b"}),
            "variable \"OK\" contains a NUL byte",
        ),
    ];
    let plugins = cases
        .iter()
        .enumerate()
        .map(|(i, (set, _))| {
            sb.scripted(
                &format!("bad{i}"),
                &format!("p{i}:0"),
                json!({format!("p{i}"): {"set": set}}),
            )
        })
        .chain([sb.scripted("next", "p0:1,p1:1,p2:1,p3:1,p4:1", json!({}))])
        .collect();
    let host = Host::start(&config(plugins, &[])).await.unwrap();
    for (i, (_, why)) in cases.iter().enumerate() {
        let context = json!({"env": {"PATH": "/bin"}});
        let report = dispatch(&host, &format!("p{i}"), context.clone()).await;
        failed_at(&report, &format!("bad{i}"), why);
        assert_eq!(report.context, context, "nothing applied");
    }
    host.stop().await;
}

#[tokio::test]
async fn a_value_too_deep_to_decode_fails_the_plugin_that_set_it_not_the_next() {
    let sb = Sandbox::new();
    // At /a/b/c/deep the value is at level 12; 43 arrays reach 98, past the
    // limit of 96 that keeps every context decodable. (Its config, sent in
    // Configure, holds it at 95: within the limit.)
    let host = Host::start(&config(
        vec![
            sb.scripted(
                "deep",
                "p:0",
                json!({"p": {"set": {"/a/b/c/deep": arrays(43)}}}),
            ),
            sb.scripted("next", "p:1", json!({"p": {"set": {"/next": true}}})),
        ],
        &[],
    ))
    .await
    .unwrap();
    let report = dispatch(&host, "p", json!({})).await;
    failed_at(&report, "deep", "/a/b/c/deep/0/0");
    assert!(
        report.entries[0].message.contains("nested too deep"),
        "{report:?}"
    );

    // A context too deep to send is refused before anyone is called.
    let report = dispatch(&host, "p", json!({"x": arrays(60)})).await;
    let Verdict::Failed { plugins, error } = &report.verdict else {
        panic!("{:?}", report.verdict);
    };
    assert!(plugins.is_empty());
    assert!(
        error.starts_with("the context cannot be sent to plugins: /x/0"),
        "{error}"
    );
    host.stop().await;
}

#[tokio::test]
async fn two_parallel_plugins_writing_into_one_array_conflict_instead_of_losing_an_element() {
    let sb = Sandbox::new();
    let host = Host::start(&config(
        vec![
            // Removes "a": the set of index 2 below would then land past "c".
            sb.scripted(
                "remover",
                "p:0,q:0",
                json!({"p": {"remove": ["/list/0"]}, "q": {"append": {"/list": "d"}}}),
            ),
            sb.scripted(
                "setter",
                "p:0,q:0",
                json!({"p": {"set": {"/list/2": "C"}}, "q": {"set": {"/list/3": "D"}}}),
            ),
        ],
        &[("p", PAR, CLOSED), ("q", PAR, CLOSED)],
    ))
    .await
    .unwrap();
    for (phase, remover, setter) in [("p", "/list/0", "/list/2"), ("q", "/list/-", "/list/3")] {
        let before = json!({"list": ["a", "b", "c"]});
        let report = dispatch(&host, phase, before.clone()).await;
        let Verdict::Failed { plugins, error } = &report.verdict else {
            panic!("{phase}: {:?}", report.verdict);
        };
        assert_eq!(
            plugins.iter().map(|p| &**p).collect::<Vec<_>>(),
            ["remover", "setter"]
        );
        assert_eq!(
            error,
            &format!(
                "plugins remover and setter both write into the array /list: remover writes {remover}, setter writes {setter}"
            )
        );
        assert_eq!(report.context, before, "{phase}: nothing applied");
    }
    host.stop().await;
}
