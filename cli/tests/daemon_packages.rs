//! Packages and a running daemon, end to end: a real `outboard up` over a
//! plugin directory, real `outboard install`, `uninstall` and `reload`
//! processes. An install changes nothing in the daemon until a reload;
//! the reload replaces the plugin blue/green even though its
//! `plugin.toml` is the same (only the package's files differ); the old
//! process is gone after the swap; an uninstall and a reload remove it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{alive, ok, text, wait_until};
use daemon::{Client, Daemon, scripted};
use outboard_proto::control::v1::{EntryOutcome, PluginState, verdict};

/// The phase the packaged plugin subscribes to.
const PHASE: &str = "work";

/// The plugin's `plugin.toml`, the same in every version: it answers
/// `work` by setting `/answer` to the version its manifest gives.
const PLUGIN_TOML: &str = "name = \"greeter\"\ncommand = \"./run\"\n\
    [config.work]\nversion_at = \"/answer\"\n";

/// Writes the source folder of `greeter` `version` under `work` and packs
/// it, signed with `key`, as `greeter-VERSION.tar.gz`; its path. The
/// versions differ only in their `run` script, which gives the scripted
/// fixture its version and subscription.
fn package(work: &Path, version: &str, key: &Path) -> String {
    let source = work.join(format!("src-{version}"));
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("plugin.toml"), PLUGIN_TOML).unwrap();
    fs::write(
        source.join("run"),
        format!(
            "#!/bin/sh\nexport SCRIPTED_VERSION={version} SCRIPTED_SUBSCRIBE={PHASE}:10\n\
             exec '{}'\n",
            scripted()
        ),
    )
    .unwrap();
    fs::set_permissions(source.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = work.join(format!("greeter-{version}.tar.gz"));
    ok(&[
        "package",
        &source.display().to_string(),
        "-o",
        &out.display().to_string(),
        "--sign",
        &key.display().to_string(),
    ]);
    out.display().to_string()
}

/// Invokes `work` and returns the version the one plugin answered with.
async fn answer(client: &mut Client) -> String {
    let report = daemon::invoke(client, PHASE).await;
    assert!(
        matches!(
            report.verdict.as_ref().and_then(|v| v.result.as_ref()),
            Some(verdict::Result::Passed(_))
        ),
        "{report:?}"
    );
    let [entry] = report.entries.as_slice() else {
        panic!("not one entry: {report:?}");
    };
    assert_eq!(entry.plugin, "greeter");
    assert_eq!(entry.outcome(), EntryOutcome::Ok, "{report:?}");
    let [op] = entry.patch.as_slice() else {
        panic!("not one operation: {report:?}");
    };
    assert_eq!(op.path, "/answer");
    match op.value.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

/// The greeter's version and pid, once it is ready.
async fn running(daemon: &Daemon) -> (String, u32) {
    daemon.wait_all_ready().await;
    let status = daemon.status().await;
    let [greeter] = status.plugins.as_slice() else {
        panic!("not one plugin: {status:?}");
    };
    assert_eq!(greeter.name, "greeter");
    assert_eq!(greeter.state(), PluginState::Ready);
    (greeter.version.clone(), greeter.pid)
}

#[tokio::test]
async fn a_running_daemon_takes_an_install_on_reload_blue_green() {
    let daemon = Daemon::start_with(|work| {
        let key = work.join("signer.key");
        ok(&["keygen", "-o", &key.display().to_string()]);
        let plugins = work.join("plugins");
        fs::create_dir(&plugins).unwrap();
        let config = "[trust]\nkeys = [\"signer.key.pub\"]\n".to_owned();
        fs::write(work.join("outboard.toml"), &config).unwrap();
        let v1 = package(work, "1.0.0", &key);
        package(work, "2.0.0", &key);
        ok(&[
            "install",
            &v1,
            "--plugin-dir",
            &plugins.display().to_string(),
            "-c",
            &work.join("outboard.toml").display().to_string(),
        ]);
        (
            config,
            vec!["--plugin-dir".to_owned(), plugins.display().to_string()],
        )
    });
    let work = daemon.work().to_owned();
    let plugins = work.join("plugins").display().to_string();
    let config = daemon.config_path().display().to_string();
    let mut client = daemon.client().await;
    let (version, first) = running(&daemon).await;
    assert_eq!(version, "1.0.0");
    assert_eq!(answer(&mut client).await, "1.0.0");

    // The new version is installed: the daemon goes on with the old one.
    let v2 = work.join("greeter-2.0.0.tar.gz").display().to_string();
    let installed = ok(&["install", &v2, "--plugin-dir", &plugins, "-c", &config]);
    assert!(installed.contains("replacing 1.0.0"), "{installed}");
    assert_eq!(answer(&mut client).await, "1.0.0");
    assert_eq!(running(&daemon).await, ("1.0.0".to_owned(), first));

    // The reload sees another package in the folder and swaps blue/green.
    let out = daemon.cli(&["reload"]);
    assert!(out.status.success(), "reload: {}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("greeter (package)"), "{said}");
    let (version, second) = running(&daemon).await;
    assert_eq!(version, "2.0.0");
    assert_ne!(second, first);
    assert_eq!(answer(&mut client).await, "2.0.0");
    assert!(
        wait_until(Duration::from_secs(10), || !alive(first)),
        "the old version's process {first} outlived the swap"
    );
    daemon.expect_children([second]);

    // A reload with nothing new installed changes nothing.
    let out = daemon.cli(&["reload"]);
    assert!(out.status.success(), "reload: {}", text(&out.stderr));
    assert_eq!(running(&daemon).await, ("2.0.0".to_owned(), second));

    // Uninstalled, then reloaded: the plugin is removed.
    ok(&["uninstall", "greeter", "--plugin-dir", &plugins]);
    let out = daemon.cli(&["reload"]);
    assert!(out.status.success(), "reload: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed"),
        "{}",
        text(&out.stdout)
    );
    assert!(daemon.status().await.plugins.is_empty());
    assert!(
        wait_until(Duration::from_secs(10), || !alive(second)),
        "the uninstalled plugin's process {second} still runs"
    );
    daemon.stop();
}
