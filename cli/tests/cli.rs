//! The `outboard` binary end to end, on the bundled example plugins.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Lines, outboard, text};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn examples_config() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // The examples' commands point into target/debug.
    common::bin("env-injector");
    root.join("examples/outboard.toml").display().to_string()
}

#[test]
fn ls_starts_every_example_and_reports_it_ready() {
    let out = outboard(&["ls", "--config", &examples_config(), "--json"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = rows
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "audit-log",
            "chat-notifier",
            "env-guard",
            "env-injector",
            "flaky-counter",
            "job-timer",
            "notifier",
            "payload-transformer",
            "policy-gate",
            "resource-limiter",
            "secret-scrubber"
        ]
    );
    for row in rows.as_array().expect("array") {
        assert_eq!(row["state"], "ready", "{row}");
        assert!(row["pid"].as_u64().is_some_and(|p| p > 1), "{row}");
        assert!(row["ready_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{row}");
        assert!(
            row["version"]
                .as_str()
                .is_some_and(|v| semver::Version::parse(v).is_ok()),
            "{row}"
        );
    }
}

#[test]
fn ls_prints_a_table() {
    let out = outboard(&["ls", "--config", &examples_config()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("NAME")),
        "{stdout}"
    );
    assert!(stdout.contains("pre_container(10)"), "{stdout}");
    assert_eq!(stdout.matches(" ready ").count(), 11, "{stdout}");
}

#[test]
fn ls_shows_the_priorities_dispatch_uses() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"timer\"\ncommand = {:?}\n\
             [plugin.subscriptions.pre_validation]\npriority = -7\n\
             [plugin.subscriptions.post_container]\nenabled = false\n",
            common::bin("job-timer").display().to_string()
        ),
    )
    .unwrap();
    let out = outboard(&["ls", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pre_validation(-7)"), "{stdout}");
    assert!(stdout.contains("post_container(off)"), "{stdout}");
}

#[test]
fn invoke_runs_subscribers_in_priority_order_and_prints_the_context() {
    let context =
        r#"{"command": ["make"], "env": {"CI": "true", "DEPLOY_TOKEN": "s3cret"}, "metadata": {}}"#;
    let out = outboard(&[
        "invoke",
        "pre_container",
        "--config",
        &examples_config(),
        "--context",
        context,
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["verdict"]["result"], "passed", "{report}");
    let entries = report["entries"].as_array().expect("entries");
    let order: Vec<&str> = entries
        .iter()
        .map(|e| e["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "policy-gate",
            "env-injector",
            "secret-scrubber",
            "resource-limiter"
        ],
        "{report}"
    );
    assert!(entries.iter().all(|e| e["outcome"] == "ok"), "{report}");
    let ctx = &report["context"];
    assert_eq!(ctx["env"]["CI"], "true");
    // Python's secret-scrubber ran after Rust's env-injector.
    assert_eq!(ctx["env"]["DEPLOY_TOKEN"], "[redacted]", "{report}");
    assert!(
        ctx["env"]["BUILD_ID"]
            .as_str()
            .is_some_and(|id| id.starts_with("ci-")),
        "{ctx}"
    );
    assert!(ctx["env"]["BUILD_TIMESTAMP"].is_string(), "{ctx}");
    assert_eq!(
        ctx["metadata"]["resource_limits"]["memory_bytes"],
        536_870_912u64
    );
    assert_eq!(ctx["metadata"]["resource_limits"]["cpus"], 1.5);
}

#[test]
fn describe_prints_the_manifest() {
    // resource-limiter's schema accepts the empty config describe sends.
    let plugin = common::bin("resource-limiter");
    let out = outboard(&["describe", "--", plugin.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(manifest["name"], "resource-limiter");
    assert!(
        manifest["config_schema"]["properties"]["memory"].is_object(),
        "{manifest}"
    );

    let plugin = common::bin("env-injector");
    let out = outboard(&["describe", "--", plugin.to_str().unwrap()]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(manifest["name"], "env-injector");
    assert_eq!(manifest["protocol_version"], 1);
    assert_eq!(manifest["subscriptions"][0]["phase"], "pre_container");
}

#[test]
fn describe_of_a_broken_plugin_explains_and_fails() {
    let plugin = common::bin("broken-plugin");
    let out = outboard(&["describe", "--", plugin.to_str().unwrap(), "exit-early"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("plugin broken-plugin: exited with status 3 before the handshake"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fatal: cannot open /nonexistent/broken.toml"),
        "{stderr}"
    );
}

#[test]
fn a_bad_config_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("outboard.toml");
    std::fs::write(&file, "[[plugin]]\nname = \"x\"\ncomand = \"/bin/true\"\n").expect("write");
    let out = outboard(&["ls", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("outboard.toml"), "{stderr}");
    assert!(stderr.contains("comand"), "{stderr}");
}

#[test]
fn invoke_rejects_a_context_that_is_not_an_object() {
    let out = outboard(&[
        "invoke",
        "x",
        "--config",
        &examples_config(),
        "--context",
        "[1]",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the context must be a JSON object"));
}

#[test]
fn help_teaches() {
    let out = outboard(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["describe", "ls", "invoke", "--config", "Exit status"] {
        assert!(help.contains(word), "help lacks {word}: {help}");
    }
}

/// A config of one broken-plugin in `mode` under `sandbox`, given
/// `stop_grace`, and the runtime directory base its instances go in.
fn broken_config(sandbox: &common::Sandbox, mode: &str, stop_grace: &str) -> (PathBuf, PathBuf) {
    let config = sandbox.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"{mode}\"\ncommand = {:?}\nargs = [\"{mode}\"]\ncall_timeout = \"60s\"\nstop_grace = \"{stop_grace}\"\n",
            common::bin("broken-plugin")
        ),
    )
    .expect("write config");
    let runtime = sandbox.path().join("run");
    std::fs::create_dir(&runtime).expect("runtime base");
    (config, runtime)
}

/// Starts `outboard args...` with its runtime directories under `runtime`
/// and its stderr piped.
fn spawn_outboard(args: &[&str], runtime: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", runtime)
        // `up` serves a control socket: one of its own beside the runtime
        // directory, not the machine's default.
        .env(
            "OUTBOARD_CONTROL_SOCKET",
            runtime.with_extension("ctl").join("control.sock"),
        )
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outboard")
}

/// Waits for `outboard`'s exit after a SIGTERM: 130, no plugin process in
/// `plugins` still running, no runtime directory under `runtime`.
fn assert_stopped_cleanly(child: Child, stderr: Lines, plugins: &[u32], runtime: &Path) {
    let status = {
        let mut child = child;
        child.wait().expect("wait")
    };
    let stderr = stderr.rest();
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("outboard: interrupted"), "{stderr}");
    assert_nothing_left(plugins, runtime);
}

#[test]
fn sigterm_during_a_phase_stops_plugins_and_leaves_nothing_behind() {
    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "hang-invoke", "1s");
    let mut child = spawn_outboard(
        &["invoke", "test", "--config", config.to_str().unwrap()],
        &runtime,
    );
    let mut stderr = Lines::read(child.stderr.take().expect("stderr"));
    // The plugin says so on its stderr, which the host relays, once the
    // Invoke has reached it.
    stderr.expect("never answering", Duration::from_secs(20));
    let plugins = common::child_pids(child.id());
    assert_eq!(plugins.len(), 1, "{plugins:?}");
    common::sigterm(child.id());
    assert_stopped_cleanly(child, stderr, &plugins, &runtime);
}

/// SIGTERM while the only plugin is still starting (it never handshakes):
/// `command` stops at once, with 130, and kills the plugin.
fn sigterm_while_a_plugin_starts(command: &[&str]) {
    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "silent", "1s");
    let config = config.to_str().unwrap();
    let plugin = common::bin("broken-plugin");
    let args: Vec<&str> = command
        .iter()
        .map(|&a| match a {
            "CONFIG" => config,
            "PLUGIN" => plugin.to_str().unwrap(),
            _ => a,
        })
        .collect();
    let mut child = spawn_outboard(&args, &runtime);
    let stderr = Lines::read(child.stderr.take().expect("stderr"));
    // The event: the plugin's process exists (it is the host's only child).
    let mut plugins = Vec::new();
    let spawned = common::wait_until(Duration::from_secs(10), || {
        plugins = common::child_pids(child.id());
        !plugins.is_empty()
    });
    assert!(spawned, "the plugin never started: {}", stderr.rest());
    common::sigterm(child.id());
    assert_stopped_cleanly(child, stderr, &plugins, &runtime);
}

#[test]
fn sigterm_while_describe_starts_its_plugin_exits_130_and_leaves_nothing() {
    sigterm_while_a_plugin_starts(&["describe", "--", "PLUGIN", "silent"]);
}

#[test]
fn sigterm_while_invoke_starts_its_plugins_exits_130_and_leaves_nothing() {
    sigterm_while_a_plugin_starts(&["invoke", "test", "--config", "CONFIG"]);
}

#[test]
fn sigterm_while_ls_starts_its_plugins_exits_130_and_leaves_nothing() {
    sigterm_while_a_plugin_starts(&["ls", "--config", "CONFIG"]);
}

#[test]
fn up_stops_at_once_on_a_second_signal() {
    let sandbox = common::Sandbox::new();
    // It answers Shutdown but never exits and ignores SIGTERM: the graceful
    // stop would take its 30 s grace and more.
    let (config, runtime) = broken_config(&sandbox, "ignores-sigterm", "30s");
    let started = std::time::Instant::now();
    let mut child = spawn_outboard(&["up", "--config", config.to_str().unwrap()], &runtime);
    let mut stderr = Lines::read(child.stderr.take().expect("stderr"));
    stderr.expect("outboard: ready:", Duration::from_secs(20));
    let plugins = common::child_pids(child.id());
    common::sigterm(child.id());
    stderr.expect("signal again to stop them at once", Duration::from_secs(5));
    common::sigterm(child.id());
    assert_stopped_cleanly(child, stderr, &plugins, &runtime);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "waited for the grace: {:?}",
        started.elapsed()
    );
}

/// No process of `plugins` still runs (within 2 s: killed with its group,
/// gone or a zombie of its new parent), and nothing is left in `runtime`.
fn assert_nothing_left(plugins: &[u32], runtime: &Path) {
    let gone = common::wait_until(Duration::from_secs(2), || {
        plugins.iter().all(|&pid| !common::alive(pid))
    });
    assert!(gone, "plugins still running: {plugins:?}");
    let left: Vec<_> = std::fs::read_dir(runtime)
        .expect("read")
        .flatten()
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `outboard ARGS` with one plugin that answers Shutdown but never exits
/// and ignores SIGTERM (a 30 s grace): once its stop has begun, one signal
/// kills it at once; `outboard` exits `code` (the work was done) and
/// leaves nothing behind.
fn a_signal_while_plugins_stop_kills_them(args: &[&str], code: i32) {
    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "ignores-sigterm", "30s");
    let config = config.to_str().unwrap();
    let args: Vec<&str> = args
        .iter()
        .map(|&a| if a == "CONFIG" { config } else { a })
        .collect();
    let started = std::time::Instant::now();
    let mut child = spawn_outboard(&args, &runtime);
    let mut stderr = Lines::read(child.stderr.take().expect("stderr"));
    let mut plugins = Vec::new();
    let spawned = common::wait_until(Duration::from_secs(20), || {
        plugins = common::child_pids(child.id());
        !plugins.is_empty()
    });
    assert!(spawned, "the plugin never started");
    // The event: the plugin says (through the host) it got Shutdown.
    stderr.expect("asked to shut down", Duration::from_secs(20));
    common::sigterm(child.id());
    let status = child.wait().expect("wait");
    let stderr = stderr.rest();
    assert_eq!(status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains("killing them"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "waited for the grace: {:?}",
        started.elapsed()
    );
    assert_nothing_left(&plugins, &runtime);
}

#[test]
fn a_signal_while_run_stops_its_plugins_kills_them() {
    a_signal_while_plugins_stop_kills_them(&["run", "--config", "CONFIG", "--", "true"], 0);
}

#[test]
fn a_signal_while_invoke_stops_its_plugins_kills_them() {
    a_signal_while_plugins_stop_kills_them(&["invoke", "test", "--config", "CONFIG"], 0);
}

#[test]
fn a_signal_while_ls_stops_its_plugins_kills_them() {
    a_signal_while_plugins_stop_kills_them(&["ls", "--config", "CONFIG"], 0);
}

#[test]
fn a_second_signal_while_invoke_stops_after_the_first_kills_them() {
    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "ignores-sigterm", "30s");
    let started = std::time::Instant::now();
    let mut child = spawn_outboard(
        &["invoke", "test", "--config", config.to_str().unwrap()],
        &runtime,
    );
    let mut stderr = Lines::read(child.stderr.take().expect("stderr"));
    let mut plugins = Vec::new();
    let spawned = common::wait_until(Duration::from_secs(20), || {
        plugins = common::child_pids(child.id());
        !plugins.is_empty()
    });
    assert!(spawned, "the plugin never started");
    // Whether the first comes while it starts, invokes or stops, the
    // second kills what is left.
    common::sigterm(child.id());
    stderr.expect("outboard: interrupted", Duration::from_secs(20));
    common::sigterm(child.id());
    let status = child.wait().expect("wait");
    let stderr = stderr.rest();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "waited for the grace: {:?}\n{stderr}",
        started.elapsed()
    );
    // A first signal that lands after the phase answered only cuts the stop
    // short: the phase's own result stands (exit 0); before that, 130.
    assert!(
        matches!(status.code(), Some(0 | 130)),
        "{status:?}, stderr: {stderr}"
    );
    assert_nothing_left(&plugins, &runtime);
}

#[test]
fn ls_and_invoke_to_a_full_disk_fail() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "ok", "1s");
    let config = config.to_str().unwrap();
    for args in [
        vec!["ls", "--json", "--config", config],
        vec!["ls", "--config", config],
        vec!["invoke", "test", "--json", "--config", config],
        vec!["invoke", "test", "--config", config],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_outboard"))
            .args(&args)
            .env("OUTBOARD_RUNTIME_DIR", &runtime)
            .env_remove("OUTBOARD_PLUGIN_DIR")
            .stdout(full())
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("on stdout: No space left on device"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_readme_main_job_runs_a_command_through_every_example() {
    common::go_plugin();
    common::python_plugin("secret-scrubber");
    let out = outboard(&[
        "run",
        "--config",
        &examples_config(),
        "--",
        "sh",
        "-c",
        "echo \"building $BUILD_ID\"",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        text(&out.stdout).starts_with("building ci-"),
        "{}",
        text(&out.stdout)
    );
    assert!(stderr.contains("succeeded (exit 0)"), "{stderr}");
    // The job's plugins in three languages: Rust, Go (env-guard), Python
    // (secret-scrubber, chat-notifier).
    for plugin in [
        "job-timer",
        "env-guard",
        "policy-gate",
        "env-injector",
        "secret-scrubber",
        "resource-limiter",
        "audit-log",
        "notifier",
        "chat-notifier",
        "flaky-counter",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!(" {plugin} ")) && l.contains(" ok ")),
            "{plugin} did not run ok: {stderr}"
        );
    }
    assert!(
        !stderr.contains("failed") && !stderr.contains("ignored"),
        "{stderr}"
    );
}

#[test]
fn the_example_policy_gate_vetoes_and_the_job_exits_121() {
    let out = outboard(&["run", "--config", &examples_config(), "--", "sudo", "true"]);
    assert_eq!(
        out.status.code(),
        Some(121),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("vetoed by policy-gate"));
}

#[test]
fn up_supervises_until_sigterm_then_stops_everything_and_exits_0() {
    use std::io::{BufRead, BufReader};

    let sandbox = common::Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    let mut text = String::new();
    for name in ["a", "b"] {
        text.push_str(&format!(
            "[[plugin]]\nname = \"{name}\"\ncommand = {:?}\nstop_grace = \"1s\"\n\n",
            common::bin("stress")
        ));
    }
    std::fs::write(&config, text).expect("write config");
    let runtime = sandbox.path().join("run");
    std::fs::create_dir(&runtime).expect("runtime base");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["up", "--json", "--config", config.to_str().unwrap()])
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .env(
            "OUTBOARD_CONTROL_SOCKET",
            sandbox.path().join("ctl/control.sock"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn outboard");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("a line").expect("utf-8");
        serde_json::from_str(&line).expect("JSON")
    };
    // Both ready, then kill one: a restart shows up as new state lines.
    let first: Vec<Value> = vec![next(), next()];
    assert!(
        first.iter().all(|l| l["status"]["state"] == "ready"),
        "{first:?}"
    );
    let victim = first[0]["status"]["pid"].as_u64().expect("pid") as libc::pid_t;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let mut back = None;
    for _ in 0..10 {
        let line = next();
        if line["plugin"] == first[0]["plugin"] && line["status"]["state"] == "ready" {
            back = Some(line);
            break;
        }
    }
    let back = back.expect("the killed plugin is ready again");
    assert_ne!(back["status"]["pid"].as_u64(), Some(victim as u64));
    assert_eq!(back["status"]["starts"], 2);

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let left: Vec<_> = std::fs::read_dir(&runtime)
        .expect("read")
        .flatten()
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["describe", "--"])
        .arg(common::bin("env-injector"))
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the only read end before the manifest is printed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn up_says_when_it_is_ready_even_with_no_plugins() {
    use std::io::{BufRead, BufReader};

    let sandbox = common::Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    std::fs::write(&config, "[defaults]\ncall_timeout = \"1s\"\n").expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["up", "--config", config.to_str().unwrap()])
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .env(
            "OUTBOARD_CONTROL_SOCKET",
            sandbox.path().join("ctl/control.sock"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn outboard");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("outboard: ready:"))
        .expect("a ready line");
    assert!(ready.contains("0 plugins under supervision"), "{ready}");
    assert!(ready.contains(&format!("pid {}", child.id())), "{ready}");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

#[test]
fn a_huge_duration_is_a_config_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("outboard.toml");
    let plugin = common::bin("env-injector");
    std::fs::write(
        &file,
        format!(
            "[[plugin]]\nname = \"a\"\ncommand = {:?}\ncall_timeout = \"300000000000y\"\n",
            plugin.display()
        ),
    )
    .expect("write");
    let out = outboard(&["run", "--config", file.to_str().unwrap(), "--", "true"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains(
            "outboard.toml:4: plugin \"a\": call_timeout \"300000000000y\" is longer than the maximum, 1h"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_fifo_as_config_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("outboard.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["ls", "--config", fifo.to_str().unwrap()])
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outboard");
    let mut status = None;
    let done = common::wait_until(Duration::from_secs(20), || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if !done {
        child.kill().expect("kill");
        child.wait().expect("reap");
        panic!("outboard blocked on a FIFO given as --config");
    }
    let out = child.wait_with_output().expect("output");
    let stderr = text(&out.stderr);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(
        stderr.contains("outboard.toml: it is a FIFO, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn invoke_refuses_a_phase_name_that_is_not_one_and_says_when_nobody_subscribes() {
    let out = outboard(&["invoke", "Pre Container!", "--config", &examples_config()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("\"Pre Container!\" is not a valid phase name"),
        "{}",
        text(&out.stderr)
    );

    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "ok", "1s");
    let out = Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["invoke", "nobody_listens", "--config"])
        .arg(&config)
        .env("OUTBOARD_RUNTIME_DIR", &runtime)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no plugin subscribes to phase nobody_listens"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_signal_stops_invoke_waiting_on_a_context_fifo() {
    let sandbox = common::Sandbox::new();
    let (config, runtime) = broken_config(&sandbox, "ok", "1s");
    let fifo = sandbox.path().join("context");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let context = format!("@{}", fifo.display());
    let mut child = spawn_outboard(
        &[
            "invoke",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--context",
            &context,
        ],
        &runtime,
    );
    let stderr = Lines::read(child.stderr.take().expect("stderr"));
    // The event: a thread of outboard waits in the FIFO's open for a
    // writer (the kernel's wait_for_partner).
    let waiting = common::wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .map(|tasks| {
                tasks.flatten().any(|t| {
                    std::fs::read_to_string(t.path().join("wchan"))
                        .is_ok_and(|w| w.contains("partner"))
                })
            })
            .unwrap_or(false)
    });
    assert!(waiting, "outboard never waited on the FIFO");
    common::sigterm(child.id());
    assert_stopped_cleanly(child, stderr, &[], &runtime);
}

#[test]
fn a_secret_the_scrubber_redacts_is_nowhere_in_the_json_or_the_report() {
    let secret = "hunter2-a1b2c3-not-elsewhere";
    let dir = tempfile::Builder::new()
        .prefix("obt-mask-")
        .tempdir_in("/tmp")
        .unwrap();
    let report_file = dir.path().join("report.json");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_outboard"))
            .args(["run", "--config", &examples_config()])
            .args(extra)
            .args(["--", "sh", "-c", "test \"$API_TOKEN\" = '[redacted]'"])
            .env("OUTBOARD_RUNTIME_DIR", "/tmp")
            .env_remove("OUTBOARD_PLUGIN_DIR")
            .env("API_TOKEN", secret)
            .output()
            .unwrap()
    };
    let json = run(&["--json"]);
    let with_report = run(&["--report", report_file.to_str().unwrap()]);
    let report = std::fs::read_to_string(&report_file).unwrap();
    for (out, what) in [(&json, "--json"), (&with_report, "--report")] {
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(secret), "{what} printed the secret: {all}");
    }
    assert!(!report.contains(secret), "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    let phases = report["phases"].as_array().unwrap();
    // The phases before the scrubber's show the value masked; the scrubber's
    // and those after, redacted; phases nobody subscribes to, no context.
    let context = |name: &str| &phases.iter().find(|p| p["phase"] == name).unwrap()["context"];
    assert_eq!(context("pre_validation")["env"]["API_TOKEN"], "[masked]");
    assert!(context("post_validation").is_null(), "{report}");
    assert_eq!(context("pre_container")["env"]["API_TOKEN"], "[redacted]");
    assert_eq!(context("cleanup")["env"]["API_TOKEN"], "[redacted]");
    assert_eq!(
        context("pre_container")["env"]["PATH"],
        context("pre_validation")["env"]["PATH"]
    );
}
