//! `outboard conformance` run as a binary against the example plugins and
//! the broken-plugin fixture.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Sandbox, bin};
use serde_json::Value;

/// Runs `outboard conformance --json -- CMD...` with its runtime
/// directories in `sandbox`; returns the exit code and the checks.
/// The checks time plugins (handshake, deadline, shutdown, SIGTERM); run one
/// battery at a time so that five in parallel on two cores do not make the
/// timings lie.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn conformance(sandbox: &Sandbox, command: &[&str]) -> (i32, Vec<Value>) {
    let output = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["conformance", "--json", "--handshake-timeout", "5s", "--"])
        .args(command)
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .output()
        .expect("run outboard conformance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let checks: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    let checks = checks.as_array().expect("an array").clone();
    for check in &checks {
        assert!(check["name"].is_string(), "{check}");
        assert!(check["passed"].is_boolean(), "{check}");
        assert!(check["detail"].is_string(), "{check}");
    }
    assert!(
        stderr.contains(" passed, ") && stderr.contains(" failed"),
        "no summary line: {stderr}"
    );
    (output.status.code().expect("exited"), checks)
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

fn failed(checks: &[Value]) -> Vec<&Value> {
    checks.iter().filter(|c| c["passed"] != true).collect()
}

/// Processes whose environment mentions `dir` (a plugin started by the
/// conformance run has it in OUTBOARD_SOCKET).
fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| String::from_utf8_lossy(&env).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn env_injector_passes_every_check() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("env-injector");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap()]);
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    assert!(checks.len() >= 13, "{checks:#?}");
    assert!(
        check(&checks, "describe")["detail"]
            .as_str()
            .unwrap()
            .contains("pre_container"),
        "{checks:#?}"
    );
    sandbox.assert_empty();
}

#[test]
fn resource_limiter_passes_every_check() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("resource-limiter");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap()]);
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    sandbox.assert_empty();
}

#[test]
fn a_bad_manifest_fails_describe_naming_the_field() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("broken-plugin");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap(), "bad-manifest"]);
    assert_eq!(code, 1);
    let describe = check(&checks, "describe");
    assert_eq!(describe["passed"], false);
    let detail = describe["detail"].as_str().unwrap();
    assert!(detail.contains("field version"), "{detail}");
    assert!(detail.contains("subscriptions[0].phase"), "{detail}");
    let health = check(&checks, "health");
    assert_eq!(health["passed"], false);
    assert!(
        health["detail"].as_str().unwrap().starts_with("skipped: "),
        "{health}"
    );
    sandbox.assert_empty();
}

#[test]
fn a_plugin_ignoring_shutdown_and_sigterm_fails_and_is_killed() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("broken-plugin");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap(), "ignores-sigterm"]);
    assert_eq!(code, 1);
    let names: Vec<&str> = failed(&checks)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shutdown", "sigterm"], "{checks:#?}");
    assert!(
        check(&checks, "sigterm")["detail"]
            .as_str()
            .unwrap()
            .contains("after SIGTERM"),
        "{checks:#?}"
    );
    sandbox.assert_empty();
    assert_eq!(processes_using(sandbox.path()), Vec::<u32>::new());
}

/// Every bundled Rust example plugin is certified, each with a config its
/// schema accepts (those that require keys get them).
#[test]
fn every_rust_example_plugin_passes_every_check() {
    let _serial = one_at_a_time();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let audit = scratch.path().join("audit.jsonl");
    let events = scratch.path().join("events.jsonl");
    let examples = [
        ("env-injector", None),
        (
            "resource-limiter",
            Some(serde_json::json!({"memory": "256Mi", "cpus": 1})),
        ),
        ("job-timer", None),
        (
            "policy-gate",
            Some(serde_json::json!({"deny": ["^sudo\\b"]})),
        ),
        ("audit-log", Some(serde_json::json!({"path": audit}))),
        (
            "notifier",
            Some(serde_json::json!({"secret": "s3cret", "file": events})),
        ),
        ("payload-transformer", None),
        ("stress", None),
    ];
    for (name, config) in examples {
        let sandbox = Sandbox::new();
        let mut args = vec!["conformance".to_owned(), "--json".to_owned()];
        if let Some(config) = &config {
            args.push("--config".to_owned());
            args.push(config.to_string());
        }
        args.push("--".to_owned());
        args.push(bin(name).display().to_string());
        let output = Command::new(env!("CARGO_BIN_EXE_outboard"))
            .args(&args)
            .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
            .output()
            .expect("run outboard conformance");
        let checks: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let failures: Vec<&Value> = checks
            .as_array()
            .expect("an array")
            .iter()
            .filter(|c| c["passed"] != true)
            .collect();
        assert!(failures.is_empty(), "{name} failed: {failures:#?}");
        assert_eq!(output.status.code(), Some(0), "{name}");
        sandbox.assert_empty();
    }
}
