//! The daemon's HTTP listener end to end: a real `outboard up --http
//! 127.0.0.1:0` with real plugins, scraped and probed by a real HTTP client
//! (Python's `urllib`), the scrape parsed by the `prometheus_client`
//! exposition-format parser (`.tools/venv`, installed by `scripts/tools`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::text;
use daemon::{Daemon, scripted, write_script};
use serde_json::Value;

/// Fetches a URL and prints `{status, content_type, body}` as JSON; with
/// a format (`prometheus` or `openmetrics`), also the body's samples as
/// that format's parser reads them, and its families.
const CLIENT: &str = r#"
import json, sys, urllib.request, urllib.error
url, fmt, accept = sys.argv[1], sys.argv[2], sys.argv[3]
request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
try:
    with urllib.request.urlopen(request, timeout=20) as r:
        status, ctype, body = r.status, r.headers.get("Content-Type"), r.read().decode()
except urllib.error.HTTPError as e:
    status, ctype, body = e.code, e.headers.get("Content-Type"), e.read().decode()
out = {"status": status, "content_type": ctype, "body": body}
if fmt != "none":
    if fmt == "openmetrics":
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    families = list(text_string_to_metric_families(body))
    out["families"] = [{"name": f.name, "type": f.type, "help": f.documentation} for f in families]
    out["samples"] = [{"name": s.name, "labels": s.labels, "value": s.value} for f in families for s in f.samples]
print(json.dumps(out))
"#;

/// The test tools' Python.
fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python")
}

/// `GET url` through the client; `format` says which parser reads the
/// body ("none": none).
fn fetch(url: &str, format: &str, accept: &str) -> Value {
    let out = Command::new(python())
        .args(["-c", CLIENT, url, format, accept])
        .output()
        .expect("run .tools/venv/bin/python (scripts/tools installs it)");
    assert!(
        out.status.success(),
        "GET {url}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A probe's status and body.
fn probe(daemon: &Daemon, path: &str) -> (u64, String) {
    let got = fetch(&format!("{}{path}", daemon.http_url()), "none", "");
    (
        got["status"].as_u64().unwrap(),
        got["body"].as_str().unwrap().to_owned(),
    )
}

/// A scrape's samples, by name and labels (sorted `k=v` pairs).
type Samples = BTreeMap<(String, String), f64>;

/// Scrapes `/metrics` in `format` and checks the content type.
fn scrape(daemon: &Daemon, format: &str) -> Samples {
    let accept = if format == "openmetrics" {
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
    } else {
        ""
    };
    let got = fetch(&format!("{}/metrics", daemon.http_url()), format, accept);
    assert_eq!(got["status"], 200, "{got}");
    let content_type = got["content_type"].as_str().unwrap();
    let want = if format == "openmetrics" {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    assert_eq!(content_type, want);
    for family in got["families"].as_array().unwrap() {
        assert!(
            !family["help"].as_str().unwrap().is_empty(),
            "no HELP for {family}"
        );
    }
    got["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(s["labels"].clone()).unwrap();
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (
                (s["name"].as_str().unwrap().to_owned(), labels.join(",")),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The value of `name{labels}` in `samples`; fails the test if absent.
fn value(samples: &Samples, name: &str, labels: &str) -> f64 {
    *samples
        .get(&(name.to_owned(), labels.to_owned()))
        .unwrap_or_else(|| {
            let near: Vec<_> = samples.keys().filter(|(n, _)| n == name).collect();
            panic!("no sample {name}{{{labels}}}; of that name: {near:?}")
        })
}

/// Checks that `outboard status --json` and the scrape say the same:
/// calls by outcome (summed over phases), restarts by reason, log lines.
fn same_as_status(samples: &Samples, status: &Value) {
    let mut calls = 0.0;
    for plugin in status["plugins"].as_array().unwrap() {
        let name = plugin["name"].as_str().unwrap();
        let sum = |family: &str, labels: &dyn Fn(&str) -> bool| -> f64 {
            samples
                .iter()
                .filter(|((n, l), _)| n == family && labels(l))
                .map(|(_, v)| v)
                .sum()
        };
        let of_plugin = |l: &str, key: &str, v: &str| {
            l.contains(&format!("{key}={v}")) && l.ends_with(&format!("plugin={name}"))
        };
        for (outcome, count) in plugin["invocations"].as_object().unwrap() {
            let metric = sum("outboard_plugin_invocations_total", &|l| {
                of_plugin(l, "outcome", outcome)
            });
            assert_eq!(Some(metric), count.as_f64(), "{name} {outcome}");
            calls += metric;
        }
        for (reason, count) in plugin["restarts_by_reason"].as_object().unwrap() {
            let labels = format!("plugin={name},reason={reason}");
            assert_eq!(
                Some(value(samples, "outboard_plugin_restarts_total", &labels)),
                count.as_f64(),
                "{labels}"
            );
        }
        let p = format!("plugin={name}");
        assert_eq!(
            Some(value(samples, "outboard_plugin_log_lines_total", &p)),
            plugin["log_lines"].as_f64()
        );
    }
    assert!(calls > 0.0, "no call compared: {status}");
}

/// A scripted plugin subscribed as `subscribe` says (`phase:priority`,
/// comma-separated), its `build` and `check` scripts `script`.
fn plugin(name: &str, subscribe: &str, script: &str, extra: &str) -> String {
    format!(
        "[[plugin]]\nname = \"{name}\"\ncommand = {:?}\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"{subscribe}\" }}\n\
         config = {{ build = {script}, check = {script} }}\n{extra}",
        scripted()
    )
}

/// Waits until `GET path` answers `status`, polling up to 30 s; the last
/// body.
fn until_probe(daemon: &Daemon, path: &str, status: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = probe(daemon, path);
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {got}, not {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_ok_veto_timeout_and_crash_counts_each_exactly() {
    let config = [
        "[phases.build]\nmode = \"parallel\"\nfailure_policy = \"fail_open\"\n".to_owned(),
        // check: sequential, the vetoer first, so the good one is skipped.
        "[phases.check]\nmode = \"sequential\"\n".to_owned(),
        plugin("good", "build:10,check:20", "{ log_lines = 3 }", ""),
        plugin("vetoer", "build:10,check:10", "{ abort = \"no\" }", ""),
        plugin(
            "slow",
            "build:10",
            "{ sleep_ms = 60000 }",
            "call_timeout = \"300ms\"\n",
        ),
        plugin("crasher", "build:10", "{ crash = true }", ""),
    ]
    .concat();
    let daemon = Daemon::start_with(|_| (config, vec!["--http".into(), "127.0.0.1:0".into()]));
    assert!(daemon.http_url().starts_with("http://127.0.0.1:"));
    let mut client = daemon.client().await;
    daemon::invoke(&mut client, "build").await;
    daemon.wait_all_ready().await;
    daemon::invoke(&mut client, "check").await;
    // Two jobs through the daemon: one succeeds, one's command fails.
    for command in ["true", "false"] {
        let out = common::outboard_command()
            .args(["run", "--daemon", "--control-socket"])
            .arg(daemon.socket())
            .args(["--", command])
            .env_remove("OUTBOARD_CONTROL_SOCKET")
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            command == "true",
            "{}",
            text(&out.stderr)
        );
    }
    let logs = |name: &str| {
        let out = daemon.cli(&["logs", name, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().count() as f64
    };

    let status = daemon.cli_json(&["status"]);

    for format in ["prometheus", "openmetrics"] {
        let samples = scrape(&daemon, format);
        same_as_status(&samples, &status);
        let plugins = ["crasher", "good", "slow", "vetoer"];
        for name in plugins {
            let p = format!("plugin={name}");
            assert_eq!(value(&samples, "outboard_plugin_up", &p), 1.0, "{name}");
            assert_eq!(
                value(
                    &samples,
                    "outboard_plugin_state",
                    &format!("{p},state=ready")
                ),
                1.0
            );
            assert_eq!(
                value(
                    &samples,
                    "outboard_plugin_state",
                    &format!("{p},state=failed")
                ),
                0.0
            );
            assert!(value(&samples, "outboard_plugin_resident_memory_bytes", &p) > 0.0);
            assert!(value(&samples, "outboard_plugin_cpu_seconds_total", &p) >= 0.0);
            assert_eq!(
                value(&samples, "outboard_plugin_log_lines_total", &p),
                logs(name),
                "{name}: every line the ring holds is counted"
            );
            assert_eq!(
                value(&samples, "outboard_plugin_log_lines_dropped_total", &p),
                0.0
            );
        }
        let outcomes = ["ok", "vetoed", "failed", "timed_out", "crashed", "skipped"];
        for (name, outcome) in [
            ("good", "ok"),
            ("vetoer", "vetoed"),
            ("slow", "timed_out"),
            ("crasher", "crashed"),
        ] {
            for other in outcomes {
                let labels = format!("outcome={other},phase=build,plugin={name}");
                assert_eq!(
                    value(&samples, "outboard_plugin_invocations_total", &labels),
                    f64::from(u8::from(other == outcome)),
                    "{format}: {labels}"
                );
            }
            let labels = format!("phase=build,plugin={name}");
            assert_eq!(
                value(
                    &samples,
                    "outboard_plugin_invocation_duration_seconds_count",
                    &labels
                ),
                1.0,
                "{format}: {labels}"
            );
            let inf = format!("le=+Inf,{labels}");
            assert_eq!(
                value(
                    &samples,
                    "outboard_plugin_invocation_duration_seconds_bucket",
                    &inf
                ),
                1.0
            );
            let p = format!("plugin={name}");
            assert!(value(&samples, "outboard_plugin_start_duration_seconds", &p) > 0.0);
            let restarts: f64 = samples
                .iter()
                .filter(|((n, l), _)| {
                    n == "outboard_plugin_restarts_total" && l.starts_with(&format!("{p},"))
                })
                .map(|(_, v)| v)
                .sum();
            let crashed = value(
                &samples,
                "outboard_plugin_restarts_total",
                &format!("{p},reason=crashed"),
            );
            let expected = f64::from(u8::from(name == "crasher"));
            assert_eq!(
                (restarts, crashed),
                (expected, expected),
                "{format}: {name}"
            );
        }
        // The timed-out call took at least its timeout.
        assert!(
            value(
                &samples,
                "outboard_plugin_invocation_duration_seconds_sum",
                "phase=build,plugin=slow"
            ) >= 0.3
        );
        assert_eq!(
            value(
                &samples,
                "outboard_phase_dispatch_duration_seconds_count",
                "phase=build"
            ),
            1.0
        );
        assert_eq!(
            value(&samples, "outboard_phase_conflicts_total", "phase=build"),
            0.0
        );
        // check: the vetoer's veto, the good plugin skipped.
        let check = |name: &str, outcome: &str| {
            let labels = format!("outcome={outcome},phase=check,plugin={name}");
            value(&samples, "outboard_plugin_invocations_total", &labels)
        };
        assert_eq!(
            (check("vetoer", "vetoed"), check("good", "skipped")),
            (1.0, 1.0)
        );
        assert_eq!(check("good", "ok"), 0.0);
        assert_eq!(
            value(
                &samples,
                "outboard_plugin_invocation_duration_seconds_count",
                "phase=check,plugin=good"
            ),
            0.0,
            "a skipped call has no duration"
        );
        // Each phase's dispatch, vetoed (the jobs' phases, subscribed by
        // none of these plugins, passed).
        let dispatches: Vec<_> = samples
            .iter()
            .filter(|((n, l), v)| {
                n == "outboard_phase_dispatches_total"
                    && (l.starts_with("phase=build,") || l.starts_with("phase=check,"))
                    && **v > 0.0
            })
            .map(|((_, l), v)| (l.as_str(), *v))
            .collect();
        assert_eq!(
            dispatches,
            [
                ("phase=build,result=vetoed", 1.0),
                ("phase=check,result=vetoed", 1.0)
            ]
        );
        // Every job result is there; the two jobs, each once.
        let jobs: BTreeMap<&str, f64> = samples
            .iter()
            .filter(|((n, _), _)| n == "outboard_jobs_total")
            .map(|((_, l), v)| (l.as_str(), *v))
            .collect();
        assert_eq!(jobs.len(), 8, "{jobs:?}");
        let ran: Vec<_> = jobs.iter().filter(|(_, v)| **v > 0.0).collect();
        assert_eq!(
            ran,
            [(&"result=exit_code", &1.0), (&"result=succeeded", &1.0)],
            "{jobs:?}"
        );
        // The good plugin's own lines are among them.
        assert!(value(&samples, "outboard_plugin_log_lines_total", "plugin=good") >= 3.0);
        assert!(value(&samples, "process_resident_memory_bytes", "") > 0.0);
        assert!(value(&samples, "process_open_fds", "") > 0.0);
        assert!(value(&samples, "process_threads", "") >= 1.0);
        assert!(value(&samples, "process_start_time_seconds", "") > 1.6e9);
        assert!(value(&samples, "process_cpu_seconds_total", "") > 0.0);
        assert!(value(&samples, "process_virtual_memory_bytes", "") > 0.0);
    }
    daemon.stop();
}

/// A plugin whose every start fails once `work/broken-NAME` exists, and
/// which quarantines after two quick starts; `extra` more keys.
fn flaky(work: &Path, name: &str, extra: &str) -> String {
    let command = write_script(
        work,
        name,
        &format!(
            "[ -e '{}/broken-{name}' ] && exit 1\nSCRIPTED_SUBSCRIBE=build:10 exec '{}' \"$@\"",
            work.display(),
            scripted()
        ),
    );
    format!(
        "[[plugin]]\nname = \"{name}\"\ncommand = \"{}\"\n\
         backoff_initial = \"10ms\"\nbackoff_max = \"10ms\"\n\
         crash_loop_starts = 2\ncrash_loop_window = \"60s\"\n{extra}",
        command.display()
    )
}

/// Breaks the plugin `name` (see [`flaky`]) and kills it; returns once it
/// is quarantined, its health as `/plugins/NAME/health` gives it.
async fn quarantine(daemon: &Daemon, name: &str) -> Value {
    std::fs::write(daemon.work().join(format!("broken-{name}")), "").unwrap();
    let pid = daemon.pids().await[name];
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    health_when(daemon, name, "quarantined", |health| {
        health["state"] == "failed"
    })
}

/// Polls `/plugins/NAME/health` (always a 200 of JSON for a known plugin)
/// until `done` holds for its body, or fails the test after 30 s saying
/// `name` never became `what`; the body.
fn health_when(daemon: &Daemon, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let url = format!("{}/plugins/{name}/health", daemon.http_url());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = fetch(&url, "none", "");
        assert_eq!(got["status"], 200, "{got}");
        assert_eq!(got["content_type"], "application/json");
        let health: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
        if done(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "{name} never {what}: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_quarantined_plugin_and_recovers_after_its_restart() {
    let daemon = Daemon::start_with(|work| {
        let config = [
            flaky(work, "flaky", ""),
            flaky(work, "spare", "optional = true\n"),
            format!(
                "[[plugin]]\nname = \"steady\"\ncommand = {:?}\n",
                scripted()
            ),
        ]
        .concat();
        (config, vec!["--http".into(), "127.0.0.1:0".into()])
    });
    assert_eq!(probe(&daemon, "/readyz"), (200, "ok\n".to_owned()));
    assert_eq!(probe(&daemon, "/healthz"), (200, "ok\n".to_owned()));

    // An optional plugin's quarantine leaves the daemon ready.
    let spare = quarantine(&daemon, "spare").await;
    assert_eq!(
        (&spare["optional"], &spare["ready"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert!(
        spare["last_failure"]
            .as_str()
            .unwrap()
            .contains("crash loop"),
        "{spare}"
    );
    assert_eq!(probe(&daemon, "/readyz"), (200, "ok\n".to_owned()));

    // A required one's does not, and is named.
    quarantine(&daemon, "flaky").await;
    assert_eq!(
        probe(&daemon, "/readyz"),
        (503, "not ready\nflaky: failed\n".to_owned())
    );
    let verbose = fetch(&format!("{}/readyz?verbose", daemon.http_url()), "none", "");
    assert_eq!(verbose["status"], 503);
    let json: Value = serde_json::from_str(verbose["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        json["not_ready"],
        serde_json::json!([{"plugin": "flaky", "state": "failed"}])
    );
    let samples = scrape(&daemon, "prometheus");
    for (name, optional) in [("flaky", 0.0), ("spare", 1.0)] {
        let p = format!("plugin={name}");
        assert_eq!(value(&samples, "outboard_plugin_up", &p), 0.0);
        assert_eq!(value(&samples, "outboard_plugin_optional", &p), optional);
        let failed = format!("{p},state=failed");
        assert_eq!(value(&samples, "outboard_plugin_state", &failed), 1.0);
    }
    // Still alive: the daemon answers.
    assert_eq!(probe(&daemon, "/healthz").0, 200);

    // Fixed, and restarted by an operator: ready again.
    std::fs::remove_file(daemon.work().join("broken-flaky")).unwrap();
    let out = daemon.cli(&["restart", "flaky"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    until_probe(&daemon, "/readyz", 200);
    let samples = scrape(&daemon, "prometheus");
    assert_eq!(
        value(
            &samples,
            "outboard_plugin_restarts_total",
            "plugin=flaky,reason=operator"
        ),
        1.0
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_health_is_json_for_a_known_plugin_and_404_for_another() {
    let daemon = Daemon::start_with(|_| {
        (
            format!(
                "[[plugin]]\nname = \"watched\"\ncommand = {:?}\nhealth_interval = \"100ms\"\n",
                scripted()
            ),
            vec!["--http".into(), "127.0.0.1:0".into()],
        )
    });
    let url = daemon.http_url();
    // The first health check comes one interval after the start.
    let json = health_when(&daemon, "watched", "health-checked", |json| {
        !json["last_health_check"].is_null()
    });
    assert_eq!(json["plugin"], "watched");
    assert_eq!(json["state"], "ready");
    assert_eq!(json["ready"], true);
    assert_eq!(json["pid"], daemon.pids().await["watched"]);
    assert_eq!(json["last_health_check"]["passed"], true);
    assert_eq!(json["last_health_check"]["misses"], 0);
    assert!(
        json["last_health_check"]["at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let got = fetch(&format!("{url}/plugins/nobody/health"), "none", "");
    assert_eq!(got["status"], 404);
    assert_eq!(got["content_type"], "application/json");
    let json: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(json["error"], "no plugin named \"nobody\"");
    assert_eq!(fetch(&format!("{url}/nowhere"), "none", "")["status"], 404);
    daemon.stop();
}

#[test]
fn a_taken_port_is_a_start_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("outboard.toml");
    std::fs::write(&config, plugin("good", "build:10", "{}", "")).unwrap();
    let out = common::outboard_command()
        .args(["up", "--config"])
        .arg(&config)
        .arg("--control-socket")
        .arg(work.path().join("control.sock"))
        .args(["--http", &addr])
        .env("OUTBOARD_RUNTIME_DIR", work.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen for HTTP on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("outboard: ready"), "{stderr}");
}
