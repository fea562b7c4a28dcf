use outboard_proto::control::v1 as wire;
use serde_json::json;

use super::*;

fn plugin(name: &str) -> wire::PluginStatus {
    wire::PluginStatus {
        name: name.into(),
        version: "1.2.0".into(),
        state: wire::PluginState::Ready as i32,
        pid: 4242,
        uptime: Some(prost_types::Duration {
            seconds: 3723,
            nanos: 0,
        }),
        restarts: 2,
        last_exit_reason: "exited with status 1".into(),
        last_stderr: vec!["panicked at main.rs".into()],
        phases: vec!["cleanup".into(), "pre_container".into()],
        invocations: Some(wire::InvocationCounts {
            ok: 12,
            timed_out: 1,
            ..Default::default()
        }),
        latency_p50: Some(prost_types::Duration {
            seconds: 0,
            nanos: 1_250_000,
        }),
        latency_p99: Some(prost_types::Duration {
            seconds: 0,
            nanos: 9_000_000,
        }),
        latency_window: 13,
        rss_bytes: 12 * 1024 * 1024 + 300 * 1024,
        cpu_percent: 1.25,
        cpu_time: Some(prost_types::Duration {
            seconds: 2,
            nanos: 500_000_000,
        }),
        optional: true,
        restarts_by_reason: [("crashed".to_owned(), 1), ("operator".to_owned(), 1)].into(),
        last_start_duration: Some(prost_types::Duration {
            seconds: 0,
            nanos: 41_250_000,
        }),
        log_lines: 120,
        log_lines_dropped: 20,
        last_restart_reason: "crashed".into(),
        sandbox: vec![],
        invoke_path: "fastpath".into(),
    }
}

fn wall(setting: &str, value: &str, mechanism: &str) -> wire::SandboxWall {
    wire::SandboxWall {
        setting: setting.into(),
        value: value.into(),
        mechanism: mechanism.into(),
    }
}

fn stopped(name: &str) -> wire::PluginStatus {
    wire::PluginStatus {
        name: name.into(),
        state: wire::PluginState::Disabled as i32,
        ..Default::default()
    }
}

fn text(plugins: &[wire::PluginStatus]) -> String {
    let views: Vec<PluginView> = plugins.iter().map(PluginView::of).collect();
    let mut out = Vec::new();
    table(&mut out, &views).expect("writes");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn the_table_shows_every_column_and_the_last_exit() {
    assert_eq!(
        text(&[plugin("audit"), stopped("gate")]),
        "NAME   VERSION  STATE             PID   UPTIME  RESTARTS     CALLS               P50    P99    RSS      CPU%  PHASES\n\
         audit  1.2.0    ready (optional)  4242  1h02m   2 (crashed)  12 ok, 1 timed out  1.3ms  9.0ms  12.3MiB  1.3   cleanup,pre_container\n\
         gate   -        disabled          -     -       0            -                   -      -      -        -     -\n\
         \n\
         audit: last exit: exited with status 1\n\
         \x20 | panicked at main.rs\n"
    );
}

#[test]
fn the_json_has_a_stable_shape() {
    let view = PluginView::of(&plugin("audit"));
    assert_eq!(
        serde_json::to_value(&view).expect("JSON"),
        json!({
            "name": "audit", "version": "1.2.0", "state": "ready", "pid": 4242,
            "uptime_ms": 3_723_000, "optional": true, "invoke_path": "fastpath", "restarts": 2,
            "restarts_by_reason": {"crashed": 1, "operator": 1},
            "last_restart_reason": "crashed", "last_start_ms": 41.3,
            "log_lines": 120, "log_lines_dropped": 20,
            "last_exit_reason": "exited with status 1",
            "last_stderr": ["panicked at main.rs"],
            "phases": ["cleanup", "pre_container"],
            "invocations": {"ok": 12, "vetoed": 0, "failed": 0, "timed_out": 1,
                "crashed": 0, "skipped": 0},
            "latency_p50_ms": 1.3, "latency_p99_ms": 9.0, "latency_window": 13,
            "rss_bytes": 12_890_112, "cpu_percent": 1.3, "cpu_time_ms": 2500,
            "sandbox": [],
        })
    );
    let none = serde_json::to_value(PluginView::of(&stopped("gate"))).expect("JSON");
    assert_eq!(none["pid"], json!(null));
    assert_eq!(none["uptime_ms"], json!(null));
    assert_eq!(none["latency_p50_ms"], json!(null));
    assert_eq!(none["last_exit_reason"], json!(null));
    assert_eq!(none["invoke_path"], json!(null));
    assert_eq!(none["rss_bytes"], json!(null));
    assert_eq!(none["cpu_percent"], json!(null));
    // Running but not sampled yet: null, not a measured zero.
    let mut unsampled = plugin("fresh");
    (unsampled.rss_bytes, unsampled.cpu_percent) = (0, 0.0);
    let fresh = serde_json::to_value(PluginView::of(&unsampled)).expect("JSON");
    assert_eq!(fresh["rss_bytes"], json!(null));
    assert_eq!(fresh["cpu_percent"], json!(null));
    assert_eq!(none["state"], json!("disabled"));
}

#[test]
fn the_walls_follow_the_table_for_plugins_with_more_than_no_new_privs() {
    let mut walled = plugin("audit");
    walled.last_exit_reason.clear();
    walled.sandbox = vec![
        wall("no_new_privs", "", "prctl(PR_SET_NO_NEW_PRIVS)"),
        wall("memory", "256Mi", "cgroup v1 memory"),
        wall("network", "none", "network namespace"),
    ];
    let mut plain = plugin("gate");
    plain.last_exit_reason.clear();
    plain.sandbox = vec![wall("no_new_privs", "", "prctl(PR_SET_NO_NEW_PRIVS)")];
    let out = text(&[walled.clone(), plain]);
    assert!(
        out.ends_with(
            "\n\naudit: sandbox: no_new_privs (prctl(PR_SET_NO_NEW_PRIVS)); memory 256Mi (cgroup v1 memory); network none (network namespace)\n"
        ),
        "{out}"
    );
    assert!(!out.contains("gate: sandbox"), "{out}");
    let json = serde_json::to_value(PluginView::of(&walled)).expect("JSON");
    assert_eq!(
        json["sandbox"][1],
        json!({"setting": "memory", "value": "256Mi", "mechanism": "cgroup v1 memory"})
    );
}

#[test]
fn hostile_plugin_text_cannot_reach_the_terminal() {
    let mut p = plugin("evil");
    p.version = "1\u{1b}[31m".into();
    p.last_exit_reason = "bye\n\u{1b}]0;pwned\u{7}".into();
    p.last_stderr = vec!["\u{9b}2Jline\rover".into()];
    let out = text(&[p]);
    assert!(
        !out.contains('\u{1b}')
            && !out.contains('\u{9b}')
            && !out.contains('\r')
            && !out.contains('\u{7}'),
        "{out:?}"
    );
    // The reason stays on its own line: no forged rows.
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn sizes_and_uptimes_read_at_a_glance() {
    assert_eq!(bytes(512), "512B");
    assert_eq!(bytes(1536), "1.5KiB");
    assert_eq!(bytes(3 << 30), "3.0GiB");
    assert_eq!(uptime(Duration::from_secs(59)), "59s");
    assert_eq!(uptime(Duration::from_secs(61)), "1m01s");
    assert_eq!(uptime(Duration::from_secs(90_000)), "1d01h");
}
