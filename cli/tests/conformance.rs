//! `outboard conformance` run as a binary against the example plugins and
//! the broken-plugin fixture.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

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
    let (code, checks, _) = conformance_with(sandbox, &[], None, command);
    (code, checks)
}

/// As [`conformance`], with `flags` (`--sandbox strict`) and
/// `--config-json CONFIG` for a plugin whose schema requires keys; stderr
/// too.
fn conformance_with(
    sandbox: &Sandbox,
    flags: &[&str],
    config: Option<&Value>,
    command: &[&str],
) -> (i32, Vec<Value>, String) {
    let mut args: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    args.extend(["--handshake-timeout".to_owned(), "5s".to_owned()]);
    if let Some(config) = config {
        args.extend(["--config-json".to_owned(), config.to_string()]);
    }
    args.push("--".to_owned());
    args.extend(command.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    conformance_args(sandbox, &args)
}

/// Runs `outboard conformance --json ARGS...` with its runtime directories
/// in `sandbox`; returns the exit code, the checks and stderr.
fn conformance_args(sandbox: &Sandbox, args: &[&str]) -> (i32, Vec<Value>, String) {
    let output = common::outboard_command()
        .args(["conformance", "--json"])
        .args(args)
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
    (
        output.status.code().expect("exited"),
        checks,
        stderr.into_owned(),
    )
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

/// The names of `checks`, in order.
fn names(checks: &[Value]) -> Vec<&str> {
    checks.iter().map(|c| c["name"].as_str().unwrap()).collect()
}

/// Every check of the battery, in order, with `invokes` (`invoke <phase>`
/// per subscribed phase, or `invoke` alone when it did not run) in place of
/// the invoke checks.
fn battery<'a>(invokes: &[&'a str]) -> Vec<&'a str> {
    let mut names = vec![
        "run-by-hand",
        "handshake",
        "socket permissions",
        "token required",
        "describe",
        "configure valid",
        "configure invalid",
        "health",
    ];
    names.extend(invokes);
    names.extend(["unknown fields tolerated", "deadline honoured"]);
    names.extend(FASTPATH);
    names.extend(["shutdown", "sigterm", "host services tolerated"]);
    names
}

/// The fast path's checks, in order.
const FASTPATH: [&str; 10] = [
    "fastpath hello",
    "fastpath framing",
    "fastpath same answer as grpc",
    "fastpath multiplexing",
    "fastpath deadline",
    "fastpath cancellation",
    "fastpath malformed payload",
    "fastpath unknown kind",
    "fastpath over-size frame",
    "fastpath no crash",
];

/// What the fast path's checks of a battery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    /// They ran and passed: the plugin lists the feature, it was offered.
    Checked,
    /// Skipped: the plugin does not list the feature.
    NotListed,
    /// Skipped: `--fastpath off`.
    Off,
}

/// `outboard conformance --fastpath off`.
const FASTPATH_OFF: &[&str] = &["--fastpath", "off"];

/// Asserts that the fast path's checks of `checks` did what `fast` says.
fn assert_fast(checks: &[Value], fast: Fast, name: &str) {
    for fastpath in FASTPATH {
        let c = check(checks, fastpath);
        let detail = c["detail"].as_str().unwrap();
        match fast {
            Fast::Checked => {
                assert_eq!(c["outcome"], "passed", "{name}: {c}");
                assert!(!detail.starts_with("skipped"), "{name}: {c}");
            }
            Fast::NotListed => {
                assert_eq!(c["outcome"], "not-applicable", "{name}: {c}");
                assert!(
                    detail.contains("does not list invoke-fastpath/1"),
                    "{name}: {c}"
                );
            }
            Fast::Off => {
                assert_eq!(c["outcome"], "not-applicable", "{name}: {c}");
                assert!(
                    detail.contains(
                        "the fast path was not offered (--fastpath off, or fastpath = false"
                    ),
                    "{name}: {c}"
                );
            }
        }
    }
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
    assert_eq!(names(&checks), battery(&["invoke pre_container"]));
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

/// The host-services check launches with `OUTBOARD_HOST_SOCKET` and
/// `OUTBOARD_HOST_TOKEN` on a live socket: a plugin that needs them (and
/// refuses `Configure` without, as §17.1 says it should) is configured and
/// invoked there, and reaches the socket.
#[test]
fn the_host_services_check_gives_the_variables_and_a_live_socket() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("kv-plugin");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap()]);
    assert_eq!(code, 1);
    let configure = check(&checks, "configure valid");
    assert_eq!(configure["passed"], false, "{configure}");
    assert!(
        configure["detail"]
            .as_str()
            .unwrap()
            .contains("OUTBOARD_HOST_SOCKET is not set"),
        "{configure}"
    );
    let hosted = check(&checks, "host services tolerated");
    assert_eq!(hosted["passed"], true, "{hosted}");
    let detail = hosted["detail"].as_str().unwrap();
    assert!(
        detail.contains("described, configured, invoke kv"),
        "{detail}"
    );
    assert!(
        detail.contains("connected to the host socket 1 time(s)"),
        "{detail}"
    );
    sandbox.assert_empty();
}

#[test]
fn a_bad_manifest_fails_describe_naming_the_field() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("broken-plugin");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap(), "bad-manifest"]);
    assert_eq!(code, 1);
    assert_eq!(names(&checks), battery(&["invoke"]));
    let describe = check(&checks, "describe");
    assert_eq!(describe["passed"], false);
    let detail = describe["detail"].as_str().unwrap();
    assert!(detail.contains("field version"), "{detail}");
    assert!(detail.contains("subscriptions[0].phase"), "{detail}");
    let health = check(&checks, "health");
    assert_eq!(health["passed"], false);
    assert_eq!(health["outcome"], "blocked");
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
    assert_eq!(names(&checks), battery(&["invoke test"]));
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

/// Certifies `plugin` (with `config`, if its schema requires keys): every
/// check of the battery runs, with one invoke check per phase in `phases`,
/// and passes, the fast path's as `fast` says; the exit status is 0,
/// nothing is left behind.
fn passes_every_check(plugin: &Path, config: Option<Value>, phases: &[&str], fast: Fast) {
    let flags = if fast == Fast::Off { FASTPATH_OFF } else { &[] };
    passes_every_check_with(flags, plugin, config, phases, fast);
}

/// [`passes_every_check`] with `flags` given to `outboard conformance`;
/// stderr.
fn passes_every_check_with(
    flags: &[&str],
    plugin: &Path,
    config: Option<Value>,
    phases: &[&str],
    fast: Fast,
) -> String {
    let sandbox = Sandbox::new();
    let (code, checks, stderr) = conformance_with(
        &sandbox,
        flags,
        config.as_ref(),
        &[plugin.to_str().unwrap()],
    );
    let name = plugin.display();
    assert!(
        failed(&checks).is_empty(),
        "{name} failed: {:#?}",
        failed(&checks)
    );
    let invokes: Vec<String> = phases.iter().map(|p| format!("invoke {p}")).collect();
    let invokes: Vec<&str> = invokes.iter().map(String::as_str).collect();
    assert_eq!(names(&checks), battery(&invokes), "{name}");
    assert_fast(&checks, fast, &name.to_string());
    assert_eq!(code, 0, "{name}");
    sandbox.assert_empty();
    stderr
}

/// Every bundled Rust example plugin is certified, each with a config its
/// schema accepts (those that require keys get them), its fast path
/// checked.
#[test]
fn every_rust_example_plugin_passes_every_check() {
    let _serial = one_at_a_time();
    let scratch = tempfile::tempdir().expect("scratch dir");
    for (name, config, phases) in rust_examples(scratch.path()) {
        passes_every_check(&bin(name), config, phases, Fast::Checked);
    }
}

/// The same with `--fastpath off`: offered no fast path, each stays on
/// gRPC and passes the rest.
#[test]
fn every_rust_example_plugin_passes_every_check_with_the_fast_path_off() {
    let _serial = one_at_a_time();
    let scratch = tempfile::tempdir().expect("scratch dir");
    for (name, config, phases) in rust_examples(scratch.path()) {
        passes_every_check(&bin(name), config, phases, Fast::Off);
    }
}

/// The bundled Rust example plugins, each with a config its schema accepts
/// (files under `scratch`) and its phases.
fn rust_examples(scratch: &Path) -> [(&'static str, Option<Value>, &'static [&'static str]); 8] {
    let audit = scratch.join("audit.jsonl");
    let events = scratch.join("events.jsonl");
    [
        ("env-injector", None, &["pre_container"]),
        (
            "resource-limiter",
            Some(serde_json::json!({"memory": "256Mi", "cpus": 1})),
            &["pre_container"],
        ),
        ("job-timer", None, &["pre_validation", "post_container"]),
        (
            "policy-gate",
            Some(serde_json::json!({"deny": ["^sudo\\b"]})),
            &["pre_container"],
        ),
        (
            "audit-log",
            Some(serde_json::json!({"path": audit})),
            &["post_container", "cleanup"],
        ),
        (
            "notifier",
            Some(serde_json::json!({"secret": "s3cret", "file": events})),
            &["post_container"],
        ),
        ("payload-transformer", None, &["submit"]),
        ("stress", None, &["stress"]),
    ]
}

/// The Go example plugin, written from PROTOCOL.md without an SDK.
#[test]
fn the_go_example_plugin_passes_every_check() {
    let _serial = one_at_a_time();
    let (plugin, config, phases) = go_example();
    passes_every_check(&plugin, config, phases, Fast::NotListed);
}

/// The Go example plugin, a config its schema accepts, and its phases.
fn go_example() -> (PathBuf, Option<Value>, &'static [&'static str]) {
    (
        common::go_plugin(),
        Some(serde_json::json!({"required": ["PATH"], "forbidden": ["LD_PRELOAD"]})),
        &["pre_validation"],
    )
}

/// The Python example plugins, written with the Python SDK. A Python
/// interpreter's start-up is heavy on two cores; the battery's timing
/// bounds hold all the same.
#[test]
fn the_python_example_plugins_pass_every_check() {
    let _serial = one_at_a_time();
    let scratch = tempfile::tempdir().expect("scratch dir");
    for (plugin, config, phases) in python_examples(scratch.path()) {
        passes_every_check(&plugin, config, phases, Fast::Checked);
    }
}

/// The same with `--fastpath off`.
#[test]
fn the_python_example_plugins_pass_every_check_with_the_fast_path_off() {
    let _serial = one_at_a_time();
    let scratch = tempfile::tempdir().expect("scratch dir");
    for (plugin, config, phases) in python_examples(scratch.path()) {
        passes_every_check(&plugin, config, phases, Fast::Off);
    }
}

/// The Python example plugins, each with a config its schema accepts
/// (files under `scratch`) and its phases.
fn python_examples(scratch: &Path) -> [(PathBuf, Option<Value>, &'static [&'static str]); 2] {
    [
        (
            common::python_plugin("secret-scrubber"),
            None,
            &["pre_container"],
        ),
        (
            common::python_plugin("chat-notifier"),
            Some(serde_json::json!({"file": scratch.join("chat.jsonl")})),
            &["post_container"],
        ),
    ]
}

/// The example config, as the operator's file.
fn examples_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/outboard.toml")
        .canonicalize()
        .expect("examples/outboard.toml")
}

/// The names of the `[[plugin]]` tables of the example config, in order.
fn example_plugins() -> Vec<String> {
    let text = std::fs::read_to_string(examples_config()).unwrap();
    let config: toml::Table = text.parse().unwrap();
    config["plugin"]
        .as_array()
        .unwrap()
        .iter()
        // A disabled plugin is not configured (CONFIG.md, `enabled`).
        .filter(|p| p.get("enabled").and_then(toml::Value::as_bool) != Some(false))
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every plugin of `examples/outboard.toml` (the notifier with its secret
/// from its configured env included) passes every check as the operator
/// configured it: `--plugin NAME --config examples/outboard.toml`.
#[test]
fn every_plugin_of_the_example_config_passes_as_configured() {
    let _serial = one_at_a_time();
    every_plugin_of_the_example_config_passes_with(&[]);
}

/// Every plugin of `examples/outboard.toml` passes every check as
/// configured, with `flags` given to `outboard conformance`; each one's
/// stderr.
fn every_plugin_of_the_example_config_passes_with(flags: &[&str]) -> Vec<String> {
    let config = examples_config();
    let plugins = example_plugins();
    assert!(plugins.iter().any(|p| p == "notifier"), "{plugins:?}");
    let mut stderrs = Vec::new();
    for name in &plugins {
        let sandbox = Sandbox::new();
        let mut args = flags.to_vec();
        args.extend(["--plugin", name, "--config", config.to_str().unwrap()]);
        let (code, checks, stderr) = conformance_args(&sandbox, &args);
        assert!(
            failed(&checks).is_empty(),
            "{name} failed: {:#?}\n{stderr}",
            failed(&checks)
        );
        assert_eq!(code, 0, "{name}");
        let describe = check(&checks, "describe")["detail"].as_str().unwrap();
        assert!(describe.starts_with(&format!("{name} ")), "{describe}");
        sandbox.assert_empty();
        stderrs.push(stderr);
    }
    stderrs
}

// === The strict sandbox preset ===

/// `outboard conformance --sandbox strict`.
const STRICT: &[&str] = &["--sandbox", "strict"];

/// True if this machine builds every wall of the strict preset. If it
/// cannot, checks that `--sandbox strict` refuses, naming the wall, and
/// says so: there is then nothing to certify under it.
fn strict_here() -> bool {
    let strict = outboard_host::config::SandboxSpec::default().strict();
    let Err(why) = outboard_host::sandbox::plan("probe", &strict, outboard_host::sandbox::offers())
    else {
        return true;
    };
    let sandbox = Sandbox::new();
    let output = common::outboard_command()
        .args(["conformance", "--sandbox", "strict", "--"])
        .arg(bin("env-injector"))
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .output()
        .expect("run outboard conformance");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&why.problem), "{stderr}");
    eprintln!("skipped: this machine cannot build the strict preset: {why}");
    false
}

/// Asserts that `stderr` lists the strict preset's walls as this machine
/// builds them: the battery ran inside them.
fn assert_strict_walls(name: &str, stderr: &str) {
    for wall in [
        "sandbox: memory = 256Mi (",
        "sandbox: network = none (network namespace of its own, no interface up)",
        "sandbox: filesystem = 0 read, 0 write paths (Landlock ABI ",
        "sandbox: no_new_privs = always (",
    ] {
        assert!(stderr.contains(wall), "{name}: no {wall:?} in\n{stderr}");
    }
}

/// Every example plugin, Rust, Go and Python, passes every check under the
/// strict preset: 256Mi, no network, only its own files (for a Python
/// console script: the script, the venv, the base Python and the editable
/// sources; for the Go binary: itself) and the system's libraries.
#[test]
fn every_example_plugin_passes_every_check_under_the_strict_sandbox() {
    let _serial = one_at_a_time();
    if !strict_here() {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let rust = rust_examples(scratch.path())
        .map(|(name, config, phases)| (bin(name), config, phases, Fast::Checked));
    let (go, config, phases) = go_example();
    let python = python_examples(scratch.path())
        .map(|(plugin, config, phases)| (plugin, config, phases, Fast::Checked));
    let examples = rust
        .into_iter()
        .chain([(go, config, phases, Fast::NotListed)])
        .chain(python);
    for (plugin, config, phases, fast) in examples {
        let stderr = passes_every_check_with(STRICT, &plugin, config, phases, fast);
        assert_strict_walls(&plugin.display().to_string(), &stderr);
    }
}

/// Every plugin of the example config passes as configured under the
/// strict preset (their configured walls, none here, under it).
#[test]
fn every_plugin_of_the_example_config_passes_as_configured_under_the_strict_sandbox() {
    let _serial = one_at_a_time();
    if !strict_here() {
        return;
    }
    for stderr in every_plugin_of_the_example_config_passes_with(STRICT) {
        assert_strict_walls("a configured plugin", &stderr);
    }
}

/// A configured plugin keeps its own filesystem paths under the strict
/// preset, and one that does not exist is an error naming the plugin, the
/// setting and the path, before any check runs.
#[test]
fn the_strict_sandbox_keeps_a_configured_plugins_paths() {
    let _serial = one_at_a_time();
    if !strict_here() {
        return;
    }
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    let data = sandbox.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let write = |path: &Path| {
        std::fs::write(
            &config,
            format!(
                "[[plugin]]\nname = \"injector\"\ncommand = {:?}\n\n\
                 [plugin.sandbox]\nfilesystem.read = [{:?}]\n",
                bin("env-injector"),
                path,
            ),
        )
        .unwrap();
    };
    write(&data);
    let args = ["--sandbox", "strict", "--plugin", "injector", "--config"];
    let mut with_config = args.to_vec();
    with_config.push(config.to_str().unwrap());
    let (code, checks, stderr) = conformance_args(&sandbox, &with_config);
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    assert!(
        stderr.contains("sandbox: filesystem = 1 read, 0 write paths (Landlock ABI "),
        "{stderr}"
    );
    std::fs::remove_dir(&data).unwrap();
    let output = common::outboard_command()
        .arg("conformance")
        .args(&with_config)
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .output()
        .expect("run outboard conformance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let expected = format!(
        "plugin \"injector\": sandbox.filesystem.read names {}, which cannot be opened: No such file or directory",
        data.display()
    );
    assert!(
        stdout.contains(&expected) || stderr.contains(&expected),
        "{stdout}\n{stderr}"
    );
}

/// As configured, a plugin gets its own config, not `{}`: one its schema
/// refuses blocks the checks, naming the file; an unknown name lists the
/// configured ones.
#[test]
fn a_configured_plugin_is_certified_with_its_own_config() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"injector\"\ncommand = {:?}\n\n[plugin.config]\nprefix = 7\n\n\
             [[plugin]]\nname = \"limiter\"\ncommand = {:?}\n",
            bin("env-injector"),
            bin("resource-limiter"),
        ),
    )
    .unwrap();
    let file = config.to_str().unwrap();
    let (code, checks, _) = conformance_args(&sandbox, &["--plugin", "injector", "--config", file]);
    assert_eq!(code, 1);
    let valid = check(&checks, "configure valid");
    assert_eq!(valid["outcome"], "blocked", "{valid}");
    let detail = valid["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("the plugin's config in {file}")),
        "{detail}"
    );
    assert!(detail.contains("/prefix"), "{detail}");

    let out = common::outboard_command()
        .args(["conformance", "--plugin", "nope", "--config", file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"no plugin named "nope" is configured (configured: injector, limiter)"#),
        "{stderr}"
    );
    std::fs::remove_file(&config).unwrap();
    sandbox.assert_empty();
}

/// `--config` names the host's file now; JSON there gets a pointer to
/// `--config-json`.
#[test]
fn json_given_to_config_points_to_config_json() {
    let out = common::outboard_command()
        .args(["conformance", "--config", r#"{"a": 1}"#, "--plugin", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--config-json"), "{stderr}");
}

/// A plugin started through an interpreter (here `sh` running a wrapper)
/// gets one instance name, its manifest's, both in `OUTBOARD_PLUGIN_NAME`
/// and in `Configure`, under `describe` and `conformance` alike; the
/// host's messages name it so.
#[test]
fn a_plugin_behind_an_interpreter_gets_one_name_its_manifests() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let scratch = tempfile::tempdir().unwrap();
    let wrapper = scratch.path().join("wrapper");
    std::fs::write(
        &wrapper,
        format!("exec {} ok\n", bin("broken-plugin").display()),
    )
    .unwrap();
    let wrapper = wrapper.to_str().unwrap();
    let agreed = r#"configured as "broken-ok" (OUTBOARD_PLUGIN_NAME "broken-ok")"#;

    let out = common::outboard_command()
        .args(["describe", "--", "sh", wrapper])
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(agreed), "{stderr}");
    assert!(!stderr.contains(r#"plugin="sh""#), "{stderr}");
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["name"], "broken-ok");

    let (code, checks, stderr) = conformance_args(&sandbox, &["--", "sh", wrapper]);
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    assert!(stderr.contains(agreed), "{stderr}");
    assert!(!stderr.contains(r#"configured as "sh""#), "{stderr}");
    sandbox.assert_empty();
}

/// The manifest `outboard describe ARGS...` prints, with its runtime
/// directories in `sandbox`; fails the test if it does not exit 0.
fn describe(sandbox: &Sandbox, args: &[&std::ffi::OsStr]) -> Value {
    let out = common::outboard_command()
        .arg("describe")
        .args(args)
        .env("OUTBOARD_RUNTIME_DIR", sandbox.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `describe --plugin` starts the plugin as configured (in a config file
/// or a plugin directory), so a plugin whose schema requires keys
/// (policy-gate's `deny`) can be described; `-- CMD` takes `--config-json`.
#[test]
fn describe_takes_a_configured_plugin_or_a_config() {
    let sandbox = Sandbox::new();
    let config = examples_config();
    let manifest = describe(
        &sandbox,
        &[
            "--plugin".as_ref(),
            "policy-gate".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    assert_eq!(manifest["name"], "policy-gate");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("gate")).unwrap();
    std::fs::write(
        dir.path().join("gate/plugin.toml"),
        format!(
            "command = {:?}\n[config]\ndeny = [\"^sudo\"]\n",
            bin("policy-gate")
        ),
    )
    .unwrap();
    let manifest = describe(
        &sandbox,
        &[
            "--plugin".as_ref(),
            "gate".as_ref(),
            "--plugin-dir".as_ref(),
            dir.path().as_os_str(),
        ],
    );
    assert_eq!(manifest["name"], "policy-gate");

    let exe = bin("policy-gate");
    let manifest = describe(
        &sandbox,
        &[
            "--config-json".as_ref(),
            r#"{"deny": ["^sudo"]}"#.as_ref(),
            "--".as_ref(),
            exe.as_os_str(),
        ],
    );
    assert_eq!(manifest["name"], "policy-gate");
    sandbox.assert_empty();
}

/// A plugin dropped to another user (a root host, `sandbox.user`) is
/// certified under the strict preset: every dial of the battery checks the
/// socket against the user the plugin runs as, not the host's.
#[test]
fn a_plugin_dropped_to_another_user_passes_under_the_strict_sandbox() {
    let _serial = one_at_a_time();
    if !strict_here() {
        return;
    }
    if !outboard_host::sandbox::offers().root {
        eprintln!("skipped: the host is not root, so it cannot drop a plugin to another user");
        return;
    }
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"injector\"\ncommand = {:?}\n\n[plugin.sandbox]\nuser = \"nobody\"\n",
            bin("env-injector"),
        ),
    )
    .unwrap();
    let args = [
        "--sandbox",
        "strict",
        "--plugin",
        "injector",
        "--config",
        config.to_str().unwrap(),
    ];
    let (code, checks, stderr) = conformance_args(&sandbox, &args);
    assert!(
        failed(&checks).is_empty(),
        "{:#?}\n{stderr}",
        failed(&checks)
    );
    assert_eq!(code, 0);
    assert_strict_walls("injector", &stderr);
    assert!(
        stderr.contains("sandbox: user = nobody (setuid to uid "),
        "{stderr}"
    );
}

// === The fast path's negative fixtures ===

/// The fast-path checks of `checks` that did not pass, by name.
fn fast_failures(checks: &[Value]) -> Vec<(&str, &str)> {
    failed(checks)
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .filter(|(name, _)| name.starts_with("fastpath "))
        .collect()
}

/// A plugin that lists the fast path but never binds its socket fails the
/// hello check, naming the socket; the other fast-path checks are blocked,
/// the gRPC checks pass. Not offered the fast path, it passes: the host
/// ignores a feature it did not offer.
#[test]
fn a_plugin_listing_the_fast_path_without_binding_it_fails_hello() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("broken-plugin");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap(), "fast-never-binds"]);
    assert_eq!(code, 1);
    assert_eq!(names(&checks), battery(&["invoke test"]));
    let hello = check(&checks, "fastpath hello");
    let detail = hello["detail"].as_str().unwrap();
    assert!(detail.contains("fast.sock"), "{hello}");
    let mut blocked: Vec<(&str, &str)> = FASTPATH[1..].iter().map(|n| (*n, "blocked")).collect();
    blocked.insert(0, ("fastpath hello", "failed"));
    assert_eq!(fast_failures(&checks), blocked, "{checks:#?}");
    assert_eq!(
        failed(&checks).len(),
        FASTPATH.len(),
        "only the fast path fails: {checks:#?}"
    );
    sandbox.assert_empty();

    let (code, checks, _) = conformance_with(
        &sandbox,
        FASTPATH_OFF,
        None,
        &[exe.to_str().unwrap(), "fast-never-binds"],
    );
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    assert!(
        check(&checks, "fastpath hello")["detail"]
            .as_str()
            .unwrap()
            .contains("the plugin lists invoke-fastpath/1, but without OUTBOARD_FASTPATH_SOCKET"),
        "{checks:#?}"
    );
    sandbox.assert_empty();
}

/// A plugin that answers the fast path's HELLO whatever the token fails
/// the hello check, which says what was sent and what came back.
#[test]
fn a_plugin_answering_any_token_on_the_fast_path_fails_hello() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("broken-plugin");
    let (code, checks) = conformance(&sandbox, &[exe.to_str().unwrap(), "fast-garbage"]);
    assert_eq!(code, 1);
    let hello = check(&checks, "fastpath hello");
    assert_eq!(hello["outcome"], "failed", "{hello}");
    let detail = hello["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "sent HELLO id 0 with a wrong token; expected ERROR id 0 code 16 UNAUTHENTICATED, \
             came back HELLO id 0 {token: \"\", version: 1}"
        ),
        "{detail}"
    );
    sandbox.assert_empty();
}

/// A plugin whose process dies on a malformed fast-path frame fails the
/// malformed-payload check, which names the frame sent and the exit; the
/// checks after it are blocked, and nothing is left running.
#[test]
fn a_plugin_crashing_on_a_malformed_frame_fails_that_check() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let exe = bin("broken-plugin");
    let (code, checks) = conformance(
        &sandbox,
        &[exe.to_str().unwrap(), "fast-crash-on-malformed"],
    );
    assert_eq!(code, 1);
    let malformed = check(&checks, "fastpath malformed payload");
    assert_eq!(malformed["outcome"], "failed", "{checks:#?}");
    let detail = malformed["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "sent HELLO, then INVOKE id 21 with the payload 0a 05 01 (a FastpathInvoke cut \
             short); expected ERROR id 21 code 3 InvalidArgument, but the plugin closed the \
             connection; the plugin exited ("
        ),
        "{detail}"
    );
    for name in [
        "fastpath hello",
        "fastpath framing",
        "fastpath multiplexing",
    ] {
        assert_eq!(check(&checks, name)["outcome"], "passed", "{checks:#?}");
    }
    for name in [
        "fastpath unknown kind",
        "fastpath over-size frame",
        "fastpath no crash",
    ] {
        let c = check(&checks, name);
        assert_eq!(c["outcome"], "blocked", "{c}");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .starts_with("skipped: the plugin exited ("),
            "{c}"
        );
    }
    sandbox.assert_empty();
    assert_eq!(processes_using(sandbox.path()), Vec::<u32>::new());
}

/// A plugin configured with `fastpath = false` is checked as configured,
/// on gRPC alone; `--fastpath on` offers it the fast path all the same.
#[test]
fn a_plugin_configured_without_the_fast_path_is_checked_on_grpc_unless_told() {
    let _serial = one_at_a_time();
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"injector\"\ncommand = {:?}\nfastpath = false\n",
            bin("env-injector"),
        ),
    )
    .unwrap();
    let file = config.to_str().unwrap();
    let (code, checks, _) = conformance_args(&sandbox, &["--plugin", "injector", "--config", file]);
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    assert_fast(&checks, Fast::Off, "injector");
    let (code, checks, _) = conformance_args(
        &sandbox,
        &["--fastpath", "on", "--plugin", "injector", "--config", file],
    );
    assert!(failed(&checks).is_empty(), "{:#?}", failed(&checks));
    assert_eq!(code, 0);
    assert_fast(&checks, Fast::Checked, "injector");
    std::fs::remove_file(&config).unwrap();
    sandbox.assert_empty();
}
