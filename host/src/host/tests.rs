//! The host in memory: fake plugins from the fake launcher, time paused
//! where timing matters.

#![allow(clippy::unwrap_used)]

use super::plan::{self, PluginChange, ReloadPlan, Running};
use crate::config::{HostConfig, PhaseSpec, PluginSpec};
use crate::config::{Mode, RestartPolicy};

fn spec(name: &str) -> PluginSpec {
    PluginSpec::new(name, format!("/fake/{name}"))
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
