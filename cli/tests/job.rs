//! `outboard run` end to end: the job profile's phases around a real
//! command, with scripted plugins as real processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Sandbox, bin};
use serde_json::{Value, json};

/// A config of scripted plugins: `(name, "phase:prio,...", script)`, plus
/// extra top-level tables (e.g. phases).
fn write_config(sandbox: &Sandbox, plugins: &[(&str, &str, Value)], extra: Value) -> String {
    let plugins: Vec<Value> = plugins
        .iter()
        .map(|(name, subscribe, script)| {
            json!({
                "name": name,
                "command": bin("scripted-plugin").display().to_string(),
                "env": {"SCRIPTED_SUBSCRIBE": subscribe},
                "stop_grace": "1s",
                "config": script,
            })
        })
        .collect();
    let mut doc = json!({"plugin": plugins});
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        doc.extend(extra);
    }
    let text = toml::to_string(&toml::Value::try_from(&doc).unwrap()).unwrap();
    let path = sandbox.path().join("outboard.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn run(sandbox: &Sandbox, config: &str, args: &[&str]) -> (Output, Value) {
    let runtime = sandbox.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let report_file = sandbox.path().join("report.json");
    let _ = std::fs::remove_file(&report_file);
    let out = common::outboard_command()
        .args(["run", "--report"])
        .arg(&report_file)
        .args(["--config", config])
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    // No report when the job was cut short before one existed (e.g. an
    // interrupted start).
    let report = std::fs::read(&report_file)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("the report file is JSON"))
        .unwrap_or(Value::Null);
    assert!(
        std::fs::read_dir(&runtime).unwrap().next().is_none(),
        "runtime directories left behind"
    );
    (out, report)
}

fn phase<'r>(report: &'r Value, name: &str) -> Option<&'r Value> {
    report["phases"]
        .as_array()?
        .iter()
        .find(|p| p["phase"] == name)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An observer of on_error, post_container and cleanup: copies what it sees
/// into its own metadata.
fn observer() -> (&'static str, &'static str, Value) {
    (
        "observer",
        "post_container:0,on_error:0,cleanup:0",
        json!({
            "post_container": {"copy": {"/metadata/observer/exit_code": "/exit_code"}},
            "on_error": {"copy": {"/metadata/observer/error": "/error"}},
            "cleanup": {"copy": {"/metadata/observer/status": "/status"}},
        }),
    )
}

#[test]
fn the_command_runs_with_the_patched_environment_and_its_exit_status_propagates() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        &[
            (
                "injector",
                "pre_container:0",
                json!({"pre_container": {"set": {"/env/GREETING": "hello"}}}),
            ),
            observer(),
        ],
        json!({}),
    );
    let marker = sb.path().join("seen");
    let script = format!("printf %s \"$GREETING\" > {}; exit 7", marker.display());
    let (out, report) = run(&sb, &config, &["--", "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "hello");
    assert_eq!(report["command_exit_code"], 7);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["failure"]["kind"], "exit_code");
    let post = phase(&report, "post_container").expect("post_container ran");
    assert_eq!(post["context"]["metadata"]["observer"]["exit_code"], 7);
    let on_error = phase(&report, "on_error").expect("a failing command triggers on_error");
    assert_eq!(
        on_error["context"]["metadata"]["observer"]["error"]["kind"],
        "exit_code"
    );
    let cleanup = phase(&report, "cleanup").expect("cleanup always runs");
    assert_eq!(
        cleanup["context"]["metadata"]["observer"]["status"],
        "failed"
    );
    assert_eq!(
        report["phases"].as_array().unwrap().last().unwrap()["phase"],
        "cleanup"
    );
}

#[test]
fn a_veto_stops_the_job_before_the_command_and_triggers_on_error_and_cleanup() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        &[
            (
                "gate",
                "pre_container:0",
                json!({"pre_container": {"abort": "no deploys on Friday"}}),
            ),
            ("later", "pre_container:10", json!({})),
            observer(),
        ],
        json!({}),
    );
    let marker = sb.path().join("ran");
    let (out, report) = run(&sb, &config, &["--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(121), "stderr: {}", stderr(&out));
    assert!(!marker.exists(), "the command must not run after a veto");
    assert_eq!(report["failure"]["kind"], "vetoed");
    assert_eq!(report["failure"]["plugins"], json!(["gate"]));
    assert_eq!(report["command_exit_code"], Value::Null);
    let pre = phase(&report, "pre_container").unwrap();
    let outcomes: Vec<&str> = pre["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["vetoed", "skipped"]);
    assert!(
        phase(&report, "post_container").is_none(),
        "no command, no post_container"
    );
    let error = &phase(&report, "on_error").unwrap()["context"]["metadata"]["observer"]["error"];
    assert_eq!(error["phase"], "pre_container");
    assert_eq!(error["plugin"], "gate");
    assert_eq!(error["message"], "vetoed by gate: no deploys on Friday");
    assert_eq!(
        phase(&report, "cleanup").unwrap()["context"]["metadata"]["observer"]["status"],
        "failed"
    );
    assert!(
        stderr(&out).contains("vetoed by gate: no deploys on Friday"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_fail_closed_plugin_failure_fails_the_job_with_its_own_status() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        &[
            (
                "checker",
                "pre_validation:0",
                json!({"pre_validation": {"error": "schema missing"}}),
            ),
            observer(),
        ],
        json!({}),
    );
    let (out, report) = run(&sb, &config, &["--", "true"]);
    assert_eq!(out.status.code(), Some(122), "stderr: {}", stderr(&out));
    assert_eq!(report["failure"]["phase"], "pre_validation");
    assert_eq!(
        report["failure"]["message"],
        "returned Internal: schema missing"
    );
    // Nothing between the failure and on_error ran.
    let ran: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["pre_validation", "on_error", "cleanup"]);
}

#[test]
fn a_failing_observer_is_reported_but_does_not_fail_the_job() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        &[(
            "flaky",
            "post_container:0,cleanup:0",
            json!({"post_container": {"error": "webhook down"}, "cleanup": {"crash": true}}),
        )],
        json!({}),
    );
    let (out, report) = run(&sb, &config, &["--", "true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(report["status"], "succeeded");
    let post = &phase(&report, "post_container").unwrap()["entries"][0];
    assert_eq!(
        (post["outcome"].as_str(), post["policy"].as_str()),
        (Some("failed"), Some("fail_open"))
    );
    let cleanup = &phase(&report, "cleanup").unwrap()["entries"][0];
    assert_eq!(cleanup["failure"], "crashed");
    assert!(
        stderr(&out).contains("crashed (ignored)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dry_run_runs_the_phases_but_not_the_command() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let marker = sb.path().join("ran");
    let (out, report) = run(
        &sb,
        &config,
        &["--dry-run", "--", "touch", marker.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(!marker.exists(), "--dry-run must not run the command");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["command_exit_code"], Value::Null);
    let post = phase(&report, "post_container").expect("post_container runs in a dry run");
    assert_eq!(post["context"]["dry_run"], true);
    assert_eq!(
        post["context"]["metadata"]["observer"]["exit_code"],
        Value::Null
    );
    assert!(stderr(&out).contains("dry run: command not run"));
}

#[test]
fn a_command_that_does_not_exist_exits_127_after_on_error_and_cleanup() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let (out, report) = run(&sb, &config, &["--", "/nonexistent/tool", "--flag"]);
    assert_eq!(out.status.code(), Some(127), "stderr: {}", stderr(&out));
    assert_eq!(report["failure"]["kind"], "not_found");
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/tool")
    );
    assert!(phase(&report, "on_error").is_some());
    assert!(phase(&report, "cleanup").is_some());
}

#[test]
fn phases_can_be_declared_parallel_and_a_conflict_fails_the_job() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        &[
            (
                "left",
                "pre_container:0",
                json!({"pre_container": {"set": {"/env/MODE": "a"}}}),
            ),
            (
                "right",
                "pre_container:0",
                json!({"pre_container": {"set": {"/env/MODE": "b"}}}),
            ),
        ],
        json!({"phases": {"pre_container": {"mode": "parallel"}}}),
    );
    let (out, report) = run(&sb, &config, &["--", "true"]);
    assert_eq!(out.status.code(), Some(122), "stderr: {}", stderr(&out));
    assert_eq!(report["failure"]["plugins"], json!(["left", "right"]));
    assert_eq!(
        report["failure"]["message"],
        "plugins left and right both write /env/MODE: left writes /env/MODE, right writes /env/MODE"
    );
}

#[test]
fn sigterm_stops_the_command_and_still_runs_cleanup() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let runtime = sb.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let started = sb.path().join("started");
    // exec: the forwarded SIGTERM goes to the process that waits (a shell
    // would defer it until its child exits).
    let script = format!("touch {}; exec sleep 30", started.display());
    let child = common::outboard_command()
        .args([
            "run", "--json", "--config", &config, "--", "sh", "-c", &script,
        ])
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = common::wait_until(Duration::from_secs(10), || started.exists());
    assert!(up, "the command never started");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["failure"]["kind"], "interrupted");
    // sh was stopped by the forwarded SIGTERM: 128 + 15.
    assert_eq!(report["command_exit_code"], 143);
    assert_eq!(
        phase(&report, "cleanup").unwrap()["context"]["metadata"]["observer"]["status"],
        "failed"
    );
    assert!(std::fs::read_dir(&runtime).unwrap().next().is_none());
}

#[test]
fn a_second_sigterm_cuts_on_error_and_cleanup_short() {
    let sb = Sandbox::new();
    // Its cleanup would take a minute, within its call timeout.
    let config = write_config(
        &sb,
        &[(
            "slow-cleanup",
            "cleanup:0",
            json!({"cleanup": {"sleep_ms": 60_000}}),
        )],
        json!({"defaults": {"call_timeout": "120s"}}),
    );
    let runtime = sb.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let started = sb.path().join("started");
    let script = format!("touch {}; exec sleep 30", started.display());
    let clock = std::time::Instant::now();
    let mut child = common::outboard_command()
        .args(["run", "--config", &config, "--", "sh", "-c", &script])
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = common::Lines::read(child.stderr.take().unwrap());
    let up = common::wait_until(Duration::from_secs(10), || started.exists());
    assert!(up, "the command never started");
    common::sigterm(child.id());
    stderr.expect("on_error and cleanup still run", Duration::from_secs(5));
    common::sigterm(child.id());
    let status = child.wait().unwrap();
    let stderr = stderr.rest();
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("interrupted twice"), "{stderr}");
    assert!(
        clock.elapsed() < Duration::from_secs(30),
        "waited for cleanup: {:?}",
        clock.elapsed()
    );
    assert!(std::fs::read_dir(&runtime).unwrap().next().is_none());
}

#[test]
fn with_report_stdout_is_the_commands_own_and_the_report_is_a_file() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let (out, report) = run(&sb, &config, &["--", "echo", "only this"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "only this\n");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["command_exit_code"], 0);
}

#[test]
fn a_report_that_cannot_be_written_fails_a_job_that_succeeded() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let missing = sb.path().join("no-such-dir/report.json");
    let out = common::outboard_command()
        .args(["run", "--report"])
        .arg(&missing)
        .args(["--config", &config, "--", "true"])
        .env("OUTBOARD_RUNTIME_DIR", sb.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write the report to") && err.contains("no-such-dir/report.json"),
        "{err}"
    );
}

#[test]
fn a_plugins_message_cannot_forge_the_summary_or_drive_the_terminal() {
    let sb = Sandbox::new();
    let forged = "no\noutboard: job 0 succeeded (exit 0) in 1.0 ms\r\x1b[2J";
    let config = write_config(
        &sb,
        &[(
            "gate",
            "pre_container:0",
            json!({"pre_container": {"abort": forged}}),
        )],
        json!({}),
    );
    let (out, report) = run(&sb, &config, &["--", "true"]);
    assert_eq!(out.status.code(), Some(121), "stderr: {}", stderr(&out));
    // The report keeps the message as the plugin said it (JSON escapes it).
    assert_eq!(
        report["failure"]["message"],
        format!("vetoed by gate: {forged}")
    );
    let err = stderr(&out);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    let summaries = err
        .lines()
        .filter(|l| l.starts_with("outboard: job"))
        .count();
    assert_eq!(summaries, 1, "{err}");
    assert!(
        err.contains(
            r"vetoed by gate: no\noutboard: job 0 succeeded (exit 0) in 1.0 ms\r\u{1b}[2J"
        ),
        "{err}"
    );
}

/// `outboard run ARGS --config CONFIG -- true` with stdout to `stdout`.
fn run_to(sb: &Sandbox, config: &str, args: &[&str], stdout: std::fs::File) -> Output {
    common::outboard_command()
        .arg("run")
        .args(args)
        .args(["--config", config, "--", "true"])
        .env("OUTBOARD_RUNTIME_DIR", sb.path())
        .stdout(stdout)
        .output()
        .unwrap()
}

#[test]
fn a_report_through_a_symlink_lands_in_its_target_and_a_fifo_is_never_replaced() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let target = sb.path().join("target.json");
    let link = sb.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::fs::write(&target, "old").unwrap();
    let null = std::fs::File::create("/dev/null").unwrap();
    let out = run_to(&sb, &config, &["--report", link.to_str().unwrap()], null);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(link.symlink_metadata().unwrap().is_symlink());
    let report: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(report["status"], "succeeded");

    // A FIFO nobody reads: refused, naming it, and still a FIFO after.
    let fifo = sb.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let null = std::fs::File::create("/dev/null").unwrap();
    let out = run_to(&sb, &config, &["--report", fifo.to_str().unwrap()], null);
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("fifo has no reader"),
        "{}",
        stderr(&out)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(fifo.symlink_metadata().unwrap().file_type().is_fifo());
}

#[test]
fn a_full_disk_under_the_report_or_json_is_a_host_error() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let null = std::fs::File::create("/dev/null").unwrap();
    let out = run_to(&sb, &config, &["--report", "/dev/full"], null);
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write the report to /dev/full"),
        "{}",
        stderr(&out)
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = run_to(&sb, &config, &["--json"], full);
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot print the report on stdout"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_environment_that_is_not_utf8_is_refused_naming_the_variable() {
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let out = common::outboard_command()
        .args(["run", "--config", &config, "--", "true"])
        .env("OUTBOARD_RUNTIME_DIR", sb.path())
        .env("LATIN1", std::ffi::OsStr::from_bytes(b"caf\xe9"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("the environment variable LATIN1 is not UTF-8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_environment_the_plugins_left_unusable_exits_125_as_jobs_md_says() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        &[(
            "breaker",
            "pre_container:0",
            json!({"pre_container": {"set": {"/env/BAD": {"nested": 1}}}}),
        )],
        json!({}),
    );
    let (out, report) = run(&sb, &config, &["--", "true"]);
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    assert_eq!(report["failure"]["kind"], "invalid_context");
}

#[test]
fn a_plugins_message_cannot_forge_the_invoke_report() {
    let sb = Sandbox::new();
    let forged = "no\nphase pre_container: passed (1 plugin, 1.0 ms)\r\x1b[2J";
    let config = write_config(
        &sb,
        &[(
            "gate",
            "pre_container:0",
            json!({"pre_container": {"abort": forged, "set": {"/a\nb": 1}}}),
        )],
        json!({}),
    );
    let out = common::outboard_command()
        .args(["invoke", "pre_container", "--config", &config])
        .env("OUTBOARD_RUNTIME_DIR", sb.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("phase ")).count(),
        1,
        "{text}"
    );
    assert!(
        text.contains(
            r"vetoed by gate: no\nphase pre_container: passed (1 plugin, 1.0 ms)\r\u{1b}[2J"
        ),
        "{text}"
    );
}

#[test]
fn a_full_stderr_is_no_panic() {
    let sb = Sandbox::new();
    let config = write_config(&sb, &[observer()], json!({}));
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for (config, code) in [(config.as_str(), 0), ("/nonexistent/outboard.toml", 125)] {
        let status = common::outboard_command()
            .args(["run", "--config", config, "--", "true"])
            .env("OUTBOARD_RUNTIME_DIR", sb.path())
            .stderr(full())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "{config}");
    }
}
