//! The effective sandbox as operators see it: `outboard status` (text and
//! `--json`) shows the walls each running plugin got, the very ones the
//! kernel holds its process in, and a reload that changes them restarts
//! the plugin inside the new ones; `outboard describe --sandbox` shows the
//! same plan for a configured plugin without starting anything.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::Path;
use std::time::Duration;

use daemon::{Daemon, plugin_of, scripted, write_script};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(30);

/// `walled` with limits, a network namespace and no core dumps, with
/// `memory`; `open` with no sandbox.
fn config(memory: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "walled"
command = {scripted:?}
stop_grace = "1s"
env = {{ SCRIPTED_SUBSCRIBE = "build:0" }}

[plugin.sandbox]
memory = "{memory}"
pids = 32
open_files = 64
core_dumps = false
network = "none"

[[plugin]]
name = "open"
command = {scripted:?}
stop_grace = "1s"
env = {{ SCRIPTED_SUBSCRIBE = "build:1" }}
"#,
        scripted = scripted(),
    )
}

/// The settings of a list of walls, in order.
fn settings(walls: &Value) -> Vec<&str> {
    walls
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["setting"].as_str().unwrap())
        .collect()
}

/// The wall of `setting` in a list of walls.
fn wall<'a>(walls: &'a Value, setting: &str) -> &'a Value {
    walls
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["setting"] == setting)
        .unwrap_or_else(|| panic!("no {setting} in {walls}"))
}

/// `outboard describe --sandbox --json` for `plugin` of the daemon's config.
fn planned(up: &Daemon, plugin: &str) -> Value {
    let out = common::outboard_command()
        .args(["describe", "--sandbox", "--json", "--plugin", plugin])
        .arg("--config")
        .arg(up.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A line of `/proc/PID/status` or `/proc/PID/limits` starting `key`.
fn proc_line(pid: u64, file: &str, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/{file}"))
        .to_owned()
}

#[test]
fn status_shows_the_walls_the_kernel_holds_each_plugin_in_and_a_reload_replaces_them() {
    let up = Daemon::start(&config("128Mi"));
    let status = up.cli_json(&["status"]);
    let walled = plugin_of(&status, "walled");
    let walls = &walled["sandbox"];
    assert_eq!(
        settings(walls),
        [
            "memory",
            "pids",
            "open_files",
            "core_dumps",
            "network",
            "no_new_privs"
        ],
        "{status:#}"
    );
    assert_eq!(wall(walls, "memory")["value"], "128Mi");
    assert_eq!(wall(walls, "network")["value"], "none");
    // What status shows is the plan describe gives for the same config on
    // this machine: one decision, shown and built.
    assert_eq!(walls, &planned(&up, "walled"));
    assert_eq!(
        settings(&plugin_of(&status, "open")["sandbox"]),
        ["no_new_privs"]
    );

    // And it is what the kernel holds the process in.
    let pid = walled["pid"].as_u64().unwrap();
    assert!(proc_line(pid, "limits", "Max open files").contains(" 64 "));
    assert!(proc_line(pid, "limits", "Max core file size").contains(" 0 "));
    assert_eq!(proc_line(pid, "status", "NoNewPrivs:"), "NoNewPrivs:\t1");
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(netns(&pid.to_string()), netns("self"));

    // The text: a line for the plugin with walls beyond no_new_privs.
    let out = up.cli(&["status"]);
    let text = common::text(&out.stdout);
    assert!(text.contains("walled: sandbox: memory 128Mi ("), "{text}");
    assert!(text.contains("network none ("), "{text}");
    assert!(!text.contains("open: sandbox"), "{text}");

    // A reload that changes the walls restarts the plugin inside the new.
    up.write_config(&config("96Mi"));
    let out = up.cli(&["reload"]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(
        common::text(&out.stdout).contains("walled (sandbox)"),
        "{}",
        common::text(&out.stdout)
    );
    let status = up.status_when("walled in its new walls", SETTLE, |status| {
        let walled = plugin_of(status, "walled");
        walled["state"] == "ready" && wall(&walled["sandbox"], "memory")["value"] == "96Mi"
    });
    assert_ne!(plugin_of(&status, "walled")["pid"].as_u64(), Some(pid));
    up.stop();
}

/// A config whose plugin `a` records each start in `dir/started`, with
/// `sandbox` as its table.
fn recording(dir: &Path, sandbox: &str) -> std::path::PathBuf {
    let marker = dir.join("started");
    let plugin = write_script(
        dir,
        "recording",
        &format!("echo started >> {}\nexit 1", marker.display()),
    );
    let path = dir.join("outboard.toml");
    std::fs::write(
        &path,
        format!(
            "[[plugin]]\nname = \"a\"\ncommand = {:?}\n\n[plugin.sandbox]\n{sandbox}\n",
            plugin.display().to_string()
        ),
    )
    .unwrap();
    path
}

#[test]
fn describe_sandbox_plans_without_starting_anything() {
    let dir = tempfile::Builder::new()
        .prefix("obs-")
        .tempdir_in("/tmp")
        .unwrap();
    let config = recording(dir.path(), "memory = \"64Mi\"\nnetwork = \"loopback\"");
    let describe = |extra: &[&str]| {
        common::outboard_command()
            .args(["describe", "--sandbox", "--plugin", "a", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = describe(&[]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let table = common::text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SETTING"), "{table}");
    assert!(lines[1].starts_with("memory        64Mi "), "{table}");
    assert!(lines[2].starts_with("network       loopback "), "{table}");
    assert!(lines[3].starts_with("no_new_privs  always "), "{table}");
    let json: Value = serde_json::from_slice(&describe(&["--json"]).stdout).unwrap();
    assert_eq!(settings(&json), ["memory", "network", "no_new_privs"]);
    assert!(!dir.path().join("started").exists(), "the plugin ran");

    // A wall that cannot be had: refused, naming plugin and setting, and
    // still nothing started.
    let config = recording(dir.path(), "user = \"no-such-user-here\"");
    let out = common::outboard_command()
        .args(["describe", "--sandbox", "--plugin", "a", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        common::text(&out.stderr).trim(),
        "outboard: plugin \"a\": sandbox.user \"no-such-user-here\" is not a user on this machine"
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.path().join("started").exists(), "the plugin ran");

    // --json alone is describe's manifest, which has no --json.
    let out = common::outboard(&["describe", "--json", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out.stderr));
}
