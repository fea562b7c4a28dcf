//! The Go example plugin (plugin-examples/go, written against
//! docs/PROTOCOL.md without an SDK) against the real host: the conformance
//! battery, and a veto through `outboard invoke`.
//!
//! `scripts/test` builds the plugin into `target/go/env-guard` first.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// `<workspace>/target/go/env-guard`; fails (does not skip) if it is missing.
fn env_guard() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/go/env-guard")
        .canonicalize()
        .unwrap_or_else(|_| {
            panic!(
                "target/go/env-guard is not built: run scripts/test (it builds the Go plugin \
                 with `cd plugin-examples/go && go build -o ../../target/go/env-guard .`)"
            )
        });
    assert!(
        path.is_file(),
        "{} is not a file: run scripts/test",
        path.display()
    );
    path
}

fn outboard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .output()
        .expect("run outboard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_go_plugin_passes_every_conformance_check() {
    let plugin = env_guard();
    let out = outboard(&["conformance", "--json", "--", plugin.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "conformance exited with {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    let checks: Value = serde_json::from_str(&stdout).expect("conformance --json prints JSON");
    let checks = checks.as_array().expect("an array of checks");
    assert!(checks.len() >= 10, "too few checks: {stdout}");
    for check in checks {
        assert_eq!(check["passed"], true, "check failed: {check}");
    }
}

#[test]
fn the_go_plugin_vetoes_a_job_without_a_required_variable() {
    let plugin = env_guard();
    let dir = tempfile::Builder::new()
        .prefix("obt-go-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let config = dir.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"env-guard\"\ncommand = {:?}\n\n[plugin.config]\nrequired = [\"HOME\"]\n",
            plugin.to_str().unwrap()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let out = outboard(&[
        "invoke",
        "pre_validation",
        "--config",
        config,
        "--context",
        r#"{"command": ["true"], "env": {"CI": "1"}, "metadata": {}}"#,
    ]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(3),
        "expected exit 3 (vetoed): {all}"
    );
    assert!(all.contains("vetoed by env-guard"), "{all}");
    assert!(
        all.contains("required environment variables missing or empty: HOME"),
        "{all}"
    );

    // With HOME set the phase passes and records how many names were checked.
    let out = outboard(&[
        "invoke",
        "pre_validation",
        "--config",
        config,
        "--context",
        r#"{"command": ["true"], "env": {"HOME": "/root"}, "metadata": {}}"#,
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        report["context"]["metadata"]["env_guard"]["checked"], 1,
        "{report}"
    );
}
