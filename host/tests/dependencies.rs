//! Manifest dependencies over real plugin processes: a dependent is
//! configured only once what it depends on is ready, and a missing,
//! unsatisfied or cyclic dependency refuses the start, naming the plugins,
//! with nothing left running.

#![allow(clippy::unwrap_used)]

mod common;

use common::Sandbox;
use outboard_host::{Host, HostConfig, PluginSpec, start_all, stop_all};
use serde_json::json;

/// A scripted plugin declaring `depends` (see the fixture's docs), which
/// marks itself configured in `ready_dir` after `delay_ms`.
fn plugin(
    sb: &Sandbox,
    name: &str,
    depends: &str,
    ready_dir: &Sandbox,
    delay_ms: u64,
) -> PluginSpec {
    let mut spec = sb.scripted(name, "p:0", json!({}));
    spec.env.insert("SCRIPTED_DEPENDS".into(), depends.into());
    spec.env.insert(
        "SCRIPTED_READY_DIR".into(),
        ready_dir.path().display().to_string(),
    );
    spec.env
        .insert("SCRIPTED_CONFIGURE_DELAY_MS".into(), delay_ms.to_string());
    spec
}

fn config(plugins: Vec<PluginSpec>) -> HostConfig {
    HostConfig {
        plugins,
        ..HostConfig::default()
    }
}

#[tokio::test]
async fn a_dependent_is_configured_only_after_its_dependency_is_ready() {
    let (sb, marks) = (Sandbox::new(), Sandbox::new());
    // The fixture refuses Configure while a required dependency has not
    // marked itself configured; `base` takes a while to.
    let host = Host::start(&config(vec![
        plugin(&sb, "app", "base,cache?", &marks, 0),
        plugin(&sb, "base", "", &marks, 300),
        plugin(&sb, "free", "", &marks, 0),
    ]))
    .await
    .unwrap();
    let plugins = host.plugins();
    let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["app", "base", "free"]);
    for name in ["app", "base", "free"] {
        assert!(marks.path().join(name).exists(), "{name} configured");
    }
    host.stop().await;
    sb.assert_empty();
}

#[tokio::test]
async fn a_cycle_is_refused_naming_both_plugins_and_nothing_is_left_running() {
    let (sb, marks) = (Sandbox::new(), Sandbox::new());
    let err = Host::start(&config(vec![
        plugin(&sb, "alpha", "bravo", &marks, 0),
        plugin(&sb, "bravo", "alpha@^0.1", &marks, 0),
        plugin(&sb, "free", "", &marks, 0),
        plugin(&sb, "user", "alpha", &marks, 0),
    ]))
    .await
    .expect_err("a cycle cannot start");
    let text: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "plugin alpha: is in a dependency cycle: alpha → bravo → alpha",
            "plugin bravo: is in a dependency cycle: bravo → alpha → bravo",
            "plugin user: its dependency alpha failed to start",
        ]
    );
    // Neither member of the cycle was configured.
    assert!(!marks.path().join("alpha").exists());
    assert!(!marks.path().join("bravo").exists());
    sb.assert_empty();
}

#[tokio::test]
async fn missing_and_unsatisfied_dependencies_are_refused_by_name() {
    let (sb, marks) = (Sandbox::new(), Sandbox::new());
    let err = Host::start(&config(vec![
        plugin(&sb, "app", "secrets,base@>=2", &marks, 0),
        plugin(&sb, "base", "", &marks, 0),
    ]))
    .await
    .expect_err("refused");
    let text: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "plugin app: requires plugin secrets, but no configured plugin's manifest is named secrets; \
             requires plugin base >=2, but plugin base is version 0.1.0"
        ]
    );
    sb.assert_empty();
}

#[tokio::test]
async fn start_all_starts_what_it_can_and_lists_the_refused() {
    let (sb, marks) = (Sandbox::new(), Sandbox::new());
    // Without a ready dir, the fixture configures in any order: only the
    // host can refuse the cycle.
    let mut specs = vec![
        plugin(&sb, "alpha", "bravo", &marks, 0),
        plugin(&sb, "bravo", "alpha", &marks, 0),
        plugin(&sb, "free", "", &marks, 0),
    ];
    for spec in &mut specs {
        spec.env.remove("SCRIPTED_READY_DIR");
    }
    let (plugins, failures) = start_all(specs).await;
    let started: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
    assert_eq!(started, ["free"]);
    let failed: Vec<&str> = failures.iter().map(|(name, _)| &**name).collect();
    assert_eq!(failed, ["alpha", "bravo"]);
    stop_all(plugins).await;
    sb.assert_empty();
}
