use serde_json::Value;

use super::*;

/// The shared table, also read by the Python SDK's tests.
const CASES: &str = include_str!("../../testdata/manifest-cases.json");

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// A manifest from its protobuf JSON form (field names as in the .proto).
fn from_json(m: &Value) -> v1::Manifest {
    v1::Manifest {
        name: text(m, "name").into(),
        version: text(m, "version").into(),
        protocol_version: 1,
        description: text(m, "description").into(),
        features: list(m, "features")
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect(),
        subscriptions: list(m, "subscriptions")
            .map(|s| v1::Subscription {
                phase: text(s, "phase").into(),
                priority: s
                    .get("priority")
                    .and_then(Value::as_i64)
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or_default(),
                idempotent: flag(s, "idempotent"),
            })
            .collect(),
        permissions: list(m, "permissions")
            .map(|p| v1::Permission {
                name: text(p, "name").into(),
                reason: text(p, "reason").into(),
            })
            .collect(),
        dependencies: list(m, "dependencies")
            .map(|d| v1::Dependency {
                name: text(d, "name").into(),
                version_req: text(d, "version_req").into(),
                optional: flag(d, "optional"),
            })
            .collect(),
        config_schema: None,
        event_subscriptions: list(m, "event_subscriptions")
            .map(|e| v1::EventSubscription {
                pattern: text(e, "pattern").into(),
            })
            .collect(),
    }
}

#[test]
fn the_shared_table_of_cases() {
    let table: Value = serde_json::from_str(CASES).expect("manifest-cases.json is JSON");
    let cases = table["cases"].as_array().expect("a list of cases");
    assert!(cases.len() > 40, "the table lost its cases");
    for case in cases {
        let errors = check(&from_json(&case["manifest"]));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let expected: Vec<&str> = list(case, "errors").filter_map(Value::as_str).collect();
        assert_eq!(fields, expected, "{}: {errors:?}", case["case"]);
    }
}

#[test]
fn reasons_quote_the_value() {
    let m = v1::Manifest {
        name: "me".into(),
        version: "1.0.0".into(),
        subscriptions: vec![
            v1::Subscription {
                phase: "a".into(),
                ..Default::default()
            },
            v1::Subscription {
                phase: "a".into(),
                ..Default::default()
            },
        ],
        permissions: vec![v1::Permission::default()],
        dependencies: vec![
            v1::Dependency {
                name: "me".into(),
                ..Default::default()
            },
            v1::Dependency {
                name: "b".into(),
                version_req: "~~1".into(),
                ..Default::default()
            },
            v1::Dependency {
                name: "b".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let text: Vec<String> = check(&m).iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 5, "{text:?}");
    assert_eq!(
        text[0],
        r#"field subscriptions[1].phase: "a" is subscribed to twice (also subscriptions[0])"#
    );
    assert_eq!(
        text[1],
        r#"field permissions[0].name: "" is not a permission name (it must not be blank or hold control characters)"#
    );
    assert_eq!(
        text[2],
        r#"field dependencies[0].name: "me" is the plugin itself"#
    );
    assert!(
        text[3].starts_with(
            r#"field dependencies[1].version_req: "~~1" is not a semver requirement: "#
        ),
        "{text:?}"
    );
    assert_eq!(
        text[4],
        r#"field dependencies[2].name: "b" is listed twice (also dependencies[1])"#
    );
}

#[test]
fn sorting_puts_added_problems_in_field_order() {
    let mut errors = vec![
        FieldError::new("subscriptions[1].phase", "x"),
        FieldError::new("subscriptions[0].phase", "x"),
        FieldError::new("config_schema", "x"),
        FieldError::new("protocol_version", "x"),
        FieldError::new("name", "x"),
    ];
    sort_by_field(&mut errors);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "protocol_version",
            "subscriptions[1].phase",
            "subscriptions[0].phase",
            "config_schema"
        ]
    );
}

#[test]
fn blank_requirements_mean_any_version() {
    assert_eq!(parse_version_req(0, ""), Ok(None));
    assert_eq!(parse_version_req(0, "  "), Ok(None));
    assert!(matches!(parse_version_req(0, "^1"), Ok(Some(_))));
    assert_eq!(
        parse_version("1.2.3").map(|v| v.to_string()),
        Ok("1.2.3".to_owned())
    );
}

#[test]
fn event_subscription_patterns() {
    let m = v1::Manifest {
        name: "me".into(),
        version: "1.0.0".into(),
        event_subscriptions: ["job.*", "Job.*", "", "job.*", "*", &"x".repeat(129)]
            .into_iter()
            .map(|p| v1::EventSubscription { pattern: p.into() })
            .collect(),
        ..Default::default()
    };
    let text: Vec<String> = check(&m).iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 4, "{text:?}");
    assert!(
        text[0].starts_with(
            r#"field event_subscriptions[1].pattern: "Job.*" is not a valid event pattern"#
        ),
        "{text:?}"
    );
    assert!(text[1].starts_with(r#"field event_subscriptions[2].pattern: "" is not"#));
    assert_eq!(
        text[2],
        r#"field event_subscriptions[3].pattern: "job.*" is listed twice (also event_subscriptions[0])"#
    );
    assert!(text[3].starts_with("field event_subscriptions[5].pattern: "));
}
