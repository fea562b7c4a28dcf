//! The Go and Python example plugins against the real host, beside the Rust
//! ones: a veto from the Go plugin (plugin-examples/go, written from
//! docs/PROTOCOL.md without an SDK) and redaction by the Python
//! secret-scrubber (plugin-examples/python, on the Python SDK) through
//! `outboard invoke`. `cli/tests/conformance.rs` certifies both.
//!
//! `scripts/build` builds `target/go/env-guard` and installs
//! `.tools/venv/bin/secret-scrubber`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{go_plugin, outboard, python_plugin, text};
use serde_json::Value;

/// `toml` as an `outboard.toml` in a fresh directory under /tmp (short
/// socket paths); the directory lives as long as the returned guard.
fn config_of(toml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("obt-lang-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let path = dir.path().join("outboard.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path.display().to_string())
}

#[test]
fn the_go_plugin_vetoes_a_job_without_a_required_variable() {
    let plugin = go_plugin();
    let (_dir, config) = config_of(&format!(
        "[[plugin]]\nname = \"env-guard\"\ncommand = {:?}\n\n[plugin.config]\nrequired = [\"HOME\"]\n",
        plugin.to_str().unwrap()
    ));
    let config = config.as_str();

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

#[test]
fn secret_scrubber_redacts_secret_values_through_the_host() {
    let plugin = python_plugin("secret-scrubber");
    let (_dir, config) = config_of(&format!(
        "[[plugin]]\nname = \"secret-scrubber\"\ncommand = {:?}\ngrant = [\"env:write\"]\n\n\
         [plugin.config]\nkeep = [\"PUBLIC_KEY\"]\n",
        plugin.to_str().unwrap()
    ));
    let config = config.as_str();

    let out = outboard(&[
        "invoke",
        "pre_container",
        "--config",
        config,
        "--context",
        r#"{"command": ["make"], "env": {"CI": "1", "API_TOKEN": "tok-123", "db_password": "hunter2", "PUBLIC_KEY": "ssh-ed25519 AAAA"}, "metadata": {}}"#,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let context = &report["context"];
    assert_eq!(context["env"]["API_TOKEN"], "[redacted]", "{report}");
    assert_eq!(context["env"]["db_password"], "[redacted]", "{report}");
    assert_eq!(context["env"]["PUBLIC_KEY"], "ssh-ed25519 AAAA", "{report}");
    assert_eq!(context["env"]["CI"], "1", "{report}");
    assert_eq!(
        context["metadata"]["secret_scrubber"]["scrubbed"],
        serde_json::json!(["API_TOKEN", "db_password"]),
        "{report}"
    );

    // Without the env:write grant it refuses to start, naming the permission.
    std::fs::write(
        config,
        format!(
            "[[plugin]]\nname = \"secret-scrubber\"\ncommand = {:?}\n",
            plugin.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = outboard(&[
        "invoke",
        "pre_container",
        "--config",
        config,
        "--context",
        r#"{"command": ["make"], "env": {}, "metadata": {}}"#,
    ]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("'env:write' was not granted"), "{all}");
}
