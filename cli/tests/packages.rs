//! `outboard keygen`, `package --sign`, `install`, `plugins`, `uninstall`
//! end to end: the real binary, real files, the env-injector example
//! started as a subprocess, and the signature checked by the `minisign`
//! tool itself (installed by scripts/tools).

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{alive, ok, outboard, outboard_command, sigterm, text, wait_until};
use serde_json::Value;

/// A plugin folder whose `run` script execs the env-injector example.
fn plugin_source(dir: &Path) {
    let exe = common::bin("env-injector");
    plugin_script(dir, &format!("exec '{}' \"$@\"", exe.display()));
}

/// A plugin folder whose `run` script is `body`.
fn plugin_script(dir: &Path, body: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("plugin.toml"), "command = \"./run\"\n").unwrap();
    fs::write(dir.join("run"), format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_signed_package_verifies_with_minisign_installs_lists_and_uninstalls() {
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p).display().to_string();
    let key = path("signer.key");
    let keygen = ok(&["keygen", "-o", &key]);
    let again = outboard(&["keygen", "-o", &key]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("never overwrites"),
        "{}",
        text(&again.stderr)
    );

    plugin_source(&work.path().join("src/env-injector"));
    let package = path("env-injector.tar.gz");
    let packed = ok(&[
        "package",
        &path("src/env-injector"),
        "-o",
        &package,
        "--sign",
        &key,
    ]);
    assert!(packed.contains("env-injector"), "{packed}");

    // The minisign tool verifies the manifest's signature as outboard made it.
    let unpacked = work.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let tar = Command::new("tar")
        .args(["-xzf", &package, "-C"])
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let minisign = Command::new("minisign")
        .args(["-V", "-p", &format!("{key}.pub"), "-m"])
        .arg(unpacked.join("outboard-package.toml"))
        .output()
        .expect("the minisign tool (scripts/tools installs it)");
    assert!(
        minisign.status.success(),
        "minisign: {}",
        text(&minisign.stderr)
    );
    assert!(text(&minisign.stdout).contains("outboard package env-injector"));

    // [trust] in outboard.toml, relative to the file; the host reads the
    // same file without complaint.
    fs::write(
        work.path().join("outboard.toml"),
        "[trust]\nkeys = [\"signer.key.pub\"]\n",
    )
    .unwrap();
    fs::create_dir(work.path().join("plugins")).unwrap();
    let plugins = path("plugins");
    let config = path("outboard.toml");
    let unsigned_refused = outboard(&["install", &package, "--plugin-dir", &plugins]);
    assert!(!unsigned_refused.status.success());
    assert!(text(&unsigned_refused.stderr).contains("not trusted"));
    ok(&["install", &package, "--plugin-dir", &plugins, "-c", &config]);

    let id = keygen
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("key id ")
        .to_owned();
    let listed: Value =
        serde_json::from_str(&ok(&["plugins", "--plugin-dir", &plugins, "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "env-injector");
    assert_eq!(listed[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(listed[0]["signer"], id.as_str());
    assert_eq!(listed[0]["path"], format!("{plugins}/env-injector"));
    let table = ok(&["plugins", "--plugin-dir", &plugins]);
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("NAME") && rows[0].contains("SIGNER"),
        "{table}"
    );
    assert!(
        rows[1].starts_with("env-injector") && rows[1].contains(&id),
        "{table}"
    );
    let ls: Value = serde_json::from_str(&ok(&[
        "ls",
        "-c",
        &config,
        "--plugin-dir",
        &plugins,
        "--json",
    ]))
    .unwrap();
    assert_eq!(ls[0]["name"], "env-injector");

    ok(&["uninstall", "env-injector", "--plugin-dir", &plugins]);
    assert_eq!(
        ok(&["plugins", "--plugin-dir", &plugins]),
        format!("no package is installed in {plugins}\n")
    );
    assert_eq!(ok(&["plugins", "--plugin-dir", &plugins, "--json"]), "[]\n");
    assert_eq!(fs::read_dir(&plugins).unwrap().count(), 0);
}

#[test]
fn an_install_interrupted_while_the_plugin_starts_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p).display().to_string();
    let package = path("p.tar.gz");
    // Install starts the plugin as nobody: where nobody may write.
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    let pid_file = out.join("plugin.pid");
    // A plugin that records its pid and never shakes hands, packed
    // unsigned through the library (the point is the interruption).
    plugin_script(
        &work.path().join("src/hang"),
        &format!("echo $$ > '{}'\nexec /bin/sleep 60", pid_file.display()),
    );
    let meta = outboard_packages::PackageMeta {
        name: "env-injector".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    outboard_packages::pack(
        &work.path().join("src/hang"),
        &meta,
        None,
        Path::new(&package),
    )
    .unwrap();
    let plugins = work.path().join("plugins");
    fs::create_dir(&plugins).unwrap();
    let mut child = outboard_command()
        .args(["install", &package, "--allow-unsigned", "--plugin-dir"])
        .arg(&plugins)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || fs::read_to_string(&pid_file)
            .is_ok_and(|p| p.ends_with('\n'))),
        "the plugin never started"
    );
    let plugin_pid: u32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The start has its cgroups (named after the install's pid) while it runs.
    let offers = outboard_host::sandbox::offers();
    let during = outboard_host::sandbox::cgroups_of("env-injector", child.id(), offers);
    let cgroups_here =
        offers.root && (offers.cgroup_v1("pids").is_some() || offers.cgroup_v2_usable());
    assert!(
        !cgroups_here || !during.is_empty(),
        "the plugin's start got no cgroup"
    );
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        wait_until(Duration::from_secs(10), || !alive(plugin_pid)),
        "the plugin outlived the install"
    );
    assert_eq!(
        fs::read_dir(&plugins).unwrap().count(),
        0,
        "staging left behind"
    );
    // Nor the cgroups the start was given.
    let left: Vec<_> = during.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
fn without_the_right_to_make_a_network_namespace_install_refuses_and_package_works() {
    // The commands run as nobody, who may not create a network namespace;
    // everything they touch is nobody's.
    let work = tempfile::Builder::new()
        .prefix("obpk-")
        .tempdir_in("/tmp")
        .unwrap();
    let nobody = |p: &Path| std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    nobody(work.path());
    let source = work.path().join("src");
    plugin_source(&source);
    for file in [
        source.as_path(),
        &source.join("plugin.toml"),
        &source.join("run"),
    ] {
        nobody(file);
    }
    let plugins = work.path().join("plugins");
    fs::create_dir(&plugins).unwrap();
    nobody(&plugins);
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_outboard"))
            .args(args)
            .env("OUTBOARD_RUNTIME_DIR", "/tmp")
            .env("OUTBOARD_STATE_DIR", work.path().join("state"))
            .env_remove("OUTBOARD_PLUGIN_DIR")
            .current_dir(work.path())
            .output()
            .expect("setpriv")
    };
    let package = work.path().join("p.tar.gz").display().to_string();
    let packed = as_nobody(&["package", &source.display().to_string(), "-o", &package]);
    assert!(packed.status.success(), "{}", text(&packed.stderr));

    let refused = as_nobody(&[
        "install",
        &package,
        "--allow-unsigned",
        "--plugin-dir",
        &plugins.display().to_string(),
    ]);
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(
        said.contains("may not create a network namespace"),
        "{said}"
    );
    assert_eq!(fs::read_dir(&plugins).unwrap().count(), 0, "{said}");
    // As root, the same package installs.
    ok(&[
        "install",
        &package,
        "--allow-unsigned",
        "--plugin-dir",
        &plugins.display().to_string(),
    ]);
}

#[test]
fn an_install_under_a_strict_umask_still_opens_the_plugin_folder() {
    let work = tempfile::tempdir().unwrap();
    plugin_source(&work.path().join("src"));
    let package = work.path().join("p.tar.gz");
    ok(&[
        "package",
        &work.path().join("src").display().to_string(),
        "-o",
        &package.display().to_string(),
    ]);
    let plugins = work.path().join("plugins");
    fs::create_dir(&plugins).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 077 && exec "$0" install "$1" --allow-unsigned --plugin-dir "$2""#)
        .arg(env!("CARGO_BIN_EXE_outboard"))
        .arg(&package)
        .arg(&plugins)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let folder = plugins.join("env-injector");
    assert_eq!(mode(&folder), 0o755, "the folder");
    assert_eq!(mode(&folder.join("run")), 0o755, "the executable");
    assert_eq!(mode(&folder.join("plugin.toml")), 0o644, "plugin.toml");
}

#[test]
fn install_prints_what_plugin_toml_asks_and_refuses_operator_keys_unless_accepted() {
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p).display().to_string();
    let source = work.path().join("src/env-injector");
    plugin_source(&source);
    fs::write(
        source.join("plugin.toml"),
        "command = \"./run\"\ngrant = [\"secret:*\"]\n\n[sandbox]\nmemory = \"256Mi\"\nuser = \"root\"\n",
    )
    .unwrap();
    let package = path("env-injector.tar.gz");
    ok(&["package", &path("src/env-injector"), "-o", &package]);
    fs::create_dir(work.path().join("plugins")).unwrap();
    let plugins = path("plugins");
    let install = |more: &[&str]| {
        let mut args = vec![
            "install",
            &package,
            "--allow-unsigned",
            "--plugin-dir",
            &plugins,
        ];
        args.extend_from_slice(more);
        outboard(&args)
    };
    let refused = install(&[]);
    assert!(!refused.status.success());
    let error = text(&refused.stderr);
    assert!(
        error.contains(
            "env-injector/plugin.toml: the package sets what only the operator should set: \
             line 2: grant = [\"secret:*\"] (operator-only: grants it what its Describe asks for"
        ) && error.contains("line 6: sandbox.user = \"root\" (operator-only:")
            && error.contains("--accept-config"),
        "{error}"
    );
    assert_eq!(fs::read_dir(&plugins).unwrap().count(), 0);
    let accepted = install(&["--accept-config"]);
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    let out = text(&accepted.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..],
        [
            format!("{plugins}/env-injector/plugin.toml sets:").as_str(),
            "  line 1: command = \"./run\"",
            "  line 2: grant = [\"secret:*\"] (operator-only: grants it what its Describe asks for (secrets, kv, network))",
            "  line 5: sandbox.memory = \"256Mi\"",
            "  line 6: sandbox.user = \"root\" (operator-only: runs it as that user, any account on this machine, root included)",
        ],
        "{out}"
    );
}
