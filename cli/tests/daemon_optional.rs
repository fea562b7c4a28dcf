//! An optional plugin that cannot start does not keep `outboard up` (nor
//! a job) from starting: the daemon comes up, shows the plugin failed with
//! its error, and keeps supervising it per its restart policy.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::Path;
use std::time::Duration;

use daemon::{Daemon, plugin_of, scripted, write_script};

const SETTLE: Duration = Duration::from_secs(20);

/// A working plugin `core` on phase `build`, and `unlicensed`, optional, a
/// script that exits before its handshake; quarantined after two starts.
fn config(dir: &Path) -> String {
    let unlicensed = write_script(
        dir,
        "unlicensed",
        "echo 'no licence for this host' >&2\nexit 3",
    );
    format!(
        r#"
[[plugin]]
name = "core"
command = {core:?}
stop_grace = "1s"
env = {{ SCRIPTED_SUBSCRIBE = "build:0" }}

[[plugin]]
name = "unlicensed"
command = {unlicensed:?}
optional = true
backoff_initial = "10ms"
crash_loop_starts = 2
"#,
        core = scripted(),
        unlicensed = unlicensed.display().to_string(),
    )
}

#[test]
fn up_starts_without_an_optional_plugin_that_cannot_start_and_supervises_it() {
    // Ready although one plugin could not start.
    let mut up = Daemon::start_with(|dir| (config(dir), Vec::new()));
    up.stderr().expect("quarantined: crash loop", SETTLE);

    // Retried per its policy, then quarantined: failed, with the error.
    let status = up.status_when("quarantined", SETTLE, |status| {
        plugin_of(status, "unlicensed")["state"] == "failed"
    });
    let unlicensed = plugin_of(&status, "unlicensed");
    assert_eq!(unlicensed["optional"], true, "{status:#}");
    let text = unlicensed.to_string();
    assert!(text.contains("crash loop: 2 starts"), "{status:#}");
    assert!(text.contains("no licence for this host"), "{status:#}");
    assert_eq!(plugin_of(&status, "core")["state"], "ready", "{status:#}");

    // The rest works: a job's phase runs on core alone.
    let out = up.cli(&["invoke", "--daemon", "build"]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    up.stop();
}

#[test]
fn a_job_goes_on_without_an_optional_plugin_that_cannot_start() {
    let dir = tempfile::Builder::new()
        .prefix("obo-")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("outboard.toml");
    std::fs::write(&path, config(dir.path())).unwrap();
    let sandbox = common::Sandbox::new();
    let out = common::outboard_command()
        .args(["run", "--config", path.to_str().unwrap(), "--", "true"])
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .output()
        .unwrap();
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("no licence for this host"), "{stderr}");
    sandbox.assert_empty();
}
