//! The figures `outboard status --json` shows, through a real `outboard up`
//! and real plugin processes: after a known set of events (calls that pass,
//! a veto, a timeout, a crash and its restart, jobs through the daemon, a
//! flood of log lines), every count is exactly what those events imply.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::time::Duration;

use daemon::{Daemon, invoke, plugin_of, scripted};
use outboard_proto::control::v1::verdict;
use serde_json::{Value, json};

/// How long a restart or a flood of log lines may take to show.
const SETTLE: Duration = Duration::from_secs(20);

/// The lines a plugin's log ring keeps (the daemon's default).
const RING_LINES: u64 = 1000;

/// A scripted plugin `name` subscribed to `phase`, doing `script` there.
fn plugin(name: &str, phase: &str, script: Value) -> Value {
    json!({
        "name": name,
        "command": scripted(),
        "env": {"SCRIPTED_SUBSCRIBE": format!("{phase}:0")},
        "stop_grace": "1s",
        "config": {phase: script},
    })
}

fn config() -> String {
    let mut ok = plugin("ok", "build", json!({}));
    ok["optional"] = json!(true);
    let mut slow = plugin("slow", "wait", json!({"sleep_ms": 10_000}));
    slow["call_timeout"] = json!("300ms");
    let doc = json!({"plugin": [
        ok,
        plugin("veto", "gate", json!({"abort": "not today"})),
        slow,
        plugin("crash", "boom", json!({"crash": true})),
        plugin("chatty", "talk", json!({"log_lines": RING_LINES + 100})),
    ]});
    toml::to_string(&toml::Value::try_from(&doc).unwrap()).unwrap()
}

/// `invocations` with `n` under `outcome` and zero elsewhere.
fn only(outcome: &str, n: u64) -> Value {
    let mut counts = json!({"ok": 0, "vetoed": 0, "failed": 0, "timed_out": 0,
        "crashed": 0, "skipped": 0});
    counts[outcome] = json!(n);
    counts
}

/// Every restart reason at zero but those given.
fn reasons(nonzero: &[(&str, u64)]) -> Value {
    let mut all = json!({"crashed": 0, "exited": 0, "health": 0, "start_failed": 0,
        "operator": 0, "enabled": 0, "reload": 0});
    for (reason, n) in nonzero {
        all[*reason] = json!(n);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_exactly_what_happened() {
    let up = Daemon::start(&config());
    up.wait_all_ready().await;
    let mut client = up.client().await;
    let passed = |r: &outboard_proto::control::v1::DispatchReport| {
        matches!(
            r.verdict.as_ref().and_then(|v| v.result.as_ref()),
            Some(verdict::Result::Passed(_))
        )
    };
    assert!(passed(&invoke(&mut client, "build").await));
    assert!(passed(&invoke(&mut client, "build").await));
    assert!(!passed(&invoke(&mut client, "gate").await));
    assert!(!passed(&invoke(&mut client, "wait").await));
    assert!(!passed(&invoke(&mut client, "boom").await));
    assert!(passed(&invoke(&mut client, "talk").await));
    for (command, code) in [(&["true"][..], 0), (&["sh", "-c", "exit 3"], 3)] {
        let out = common::outboard_command()
            .args(["run", "--daemon", "--control-socket"])
            .arg(up.socket())
            .arg("--")
            .args(command)
            .env_remove("OUTBOARD_CONTROL_SOCKET")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            common::text(&out.stderr)
        );
    }

    let status = up.status_when(
        "the crashed plugin back and every log line in",
        SETTLE,
        |s| {
            plugin_of(s, "crash")["state"] == "ready"
                && plugin_of(s, "chatty")["log_lines"].as_u64() >= Some(RING_LINES + 100)
        },
    );
    let ok = plugin_of(&status, "ok");
    assert_eq!(ok["invocations"], only("ok", 2), "{ok:#}");
    assert_eq!(ok["optional"], json!(true));
    assert_eq!(ok["state"], "ready");
    // An SDK plugin, offered the fast path by default, takes it.
    assert_eq!(ok["invoke_path"], "fastpath");
    assert_eq!(ok["restarts"], 0);
    assert_eq!(ok["restarts_by_reason"], reasons(&[]));
    assert_eq!(ok["last_restart_reason"], Value::Null);
    assert!(
        ok["last_start_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{ok:#}"
    );
    assert_eq!(ok["log_lines_dropped"], 0);

    let veto = plugin_of(&status, "veto");
    assert_eq!(veto["invocations"], only("vetoed", 1), "{veto:#}");
    assert_eq!(veto["optional"], json!(false));
    let slow = plugin_of(&status, "slow");
    assert_eq!(slow["invocations"], only("timed_out", 1), "{slow:#}");
    assert_eq!(slow["restarts"], 0);

    let crash = plugin_of(&status, "crash");
    assert_eq!(crash["invocations"], only("crashed", 1), "{crash:#}");
    assert_eq!(crash["restarts"], 1);
    assert_eq!(crash["restarts_by_reason"], reasons(&[("crashed", 1)]));
    assert_eq!(crash["last_restart_reason"], "crashed");

    // The ring keeps the last lines: what it evicted is all the rest.
    let chatty = plugin_of(&status, "chatty");
    let lines = chatty["log_lines"].as_u64().unwrap();
    assert_eq!(
        chatty["log_lines_dropped"].as_u64(),
        Some(lines - RING_LINES),
        "{chatty:#}"
    );
    assert_eq!(chatty["invocations"], only("ok", 1));

    // The jobs ran their phases on the daemon (nobody subscribes to them).
    let jobs = &status["daemon"]["jobs"];
    assert_eq!(jobs["succeeded"], 1, "{jobs}");
    assert_eq!(jobs["exit_code"], 1, "{jobs}");
    let total: u64 = jobs
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(total, 2, "{jobs}");

    // The table says the same, restarts with the latest reason.
    let table = common::text(&up.cli(&["status"]).stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
            .to_owned()
    };
    assert!(row("crash ").contains("1 (crashed)"), "{table}");
    assert!(row("ok ").contains("ready (optional)"), "{table}");
    assert!(table.contains("jobs: 1 exit code, 1 succeeded"), "{table}");

    // `optional` alone changes on a reload: the plugin keeps running.
    let pid = ok["pid"].clone();
    up.write_config(&config().replace("optional = true\n", ""));
    let reload = up.cli(&["reload"]);
    assert!(reload.status.success(), "{}", common::text(&reload.stderr));
    let after = up.cli_json(&["status", "ok"]);
    let ok = plugin_of(&after, "ok");
    assert_eq!(
        (&ok["pid"], &ok["optional"]),
        (&pid, &json!(false)),
        "{ok:#}"
    );
    assert_eq!(ok["restarts"], 0);
    assert_eq!(
        ok["invocations"],
        only("ok", 2),
        "counts survive the reload"
    );
    up.stop();
}
