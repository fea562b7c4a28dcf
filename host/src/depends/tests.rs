use outboard_proto::v1;

use super::*;

/// A manifest named `name` at `version`, depending on `deps`: each
/// `name`, `name@req` or `name?` (optional).
fn manifest(name: &str, version: &str, deps: &[&str]) -> Manifest {
    let dependencies = deps
        .iter()
        .map(|d| {
            let (d, optional) = d.strip_suffix('?').map_or((*d, false), |d| (d, true));
            let (name, req) = d.split_once('@').unwrap_or((d, ""));
            v1::Dependency {
                name: name.into(),
                version_req: req.into(),
                optional,
            }
        })
        .collect();
    let m = v1::Manifest {
        name: name.into(),
        version: version.into(),
        protocol_version: 1,
        dependencies,
        ..Default::default()
    };
    Manifest::from_proto(m, 1).expect("valid manifest")
}

fn nodes(manifests: &[Manifest]) -> Vec<Node<'_>> {
    manifests
        .iter()
        .map(|m| Node {
            name: &m.name,
            manifest: Some(m),
        })
        .collect()
}

fn errors(result: &Result<Vec<usize>, DependencyErrors>) -> String {
    result.as_ref().expect_err("refused").to_string()
}

#[test]
fn a_missing_required_dependency_is_refused() {
    let ms = [
        manifest("a", "1.0.0", &["secrets"]),
        manifest("b", "1.0.0", &[]),
    ];
    let plan = plan(&nodes(&ms));
    assert_eq!(
        errors(&plan[0]),
        "requires plugin secrets, but no configured plugin's manifest is named secrets"
    );
    assert_eq!(plan[1], Ok(vec![]));
}

#[test]
fn an_absent_optional_dependency_is_ignored_a_present_one_orders() {
    let ms = [
        manifest("a", "1.0.0", &["cache?", "b?"]),
        manifest("b", "1.0.0", &[]),
    ];
    assert_eq!(plan(&nodes(&ms)), [Ok(vec![1]), Ok(vec![])]);
}

#[test]
fn an_unsatisfied_version_is_refused_optional_or_not() {
    let ms = [
        manifest("a", "1.0.0", &["b@>=2", "c@^0.3?"]),
        manifest("b", "1.4.0", &[]),
        manifest("c", "0.4.1", &[]),
    ];
    let plan = plan(&nodes(&ms));
    assert_eq!(
        errors(&plan[0]),
        "requires plugin b >=2, but plugin b is version 1.4.0; \
         requires plugin c ^0.3, but plugin c is version 0.4.1"
    );
    let ms = [
        manifest("a", "1.0.0", &["b@>=1.2, <2"]),
        manifest("b", "1.4.0", &[]),
    ];
    assert_eq!(super::plan(&nodes(&ms))[0], Ok(vec![1]));
}

#[test]
fn a_cycle_of_two_is_refused_naming_both_in_order() {
    let ms = [
        manifest("a", "1.0.0", &["b"]),
        manifest("b", "1.0.0", &["a"]),
    ];
    let plan = plan(&nodes(&ms));
    assert_eq!(errors(&plan[0]), "is in a dependency cycle: a → b → a");
    assert_eq!(errors(&plan[1]), "is in a dependency cycle: b → a → b");
}

#[test]
fn a_cycle_of_three_is_refused_and_its_dependents_only_wait() {
    let ms = [
        manifest("a", "1.0.0", &["b"]),
        manifest("b", "1.0.0", &["c"]),
        manifest("c", "1.0.0", &["a"]),
        manifest("d", "1.0.0", &["a"]),
    ];
    let plan = plan(&nodes(&ms));
    assert_eq!(errors(&plan[0]), "is in a dependency cycle: a → b → c → a");
    assert_eq!(errors(&plan[1]), "is in a dependency cycle: b → c → a → b");
    assert_eq!(errors(&plan[2]), "is in a dependency cycle: c → a → b → c");
    // d is no member: it waits for a, and fails when a does.
    assert_eq!(plan[3], Ok(vec![0]));
}

#[test]
fn a_diamond_orders_and_stops_in_reverse() {
    // top needs left and right, which both need base.
    let ms = [
        manifest("base", "1.0.0", &[]),
        manifest("left", "1.0.0", &["base"]),
        manifest("right", "1.0.0", &["base@^1"]),
        manifest("top", "2.0.0", &["left", "right"]),
    ];
    let nodes = nodes(&ms);
    assert_eq!(
        plan(&nodes),
        [Ok(vec![]), Ok(vec![0]), Ok(vec![0]), Ok(vec![1, 2])]
    );
    assert_eq!(stop_layers(&nodes), [vec![3], vec![1, 2], vec![0]]);
}

#[test]
fn instances_sharing_a_manifest_name_are_all_waited_for() {
    let ms = [
        manifest("a", "1.0.0", &["b"]),
        manifest("b", "1.0.0", &[]),
        manifest("b", "1.0.0", &[]),
    ];
    let mut nodes = nodes(&ms);
    nodes[2].name = "b-second";
    assert_eq!(plan(&nodes)[0], Ok(vec![1, 2]));
}

#[test]
fn a_dependency_on_an_instance_name_says_what_its_manifest_is_called() {
    let ms = [
        manifest("a", "1.0.0", &["cache"]),
        manifest("redis-cache", "1.0.0", &[]),
    ];
    let mut nodes = nodes(&ms);
    nodes[1].name = "cache";
    assert_eq!(
        errors(&plan(&nodes)[0]),
        "requires plugin cache, but the plugin configured as cache is named redis-cache in its manifest"
    );
}

#[test]
fn a_dependency_that_failed_before_describe_is_named_as_failed() {
    let ms = [manifest("a", "1.0.0", &["b"])];
    let mut nodes = nodes(&ms);
    nodes.push(Node {
        name: "b",
        manifest: None,
    });
    assert_eq!(errors(&plan(&nodes)[0]), "its dependency b failed to start");
}

#[test]
fn stop_layers_put_a_cycle_last_without_blocking() {
    let ms = [
        manifest("a", "1.0.0", &["b"]),
        manifest("b", "1.0.0", &["a"]),
        manifest("c", "1.0.0", &["a", "missing"]),
    ];
    assert_eq!(stop_layers(&nodes(&ms)), [vec![2], vec![0, 1]]);
}

#[test]
fn a_long_chain_is_planned_in_linear_time() {
    // p0 ← p1 ← … ← p19999: quadratic work would take minutes here.
    let n = 20_000;
    let ms: Vec<Manifest> = (0..n)
        .map(|i| {
            let dep = format!("p{}", i.max(1) - 1);
            let deps: &[&str] = if i == 0 { &[] } else { &[&dep] };
            manifest(&format!("p{i}"), "1.0.0", deps)
        })
        .collect();
    let nodes = nodes(&ms);
    let plan = plan(&nodes);
    assert_eq!(plan[n - 1], Ok(vec![n - 2]));
    let layers = stop_layers(&nodes);
    assert_eq!(layers.len(), n);
    assert_eq!(layers[0], [n - 1]);
}

#[tokio::test]
async fn a_plugin_joining_running_ones_waits_for_none_of_them_and_is_checked_against_them() {
    let running = vec![
        ("secrets".to_owned(), manifest("secrets", "2.0.0", &[])),
        ("old".to_owned(), manifest("old", "0.1.0", &[])),
    ];
    let order = StartOrder::joining(vec!["app".into(), "legacy".into()], running);
    let (app, legacy) = (order.turn(0), order.turn(1));
    let wants_secrets = manifest("app", "1.0.0", &["secrets@^2"]);
    let wants_new = manifest("legacy", "1.0.0", &["old@>=1"]);
    let (app_turn, legacy_turn) = tokio::join!(app.wait(&wants_secrets), legacy.wait(&wants_new));
    assert!(app_turn.is_ok(), "{app_turn:?}");
    let refused = legacy_turn.expect_err("old is 0.1.0").to_string();
    assert!(
        refused.contains("requires plugin old >=1, but plugin old is version 0.1.0"),
        "{refused}"
    );
}
