//! The client commands against a real daemon: `outboard up` and the
//! `outboard` commands as real processes, with real plugin processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A running `outboard up` in its own sandbox; stopped (SIGTERM, bounded)
/// when dropped.
struct Up {
    sandbox: Sandbox,
    config: PathBuf,
    socket: PathBuf,
    child: Child,
}

impl Up {
    /// `outboard up` over one scripted plugin, `copier`, that copies
    /// `/env/MINE` to `/env/SEEN` in pre_container after a pause (so that
    /// concurrent jobs overlap), and a `bystander` with nothing to do.
    fn start() -> Up {
        let sandbox = Sandbox::new();
        let plugin = |name: &str, config: Value| {
            json!({
                "name": name,
                "command": bin("scripted-plugin").display().to_string(),
                "env": {"SCRIPTED_SUBSCRIBE": "pre_container:0"},
                "stop_grace": "1s",
                "config": config,
            })
        };
        let doc = json!({"plugin": [
            plugin("copier", json!({"pre_container": {"sleep_ms": 50, "copy": {"/env/SEEN": "/env/MINE"}}})),
            plugin("bystander", json!({})),
        ]});
        let config = sandbox.path().join("outboard.toml");
        let text = toml::to_string(&toml::Value::try_from(&doc).unwrap()).unwrap();
        std::fs::write(&config, text).unwrap();
        let socket = sandbox.path().join("ctl/control.sock");
        let mut child = common::outboard_command()
            .args(["up", "--config"])
            .arg(&config)
            .arg("--control-socket")
            .arg(&socket)
            .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
            .env_remove("OUTBOARD_PLUGIN_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = Lines::read(child.stderr.take().unwrap());
        stderr.expect("outboard: ready:", Duration::from_secs(20));
        Up {
            sandbox,
            config,
            socket,
            child,
        }
    }

    /// `outboard ARGS` as a client of this daemon.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::outboard_command();
        command
            .args(args)
            .env("OUTBOARD_CONTROL_SOCKET", &self.socket)
            .env("OUTBOARD_RUNTIME_DIR", self.sandbox.path())
            .env_remove("OUTBOARD_PLUGIN_DIR");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `args`' JSON on stdout, after checking the exit status is 0.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// SIGTERM, and the daemon's exit within 20 s.
    fn stop(&mut self) {
        sigterm(self.child.id());
        let done = wait_until(Duration::from_secs(20), || {
            self.child.try_wait().unwrap().is_some()
        });
        if !done {
            self.child.kill().unwrap();
            self.child.wait().unwrap();
        }
        assert!(done, "outboard up did not stop on SIGTERM");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().unwrap().is_none() {
            sigterm(self.child.id());
            if !wait_until(Duration::from_secs(20), || {
                self.child.try_wait().unwrap().is_some()
            }) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn pid_of(status: &Value, name: &str) -> u64 {
    let plugin = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap();
    plugin["pid"].as_u64().unwrap()
}

#[test]
fn status_logs_restart_stop_and_start_round_trip_through_a_real_daemon() {
    let mut up = Up::start();
    let status = up.json(&["status", "--json"]);
    assert_eq!(
        status["daemon"]["control_socket"],
        up.socket.to_str().unwrap()
    );
    let names: Vec<&Value> = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("bystander"), &json!("copier")]);
    let before = pid_of(&status, "copier");
    assert!(before > 0);

    let table = up.run(&["status", "copier"]);
    assert_eq!(table.status.code(), Some(0));
    let table = text(&table.stdout);
    assert!(table.contains("\ncopier "), "{table}");
    assert!(table.contains(" ready "), "{table}");

    let restarted = up.json(&["restart", "copier", "--json"]);
    assert_eq!(restarted["plugins"][0]["state"], "ready");
    let after = pid_of(&up.json(&["status", "--json"]), "copier");
    assert_ne!(before, after, "restart brings a new process");

    let stopped = up.json(&["stop", "copier", "--json"]);
    assert_eq!(stopped["plugins"][0]["state"], "disabled");
    let status = up.json(&["status", "copier", "--json"]);
    assert_eq!(status["plugins"][0]["state"], "disabled");
    assert_eq!(status["plugins"][0]["pid"], Value::Null);
    let started = up.json(&["start", "copier", "--json"]);
    assert_eq!(started["plugins"][0]["state"], "ready");

    let logs = up.run(&["logs", "copier", "-n", "5"]);
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs.stderr));
    let ghost = up.run(&["logs", "ghost"]);
    assert_eq!(ghost.status.code(), Some(1));
    assert!(
        text(&ghost.stderr).contains("ghost"),
        "{}",
        text(&ghost.stderr)
    );

    let plan = up.json(&["reload", "--dry-run", "--json"]);
    assert_eq!(plan["applied"], false);
    assert_eq!(plan["plan"]["unchanged"], json!(["bystander", "copier"]));

    // Once the daemon has stopped, a client says how to start one.
    up.stop();
    let out = up.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("outboard: no outboard daemon is listening on"),
        "{}",
        text(&out.stderr)
    );
}

/// A report without what differs from one dispatch to the next.
fn steady(mut report: Value) -> Value {
    report["invocation_id"] = Value::Null;
    report["duration_ms"] = Value::Null;
    for entry in report["entries"].as_array_mut().unwrap() {
        entry["duration_ms"] = Value::Null;
    }
    report
}

#[test]
fn invoke_on_the_daemon_prints_what_invoke_prints() {
    let up = Up::start();
    let context = r#"{"env": {"MINE": "x\u001b[31m"}}"#;
    let config = up.config.to_str().unwrap();
    let alone = [
        "invoke",
        "pre_container",
        "--config",
        config,
        "--context",
        context,
    ];
    let daemon = ["invoke", "pre_container", "--daemon", "--context", context];
    let a = steady(up.json(&[&alone[..], &["--json"]].concat()));
    let b = steady(up.json(&[&daemon[..], &["--json"]].concat()));
    assert_eq!(b["context"]["env"]["SEEN"], "x\u{1b}[31m");
    assert_eq!(a, b);

    // The text too, but for the timings.
    let untimed = |out: Output| {
        assert_eq!(out.status.code(), Some(0));
        text(&out.stdout)
            .split_whitespace()
            .filter(|w| !w.contains('.') || w.contains('"'))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let a = untimed(up.run(&alone));
    let b = untimed(up.run(&daemon));
    assert_eq!(a, b);
    assert!(!b.contains('\u{1b}'));

    // A phase nobody subscribes to passes, and stderr says so either way.
    let out = up.run(&["invoke", "cleanup", "--daemon"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("no plugin subscribes to phase cleanup"));
}

#[test]
fn twenty_jobs_at_once_through_one_daemon_each_see_only_their_own_context() {
    let up = Up::start();
    let jobs: Vec<Child> = (0..20)
        .map(|i| {
            up.command(&["run", "--daemon", "--", "sh", "-c", "printf %s \"$SEEN\""])
                .env("MINE", format!("job-{i}"))
                .env_remove("SEEN")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, job) in jobs.into_iter().enumerate() {
        let out = job.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "job {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("job-{i}"), "job {i}");
    }
}
