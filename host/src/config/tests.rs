//! Loading `outboard.toml` and plugin directories end to end: what a file
//! resolves to, and every rejection with its file, line and field.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

/// A temp dir with an executable `bin/plug` and a non-executable `data`.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir(dir.path().join("bin")).expect("mkdir");
    executable(&dir.path().join("bin/plug"));
    fs::write(dir.path().join("data"), "").expect("write");
    dir
}

fn executable(path: &Path) {
    fs::write(path, "#!/bin/sh\n").expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join(CONFIG_FILE_NAME);
    fs::write(&path, text).expect("write config");
    path
}

fn load_err(dir: &Path, text: &str) -> String {
    let path = write_config(dir, text);
    load(&path)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn good_config_round_trip() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        r#"
[[plugin]]
name = "zeta"
command = "bin/plug"
args = ["--flag", "x"]
env = { RUST_LOG = "debug", EMPTY = "" }
working_dir = "bin"
optional = true

[plugin.config]
prefix = "CI_"
retries = 3
ratio = 0.5
tags = ["a", "b"]
when = 1979-05-27T07:32:00Z
nested = { deep = true }

[[plugin]]
name = "alpha"
command = "./bin/../bin/plug"
"#,
    );
    let cfg = load(&path).expect("valid config");
    assert_eq!(cfg.defaults, Defaults::default());
    let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"], "sorted by name");
    let zeta = cfg.plugin("zeta").expect("zeta");
    let base = std::path::absolute(dir.path()).expect("absolute");
    assert_eq!(zeta.command, base.join("bin/plug"));
    assert!(zeta.command.is_absolute());
    assert_eq!(zeta.args, ["--flag", "x"]);
    assert_eq!(zeta.env["RUST_LOG"], "debug");
    assert_eq!(zeta.env["EMPTY"], "");
    assert_eq!(
        zeta.working_dir.as_deref(),
        Some(base.join("bin").as_path())
    );
    assert_eq!(zeta.source, path);
    assert_eq!(
        Value::Object(zeta.config.clone()),
        json!({
            "prefix": "CI_", "retries": 3, "ratio": 0.5, "tags": ["a", "b"],
            "when": "1979-05-27T07:32:00Z", "nested": {"deep": true}
        })
    );
    let alpha = cfg.plugin("alpha").expect("alpha");
    assert!(alpha.config.is_empty() && alpha.args.is_empty() && alpha.env.is_empty());
    assert_eq!(alpha.working_dir, None);
    assert_eq!(alpha.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    assert!(
        zeta.optional && !alpha.optional,
        "optional is false unless set"
    );
}

#[test]
fn phases_and_subscription_overrides() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        r#"
[phases.post_container]
mode = "parallel"
timeout = "750ms"
failure_policy = "fail_open"

[phases.submit]

[[plugin]]
name = "p"
command = "bin/plug"

[plugin.subscriptions.post_container]
priority = -5
failure_policy = "fail_closed"

[plugin.subscriptions.pre_container]
enabled = false
timeout = "1s"
"#,
    );
    let cfg = load(&path).expect("valid config");
    assert_eq!(
        cfg.phases["post_container"],
        PhaseSpec {
            mode: Mode::Parallel,
            timeout: Some(Duration::from_millis(750)),
            failure_policy: FailurePolicy::FailOpen,
        }
    );
    assert_eq!(cfg.phases["submit"], PhaseSpec::default());
    // A partial table keeps the job profile's defaults for what it omits.
    let path = write_config(dir.path(), "[phases.cleanup]\ntimeout = \"1s\"\n");
    let cleanup = load(&path).expect("valid").phases["cleanup"];
    assert_eq!(
        (cleanup.mode, cleanup.failure_policy, cleanup.timeout),
        (
            Mode::Parallel,
            FailurePolicy::FailOpen,
            Some(Duration::from_secs(1))
        )
    );
    let subs = &cfg.plugin("p").expect("p").subscriptions;
    assert_eq!(
        subs["post_container"],
        SubscriptionOverride {
            priority: Some(-5),
            timeout: None,
            failure_policy: Some(FailurePolicy::FailClosed),
            enabled: true,
            retry: None,
        }
    );
    assert!(!subs["pre_container"].enabled);
    assert_eq!(subs["pre_container"].timeout, Some(Duration::from_secs(1)));
}

#[test]
fn bad_phases_are_named() {
    let dir = fixture();
    let err = load_err(dir.path(), "[phases.post_container]\nmode = \"paralel\"\n");
    assert!(err.contains("paralel") && err.contains("parallel"), "{err}");
    let err = load_err(dir.path(), "[phases.\"Pre Container\"]\n");
    assert!(
        err.contains("phase \"Pre Container\"") && err.contains("not a valid phase name"),
        "{err}"
    );
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"p\"\ncommand = \"bin/plug\"\n[plugin.subscriptions.x]\ntimeout = \"0s\"\n",
    );
    assert!(
        err.contains("subscriptions.x.timeout") && err.contains("longer than zero"),
        "{err}"
    );
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"p\"\ncommand = \"bin/plug\"\n[plugin.subscriptions.x]\npriorty = 1\n",
    );
    assert!(err.contains("priorty"), "{err}");
}

#[test]
fn empty_file_is_an_empty_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = load(write_config(dir.path(), "")).expect("valid");
    assert_eq!(cfg, HostConfig::default());
}

#[test]
fn defaults_applied_and_overridden() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        r#"
[defaults]
handshake_timeout = "3s"
stop_grace = "0s"

[[plugin]]
name = "a"
command = "bin/plug"

[[plugin]]
name = "b"
command = "bin/plug"
handshake_timeout = "1m"
call_timeout = "500ms"
stop_grace = "1s 500ms"
"#,
    );
    let cfg = load(&path).expect("valid config");
    assert_eq!(
        cfg.defaults,
        Defaults {
            handshake_timeout: Duration::from_secs(3),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            stop_grace: Duration::ZERO,
            sandbox: SandboxSpec::default(),
        }
    );
    let a = cfg.plugin("a").expect("a");
    assert_eq!(
        (a.handshake_timeout, a.call_timeout, a.stop_grace),
        (
            Duration::from_secs(3),
            Duration::from_secs(2),
            Duration::ZERO
        )
    );
    let b = cfg.plugin("b").expect("b");
    assert_eq!(
        (b.handshake_timeout, b.call_timeout, b.stop_grace),
        (
            Duration::from_secs(60),
            Duration::from_millis(500),
            Duration::from_millis(1500)
        )
    );
}

#[test]
fn unknown_key_is_named() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncomand = \"bin/plug\"\n",
    );
    assert!(
        err.starts_with(&format!(
            "{}:3:1: ",
            dir.path().join(CONFIG_FILE_NAME).display()
        )),
        "{err}"
    );
    assert!(err.contains("comand"), "{err}");
    assert!(err.contains(":3:1: unknown field `comand`"), "{err}");

    let err = load_err(dir.path(), "[defaults]\ntimeout = \"1s\"\n");
    assert!(err.contains(":2:1: unknown field `timeout`"), "{err}");

    let err = load_err(dir.path(), "[[plugins]]\nname = \"a\"\n");
    assert!(err.contains("plugins"), "{err}");
}

#[test]
fn bad_duration() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\ncall_timeout = \"10 parsecs\"\n",
    );
    assert!(
        err.contains(":4: plugin \"a\": call_timeout \"10 parsecs\" is not a duration like \"10s\" or \"500ms\": unknown time unit \"parsecs\""),
        "{err}"
    );
    let err = load_err(dir.path(), "[defaults]\n\nhandshake_timeout = \"0s\"\n");
    assert!(
        err.ends_with(":3: defaults: handshake_timeout \"0s\" must be longer than zero"),
        "{err}"
    );
    let err = load_err(dir.path(), "[defaults]\ncall_timeout = 10\n");
    assert!(
        err.contains(":2:16: call_timeout: invalid type: integer `10`"),
        "{err}"
    );
    assert!(
        err.ends_with(
            "invalid type: integer `10`, expected a duration string like \"10s\" or \"500ms\""
        ),
        "{err}"
    );
}

#[test]
fn missing_name_or_command() {
    let dir = fixture();
    let err = load_err(dir.path(), "[[plugin]]\nname = \"a\"\nargs = []\n");
    assert!(
        err.ends_with(":2: plugin \"a\": command is missing (the plugin's executable, e.g. command = \"bin/my-plugin\")"),
        "{err}"
    );
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n[[plugin]]\ncommand = \"bin/plug\"\n",
    );
    assert!(err.contains(": plugin #2: name is missing"), "{err}");
}

#[test]
fn command_problems_name_file_line_and_resolution() {
    let dir = fixture();
    let base = std::path::absolute(dir.path()).expect("absolute");
    let path = dir.path().join(CONFIG_FILE_NAME).display().to_string();
    let cases = [
        (
            "../target/debug/env-injectr",
            format!(
                "does not exist (resolved to {})",
                base.join("../target/debug/env-injectr").display()
            ),
        ),
        (
            "./bin",
            format!(
                "is a directory, not an executable (resolved to {})",
                base.join("./bin").display()
            ),
        ),
        (
            "./data",
            format!(
                "is not executable (mode 644) (resolved to {})",
                base.join("./data").display()
            ),
        ),
        (
            "no-such-plugin-binary-here",
            "was not found on PATH (write ./NAME for a file next to the config)".into(),
        ),
        (
            "/nonexistent/plugin",
            "does not exist (resolved to /nonexistent/plugin)".into(),
        ),
    ];
    for (command, why) in cases {
        let err = load_err(
            dir.path(),
            &format!("[[plugin]]\nname = \"env-injector\"\ncommand = {command:?}\n"),
        );
        assert_eq!(
            err,
            format!("{path}:3: plugin \"env-injector\": command {command:?} {why}")
        );
    }
}

#[test]
fn command_relative_to_config_dir() {
    let dir = fixture();
    // Loaded through a relative path with `..`, from another directory:
    // what counts is the file's directory, not the current one.
    let sub = dir.path().join("conf");
    fs::create_dir(&sub).expect("mkdir");
    let path = write_config(
        &sub,
        "[[plugin]]\nname = \"a\"\ncommand = \"../bin/plug\"\n",
    );
    let cfg = load(&path).expect("valid");
    let command = &cfg.plugins[0].command;
    assert!(command.is_absolute(), "{}", command.display());
    assert_eq!(
        fs::canonicalize(command).expect("exists"),
        fs::canonicalize(dir.path().join("bin/plug")).expect("exists")
    );
}

#[test]
fn bare_command_is_looked_up_on_path() {
    let dir = fixture();
    let cfg = load(write_config(
        dir.path(),
        "[[plugin]]\nname = \"shell\"\ncommand = \"sh\"\n",
    ))
    .expect("sh is on PATH");
    let sh = &cfg.plugins[0].command;
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
    // A bare name never means a file next to the config.
    let err = load_err(dir.path(), "[[plugin]]\nname = \"a\"\ncommand = \"data\"\n");
    assert!(err.contains("was not found on PATH"), "{err}");
}

#[test]
fn duplicate_names_name_both_lines() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n\n[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n",
    );
    let path = dir.path().join(CONFIG_FILE_NAME).display().to_string();
    assert_eq!(
        err,
        format!("plugin \"a\" is defined twice: at {path}:2 and at {path}:6")
    );
}

#[test]
fn disabled_plugin_is_left_out() {
    let dir = fixture();
    // Disabled plugins are not resolved: a missing command is no error.
    let cfg = load(write_config(
        dir.path(),
        "[[plugin]]\nname = \"off\"\ncommand = \"./gone\"\nenabled = false\n\n[[plugin]]\nname = \"on\"\ncommand = \"bin/plug\"\nenabled = true\n",
    ))
    .expect("valid");
    let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["on"]);
}

#[test]
fn bad_names_env_and_working_dir() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"Env Injector\"\ncommand = \"bin/plug\"\n",
    );
    assert!(err.ends_with(":2: plugin \"Env Injector\": name \"Env Injector\" is not a valid plugin name (1 to 64 characters of a-z, 0-9, '_', '-', starting with a letter or digit)"), "{err}");
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n[plugin.env]\nOUTBOARD_TOKEN = \"x\"\n",
    );
    assert!(err.ends_with(":5: plugin \"a\": env.OUTBOARD_TOKEN is set by the host for the handshake and cannot be configured"), "{err}");
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nworking_dir = \"data\"\n",
    );
    assert!(
        err.contains(":4: plugin \"a\": working_dir \"data\" is not a directory (resolved to /"),
        "{err}"
    );
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nconfig = { ratio = nan }\n",
    );
    assert!(
        err.ends_with(":4: plugin \"a\": config.ratio NaN has no JSON form"),
        "{err}"
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(CONFIG_FILE_NAME);
    assert_eq!(
        load(&path).expect_err("missing").to_string(),
        format!("cannot read {}: No such file or directory", path.display())
    );
}

/// `root/{one,two}/plugin.toml`, `root/notes/` without one, and a file.
fn plugin_dir() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let one = root.path().join("one");
    let two = root.path().join("two");
    fs::create_dir_all(&one).expect("mkdir");
    fs::create_dir_all(&two).expect("mkdir");
    fs::create_dir_all(root.path().join("notes")).expect("mkdir");
    fs::write(root.path().join("README"), "not a plugin").expect("write");
    executable(&one.join("one-bin"));
    fs::write(
        one.join(PLUGIN_FILE_NAME),
        "command = \"one-bin\"\ncall_timeout = \"1s\"\n",
    )
    .expect("write");
    fs::write(
        two.join(PLUGIN_FILE_NAME),
        "name = \"second\"\ncommand = \"sh\"\nargs = [\"plugin.sh\"]\noptional = true\n[config]\nk = \"v\"\n",
    )
    .expect("write");
    root
}

#[test]
fn discover_plugin_folders() {
    let root = plugin_dir();
    let specs = discover(&[root.path().to_owned()]).expect("discovers");
    let names: Vec<&str> = specs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["one", "second"], "name defaults to the folder's");
    let base = std::path::absolute(root.path()).expect("absolute");
    let one = &specs[0];
    assert_eq!(
        one.command,
        base.join("one/one-bin"),
        "bare name found in the folder"
    );
    assert_eq!(one.call_timeout, Duration::from_secs(1));
    assert_eq!(one.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    assert_eq!(one.working_dir.as_deref(), Some(base.join("one").as_path()));
    assert_eq!(one.source, root.path().join("one").join(PLUGIN_FILE_NAME));
    let second = &specs[1];
    assert!(second.command.ends_with("sh") && second.command.is_absolute());
    assert_eq!(second.args, ["plugin.sh"]);
    assert_eq!(Value::Object(second.config.clone()), json!({"k": "v"}));
    assert!(second.optional && !one.optional);

    let defaults = Defaults {
        handshake_timeout: Duration::from_secs(1),
        ..Defaults::default()
    };
    let twice = [root.path().to_owned(), root.path().join("one/..")];
    let specs = discover_with(&twice, &defaults).expect("one directory, named twice");
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].handshake_timeout, Duration::from_secs(1));
}

#[test]
fn a_folder_a_package_installed_carries_its_manifest_digest() {
    let root = plugin_dir();
    let one = |root: &Path| {
        discover(&[root.to_owned()])
            .map(|specs| specs[0].package.clone())
            .map_err(|e| e.to_string())
    };
    assert_eq!(one(root.path()), Ok(None), "not installed from a package");
    let manifest = root.path().join("one").join(PACKAGE_MANIFEST_FILE);
    fs::write(&manifest, "version = \"1\"\n").expect("write");
    let first = one(root.path()).expect("discovers").expect("a digest");
    assert_eq!(first.len(), 64);
    fs::write(&manifest, "version = \"2\"\n").expect("write");
    let second = one(root.path()).expect("discovers").expect("a digest");
    assert_ne!(first, second, "another package, another digest");
    // One that cannot be read is an error naming it, not a package ignored.
    fs::remove_file(&manifest).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &manifest).expect("symlink");
    let err = one(root.path()).expect_err("a device");
    assert!(err.contains("one/outboard-package.toml"), "{err}");
}

#[test]
fn discover_rejects_duplicates_across_dirs_and_config() {
    let a = plugin_dir();
    let b = plugin_dir();
    let err = discover(&[a.path().to_owned(), b.path().to_owned()])
        .expect_err("\"one\" twice")
        .to_string();
    assert_eq!(
        err,
        format!(
            "plugin \"one\" is defined twice: at {} and at {}",
            a.path().join("one/plugin.toml").display(),
            b.path().join("one/plugin.toml").display()
        )
    );

    let dir = fixture();
    let path = write_config(
        dir.path(),
        "[[plugin]]\nname = \"second\"\ncommand = \"bin/plug\"\n",
    );
    let mut cfg = load(&path).expect("valid");
    let err = cfg
        .add_plugins(discover(&[a.path().to_owned()]).expect("discovers"))
        .expect_err("\"second\" twice")
        .to_string();
    assert_eq!(
        err,
        format!(
            "plugin \"second\" is defined twice: at {} and at {}",
            path.display(),
            a.path().join("two/plugin.toml").display()
        )
    );
}

#[test]
fn add_plugins_keeps_order() {
    let root = plugin_dir();
    let mut cfg = HostConfig::default();
    cfg.plugins.push(PluginSpec::new("zz", "/bin/sh"));
    cfg.add_plugins(discover(&[root.path().to_owned()]).expect("discovers"))
        .expect("no clash");
    let names: Vec<&str> = cfg.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["one", "second", "zz"]);
}

#[test]
fn discover_errors() {
    let root = plugin_dir();
    fs::write(
        root.path().join("one").join(PLUGIN_FILE_NAME),
        "comand = \"x\"\n",
    )
    .expect("write");
    let err = discover(&[root.path().to_owned()])
        .expect_err("typo")
        .to_string();
    assert!(
        err.starts_with(&root.path().join("one/plugin.toml").display().to_string()),
        "{err}"
    );
    assert!(err.contains("comand"), "{err}");

    let bad = root.path().join("Bad Name");
    fs::create_dir(&bad).expect("mkdir");
    fs::write(bad.join(PLUGIN_FILE_NAME), "command = \"sh\"\n").expect("write");
    fs::write(
        root.path().join("one").join(PLUGIN_FILE_NAME),
        "command = \"sh\"\n",
    )
    .expect("write");
    let err = discover(&[root.path().to_owned()])
        .expect_err("folder name")
        .to_string();
    assert!(err.contains("plugin \"Bad Name\": name defaults to the folder's name, but \"Bad Name\" is not a valid plugin name"), "{err}");

    let missing = root.path().join("missing");
    assert_eq!(
        discover(std::slice::from_ref(&missing))
            .expect_err("missing")
            .to_string(),
        format!(
            "cannot read plugin directory {}: No such file or directory",
            missing.display()
        )
    );
}

mod hardening;
mod sandbox;
mod secrets;
mod services;

#[test]
fn the_daemon_section_is_read_and_its_errors_name_the_field() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        "[daemon]\ncontrol_group = \"ops\"\ndrain_timeout = \"5s\"\n",
    );
    let cfg = load(&path).expect("valid");
    assert_eq!(
        cfg.daemon,
        DaemonSpec {
            control_group: Some("ops".into()),
            drain_timeout: Duration::from_secs(5),
        }
    );
    let cfg = load(write_config(dir.path(), "")).expect("valid");
    assert_eq!(cfg.daemon.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    let err = load_err(dir.path(), "[daemon]\ndrain_timeout = \"2h\"\n");
    assert!(err.contains("daemon"), "{err}");
    assert!(err.contains("drain_timeout"), "{err}");
    assert!(err.contains(":2"), "{err}");
    let err = load_err(dir.path(), "[daemon]\ncontrol_grop = \"ops\"\n");
    assert!(err.contains("control_grop"), "{err}");
}

#[test]
fn the_http_section_gives_the_listen_address_and_a_bad_one_names_its_line() {
    let dir = fixture();
    let cfg = load(write_config(dir.path(), "")).expect("valid");
    assert_eq!(cfg.http.listen, None);
    let path = write_config(dir.path(), "[http]\nlisten = \"127.0.0.1:0\"\n");
    let cfg = load(&path).expect("valid");
    assert_eq!(cfg.http.listen, Some("127.0.0.1:0".parse().expect("addr")));
    let cfg = load(write_config(
        dir.path(),
        "[http]\nlisten = \"[::1]:9464\"\n",
    ))
    .expect("v6");
    assert_eq!(cfg.http.listen, Some("[::1]:9464".parse().expect("addr")));
    let err = load_err(dir.path(), "[http]\nlisten = \"localhost\"\n");
    assert!(err.contains("http"), "{err}");
    assert!(err.contains("listen"), "{err}");
    assert!(err.contains(":2"), "{err}");
    assert!(err.contains("127.0.0.1:9464"), "{err}");
    let err = load_err(dir.path(), "[http]\nlisen = \"127.0.0.1:1\"\n");
    assert!(err.contains("lisen"), "{err}");
}

#[test]
fn the_events_section_has_defaults_and_bounds() {
    let path = std::path::Path::new("/etc/outboard/outboard.toml");
    let config = HostConfig::parse("", path).expect("an empty file");
    assert_eq!(config.events, crate::EventsSpec::default());
    assert_eq!(config.events.max_attempts, 5);
    let text = "[events]\nmax_attempts = 2\nbackoff_initial = \"10ms\"\nbackoff_max = \"40ms\"\n";
    let config = HostConfig::parse(text, path).expect("valid events");
    assert_eq!(config.events.max_attempts, 2);
    assert_eq!(config.events.backoff_max, Duration::from_millis(40));
    let err = HostConfig::parse("[events]\nmax_attempts = 0\n", path)
        .expect_err("zero attempts")
        .to_string();
    assert!(
        err.contains("events") && err.contains("max_attempts") && err.contains(":2"),
        "{err}"
    );
    let err = HostConfig::parse(
        "[events]\nbackoff_initial = \"2s\"\nbackoff_max = \"1s\"\n",
        path,
    )
    .expect_err("max below initial")
    .to_string();
    assert!(
        err.contains("backoff_max") && err.contains("shorter"),
        "{err}"
    );
    // An unset backoff_max follows a longer backoff_initial.
    let config = HostConfig::parse("[events]\nbackoff_initial = \"10m\"\n", path)
        .expect("a long initial wait alone");
    assert_eq!(config.events.backoff_initial, Duration::from_secs(600));
    assert_eq!(config.events.backoff_max, Duration::from_secs(600));
    let err = HostConfig::parse("[events]\nretries = 3\n", path)
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("retries"), "{err}");
}

#[test]
fn the_fast_path_is_offered_unless_a_plugin_turns_it_off() {
    let dir = fixture();
    let path = write_config(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n\n[[plugin]]\nname = \"b\"\ncommand = \"bin/plug\"\nfastpath = false\n",
    );
    let config = load(&path).expect("valid");
    let fastpath: Vec<bool> = config.plugins.iter().map(|p| p.fastpath).collect();
    assert_eq!(fastpath, [true, false]);
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nfastpath = \"no\"\n",
    );
    assert!(
        err.contains(":4:12: fastpath: invalid type: string \"no\", expected a boolean"),
        "{err}"
    );
    let err = load_err(
        dir.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nenv = { OUTBOARD_FASTPATH_SOCKET = \"/tmp/x\" }\n",
    );
    assert!(
        err.contains("env.OUTBOARD_FASTPATH_SOCKET is set by the host"),
        "{err}"
    );
}
