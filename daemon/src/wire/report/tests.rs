use proptest::prelude::*;
use serde_json::{Map, json};

use super::*;

/// Reports compare by their `Debug` form: every field, durations to the
/// nanosecond, the context and patches exactly (the host's types have no
/// `PartialEq`, on purpose: a report is not a value to compare).
fn same(a: &Report, b: &Report) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn round_trip(report: &Report) -> Report {
    report_from_proto(report_to_proto(report)).expect("a report the host made reads back")
}

fn entry(plugin: &str, outcome: Outcome, failure: Option<FailureKind>) -> Entry {
    Entry {
        plugin: plugin.into(),
        priority: -3,
        policy: FailurePolicy::FailOpen,
        outcome,
        failure,
        duration: Duration::new(1, 2),
        attempts: 2,
        patch: vec![
            PatchOp::set("/env/A~1B", json!({"x": [1, 2.5, null, "é\u{1b}[31m"]})).expect("path"),
            PatchOp::remove("/metadata/gone").expect("path"),
        ],
        message: "line one\nline two".into(),
    }
}

fn sample() -> Report {
    Report {
        phase: "pre_container".into(),
        mode: Mode::Parallel,
        invocation_id: "inv-1".into(),
        verdict: Verdict::Failed {
            plugins: vec!["a".into(), "b".into()],
            error: "both set /env/X".into(),
        },
        entries: vec![
            entry("a", Outcome::Failed, Some(FailureKind::Conflict)),
            entry("b", Outcome::Ok, None),
            entry("c", Outcome::Skipped, None),
        ],
        context: json!({"env": {"X": "1"}, "n": 3, "f": -0.25, "deep": [[{"k": true}]]}),
        duration: Duration::from_micros(1234),
    }
}

#[test]
fn a_report_survives_the_wire_field_for_field() {
    let report = sample();
    let back = round_trip(&report);
    assert!(same(&report, &back), "{report:#?}\n!=\n{back:#?}");
}

#[test]
fn a_masked_null_context_is_sent_unset_and_reads_back_null() {
    let mut report = sample();
    report.context = Value::Null;
    assert_eq!(report_to_proto(&report).context, None);
    assert!(same(&report, &round_trip(&report)));
}

#[test]
fn every_verdict_and_mode_survives() {
    let verdicts = [
        Verdict::Passed,
        Verdict::Vetoed {
            plugin: "gate".into(),
            message: "no".into(),
        },
        Verdict::Failed {
            plugins: Vec::new(),
            error: "the host is shutting down".into(),
        },
    ];
    for verdict in verdicts {
        for mode in [Mode::Sequential, Mode::Parallel] {
            let mut report = sample();
            report.verdict = verdict.clone();
            report.mode = mode;
            assert!(same(&report, &round_trip(&report)), "{verdict:?} {mode:?}");
        }
    }
}

#[test]
fn a_dispatch_event_is_the_report_without_context_or_patches() {
    let event = dispatch_event(&sample());
    assert_eq!(event.phase, "pre_container");
    assert_eq!(event.invocation_id, "inv-1");
    assert_eq!(event.entries.len(), 3);
    assert_eq!(event.entries[0].failure, wire::FailureKind::Conflict as i32);
    assert_eq!(event.entries[2].outcome, wire::EntryOutcome::Skipped as i32);
    let verdict = verdict_from_proto(event.verdict, "verdict").expect("verdict");
    assert_eq!(verdict, sample().verdict);
}

/// A change that spoils a report on the wire.
type Edit = dyn FnOnce(&mut wire::DispatchReport);

fn error_of(edit: impl FnOnce(&mut wire::DispatchReport)) -> String {
    let mut msg = report_to_proto(&sample());
    edit(&mut msg);
    report_from_proto(msg)
        .expect_err("a malformed report is refused")
        .to_string()
}

#[test]
fn a_malformed_report_is_refused_naming_the_field() {
    let cases: [(&str, Box<Edit>); 8] = [
        ("mode = 9", Box::new(|m| m.mode = 9)),
        ("mode = 0", Box::new(|m| m.mode = 0)),
        ("no verdict", Box::new(|m| m.verdict = None)),
        (
            "no verdict",
            Box::new(|m| m.verdict = Some(wire::Verdict { result: None })),
        ),
        (
            "entries[1].outcome = 42",
            Box::new(|m| m.entries[1].outcome = 42),
        ),
        (
            "entries[2].failure = -1",
            Box::new(|m| m.entries[2].failure = -1),
        ),
        (
            "entries[0].policy = 0",
            Box::new(|m| m.entries[0].policy = 0),
        ),
        (
            "entries[0].duration = -1s 0ns",
            Box::new(|m| {
                m.entries[0].duration = Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                })
            }),
        ),
    ];
    for (expected, edit) in cases {
        let err = error_of(edit);
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
}

#[test]
fn nanoseconds_out_of_range_and_a_bad_patch_are_refused() {
    let err = error_of(|m| {
        m.duration = Some(prost_types::Duration {
            seconds: 1,
            nanos: 1_000_000_000,
        })
    });
    assert!(err.contains("duration = 1s 1000000000ns"), "{err}");
    let err = error_of(|m| m.entries[1].patch[0].op = 77);
    assert!(
        err.contains("plugin b") && err.contains("unknown kind 77"),
        "{err}"
    );
    let err = error_of(|m| m.entries[0].patch[1].path = "no-slash".into());
    assert!(
        err.contains("plugin a") && err.contains("no-slash"),
        "{err}"
    );
}

#[test]
fn an_unset_duration_reads_as_zero_and_a_huge_one_saturates() {
    let mut msg = report_to_proto(&sample());
    msg.duration = None;
    let report = report_from_proto(msg).expect("reads");
    assert_eq!(report.duration, Duration::ZERO);
    let wire = duration_to_proto(Duration::MAX);
    assert_eq!(wire.seconds, i64::MAX);
    assert_eq!(wire.nanos, 999_999_999);
}

// === properties: many shapes of report ===

/// JSON the wire carries exactly: integers within ±2^53, numbers with a
/// fractional part, any string, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| json!(n)),
        (-1_000_000i32..1_000_000).prop_map(|n| json!(f64::from(n) + 0.5)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn context() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        proptest::collection::btree_map(any::<String>(), json_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

fn pointer() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z~/]{0,4}", 1..4).prop_map(|tokens| {
        tokens
            .iter()
            .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
            .collect()
    })
}

fn patch_op() -> impl Strategy<Value = PatchOp> {
    (pointer(), proptest::option::of(json_value())).prop_map(|(path, value)| match value {
        Some(value) => PatchOp::set(&path, value).expect("escaped pointer"),
        None => PatchOp::remove(&path).expect("escaped pointer"),
    })
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..10, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0..=i64::MAX as u64, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn outcome_and_failure() -> impl Strategy<Value = (Outcome, Option<FailureKind>)> {
    let kind = prop_oneof![
        Just(FailureKind::Timeout),
        Just(FailureKind::Crashed),
        Just(FailureKind::Unavailable),
        Just(FailureKind::Error),
        Just(FailureKind::Conflict),
        Just(FailureKind::InvalidPatch),
    ];
    prop_oneof![
        Just((Outcome::Ok, None)),
        Just((Outcome::Vetoed, None)),
        Just((Outcome::Skipped, None)),
        kind.prop_map(|k| (Outcome::Failed, Some(k))),
    ]
}

fn report_entry() -> impl Strategy<Value = Entry> {
    (
        any::<String>(),
        any::<i32>(),
        prop_oneof![
            Just(FailurePolicy::FailOpen),
            Just(FailurePolicy::FailClosed)
        ],
        outcome_and_failure(),
        duration(),
        any::<u32>(),
        proptest::collection::vec(patch_op(), 0..3),
        any::<String>(),
    )
        .prop_map(
            |(plugin, priority, policy, (outcome, failure), duration, attempts, patch, message)| {
                Entry {
                    plugin: plugin.into(),
                    priority,
                    policy,
                    outcome,
                    failure,
                    duration,
                    attempts,
                    patch,
                    message,
                }
            },
        )
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Passed),
        (any::<String>(), any::<String>()).prop_map(|(p, message)| Verdict::Vetoed {
            plugin: p.into(),
            message,
        }),
        (
            proptest::collection::vec(any::<String>(), 0..3),
            any::<String>()
        )
            .prop_map(|(plugins, error)| Verdict::Failed {
                plugins: plugins.into_iter().map(Arc::from).collect(),
                error,
            }),
    ]
}

fn report() -> impl Strategy<Value = Report> {
    (
        any::<String>(),
        prop_oneof![Just(Mode::Sequential), Just(Mode::Parallel)],
        any::<String>(),
        verdict(),
        proptest::collection::vec(report_entry(), 0..4),
        context(),
        duration(),
    )
        .prop_map(
            |(phase, mode, invocation_id, verdict, entries, context, duration)| Report {
                phase: phase.into(),
                mode,
                invocation_id,
                verdict,
                entries,
                context,
                duration,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_report_survives_the_wire(report in report()) {
        let back = round_trip(&report);
        prop_assert!(same(&report, &back), "{:#?}\n!=\n{:#?}", report, back);
    }

    #[test]
    fn any_report_survives_encoding_to_bytes(report in report()) {
        use prost::Message;
        let bytes = report_to_proto(&report).encode_to_vec();
        let msg = wire::DispatchReport::decode(bytes.as_slice()).expect("decodes");
        let back = report_from_proto(msg).expect("reads");
        prop_assert!(same(&report, &back));
    }
}
