//! systemd notifications end to end: a real `outboard up` with
//! `NOTIFY_SOCKET` naming a datagram socket the test holds, as systemd's
//! would be. Each notification is waited for (a receive with a deadline):
//! `READY=1` once served, `RELOADING=1` then `READY=1` around a reload
//! (SIGHUP and the control API's alike), `STOPPING=1` on SIGTERM, in that
//! order; watchdog pings; an abstract-namespace socket; a socket nobody
//! listens on (logged once, harmless); plugins never see the variables.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use daemon::{Daemon, scripted, write_script};

/// How long any one notification may take to come.
const WAIT: Duration = Duration::from_secs(30);

/// A config of one plugin run by `command`.
fn config(command: &str) -> String {
    format!(
        r#"
[[plugin]]
name = "one"
command = "{command}"
env = {{ SCRIPTED_SUBSCRIBE = "work:10" }}
"#
    )
}

/// A manager's socket bound in a temporary directory.
fn manager() -> (tempfile::TempDir, UnixDatagram) {
    let dir = tempfile::Builder::new()
        .prefix("obn-")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = UnixDatagram::bind(dir.path().join("notify")).unwrap();
    (dir, socket)
}

/// The next datagram, within [`WAIT`].
fn next(socket: &UnixDatagram) -> String {
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The next datagram that is not a watchdog ping.
fn next_state(socket: &UnixDatagram) -> String {
    loop {
        let message = next(socket);
        if message != "WATCHDOG=1\n" {
            return message;
        }
    }
}

/// The value of `key` in `message`.
fn field<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// Asserts `message` starts with `first` (such as `READY=1`).
fn expect(message: &str, first: &str) {
    assert_eq!(
        message.lines().next(),
        Some(first),
        "expected {first}, got {message:?}"
    );
}

/// A daemon of one scripted plugin with `env` set.
fn start(env: &[(&str, &str)]) -> Daemon {
    Daemon::start_with_env(&config(&scripted()), env)
}

/// `path` as an environment value (test paths are UTF-8).
fn value(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn ready_reloading_ready_stopping_in_order() {
    let (dir, socket) = manager();
    let path = dir.path().join("notify");
    let mut daemon = start(&[("NOTIFY_SOCKET", value(&path))]);

    let ready = next(&socket);
    expect(&ready, "READY=1");
    assert_eq!(
        field(&ready, "MAINPID"),
        Some(daemon.pid().to_string().as_str())
    );
    assert_eq!(
        field(&ready, "STATUS"),
        Some("ready: 1 plugin under supervision")
    );

    // SIGHUP: RELOADING=1 with the clock, then READY=1 once it ended.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    let reloading = next(&socket);
    expect(&reloading, "RELOADING=1");
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .expect("MONOTONIC_USEC")
        .parse()
        .unwrap();
    assert!(usec > 0);
    let reloaded = next(&socket);
    expect(&reloaded, "READY=1");
    assert!(
        field(&reloaded, "STATUS").is_some_and(|s| s.starts_with("ready: reload applied")),
        "{reloaded:?}"
    );
    daemon.stderr().expect("outboard: reload applied", WAIT);

    // The control API's Reload, failing on a broken config: bracketed
    // all the same, and the status says it failed.
    daemon.write_config("[[plugin]]\nname = \n");
    let out = daemon.cli(&["reload"]);
    assert!(!out.status.success(), "a broken config reloaded");
    expect(&next(&socket), "RELOADING=1");
    let failed = next(&socket);
    expect(&failed, "READY=1");
    assert!(
        field(&failed, "STATUS").is_some_and(|s| s.starts_with("ready: reload failed")),
        "{failed:?}"
    );

    // A dry run changes nothing and says nothing to the manager.
    let _ = daemon.cli(&["reload", "--dry-run"]);

    daemon.stop();
    let stopping = next(&socket);
    expect(&stopping, "STOPPING=1");
    // Nothing else was sent: no READY=1 after STOPPING=1, no notification
    // for the dry run.
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        socket.recv(&mut buf).is_err(),
        "more after STOPPING=1: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[test]
fn watchdog_pings_come_every_half_timeout() {
    let (dir, socket) = manager();
    let path = dir.path().join("notify");
    let daemon = start(&[("NOTIFY_SOCKET", value(&path)), ("WATCHDOG_USEC", "200000")]);
    expect(&next(&socket), "READY=1");
    for _ in 0..2 {
        assert_eq!(next(&socket), "WATCHDOG=1\n");
    }
    daemon.stop();
    expect(&next_state(&socket), "STOPPING=1");
}

#[test]
fn an_abstract_socket_is_notified() {
    let name = format!("outboard-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let notify_socket = format!("@{name}");
    let daemon = start(&[("NOTIFY_SOCKET", notify_socket.as_str())]);
    expect(&next(&socket), "READY=1");
    daemon.stop();
    expect(&next(&socket), "STOPPING=1");
}

#[test]
fn a_manager_that_does_not_listen_is_logged_once_and_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nobody");
    let mut daemon = start(&[("NOTIFY_SOCKET", value(&gone))]);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    daemon.stderr().expect("outboard: reload applied", WAIT);
    let stderr = daemon.stop();
    let complaints = stderr
        .lines()
        .filter(|l| l.contains("systemd notification failed"))
        .count();
    assert_eq!(complaints, 1, "stderr:\n{stderr}");
}

#[test]
fn plugins_do_not_inherit_the_notification_variables() {
    let (dir, socket) = manager();
    let path = dir.path().join("notify");
    let env_file = dir.path().join("plugin.env");
    let daemon = Daemon::launch(
        |work| {
            let body = format!(
                "env > '{}'\nexec '{}' \"$@\"",
                env_file.display(),
                scripted()
            );
            let command = write_script(work, "plugin", &body);
            (config(&command.display().to_string()), Vec::new())
        },
        &[
            ("NOTIFY_SOCKET", value(&path)),
            ("WATCHDOG_USEC", "10000000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    expect(&next(&socket), "READY=1");
    let env = std::fs::read_to_string(&env_file).unwrap();
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "the plugin got {var}:\n{env}"
        );
    }
    daemon.stop();
}

/// The shipped unit asks systemd for what these tests check the daemon
/// does (notify, watchdog, SIGHUP reload, SIGTERM stop), and its
/// `ExecStart` is a command line `outboard up` accepts: run with a config
/// that is missing, the daemon names that file rather than its arguments.
#[test]
fn the_shipped_unit_asks_for_what_the_daemon_does_and_its_command_line_parses() {
    let unit_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/outboard.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{} sets no {key}", unit_path.display()))
    };
    assert_eq!(setting("Type"), "notify");
    assert_eq!(setting("NotifyAccess"), "main");
    assert_eq!(setting("KillSignal"), "SIGTERM");
    assert!(setting("ExecReload").contains("-HUP $MAINPID"), "{unit}");
    assert!(!setting("WatchdogSec").is_empty());

    let mut words = setting("ExecStart").split_whitespace();
    assert!(words.next().unwrap().ends_with("/outboard"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("outboard.toml");
    let args: Vec<&str> = words
        .map(|w| {
            if w.ends_with(".toml") {
                value(&missing)
            } else {
                w
            }
        })
        .collect();
    assert!(
        args.contains(&value(&missing)),
        "ExecStart names no config: {unit}"
    );
    let out = common::outboard(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read {}", missing.display())),
        "{stderr}"
    );
}
