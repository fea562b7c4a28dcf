//! Events with a real daemon and real subscriber plugins (`scripted-plugin`
//! with `SCRIPTED_EVENTS`, which logs each delivery to a file): an event
//! acknowledged right before a SIGKILL of the daemon is delivered after the
//! restart; a subscriber that crashes on every delivery ends in the
//! dead-letter list after the configured attempts while another receives
//! the same events, and `outboard events --retry` redelivers; `outboard
//! emit` reaches a subscriber through the daemon and, without one, through
//! the outbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{bin, text, wait_until};
use daemon::Daemon;
use serde_json::{Value, json};

/// How long a delivery may take to show up.
const DELIVERY: Duration = Duration::from_secs(30);

/// A `[[plugin]]` table for a scripted subscriber to `patterns`, its events
/// script `events` (a JSON object of strings and booleans), every
/// permission it asks for granted.
fn subscriber(name: &str, patterns: &str, events: &Value) -> String {
    let script: String = events
        .as_object()
        .expect("a script object")
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    format!(
        "[[plugin]]\nname = {name:?}\ncommand = {:?}\ngrant = [\"*\"]\ncall_timeout = \"5s\"\n\
         stop_grace = \"1s\"\nenv = {{ SCRIPTED_EVENTS = {patterns:?} }}\n\
         backoff_initial = \"10ms\"\nbackoff_max = \"10ms\"\ncrash_loop_starts = 100\n\
         [plugin.config.events]\n{script}\n",
        bin("scripted-plugin").display().to_string()
    )
}

/// Small backoff and `attempts` attempts per delivery.
fn events_section(attempts: u32) -> String {
    format!(
        "[events]\nmax_attempts = {attempts}\nbackoff_initial = \"10ms\"\nbackoff_max = \"50ms\"\n"
    )
}

/// The deliveries logged in `log` so far (a last line still being written
/// is not one yet).
fn deliveries(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until `log` has a delivery for which `wanted` holds; all of them.
fn wait_for_delivery(log: &Path, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let found = wait_until(DELIVERY, || deliveries(log).iter().any(&wanted));
    let all = deliveries(log);
    assert!(found, "no such delivery in {}: {all:?}", log.display());
    all
}

/// `outboard emit NAME --data DATA` to `daemon`: the event's id.
fn emit(daemon: &Daemon, name: &str, data: &Value) -> String {
    // Without a state directory: `emit` given one writes into it directly
    // instead of asking the daemon.
    let out = daemon
        .cli_command(&["emit", name, "--data", &data.to_string()])
        .env_remove("OUTBOARD_STATE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "emit: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// The daemon's dead letters, as `outboard events --dead --json` lists them.
fn dead_letters(daemon: &Daemon) -> Vec<Value> {
    let out = daemon.cli(&["events", "--dead", "--json"]);
    assert!(out.status.success(), "events --dead: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A work directory for a test's files, and the state directory in it.
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("obe-")
        .tempdir_in("/tmp")
        .unwrap();
    let state = dir.path().join("state");
    (dir, state)
}

/// Starts a daemon on `config`, emits `deploy.done`, waits until its
/// delivery has begun and is held by the subscriber (`hold_while` = `hold`),
/// then SIGKILLs the daemon and lets go of the hold: the event's id.
fn emit_held_then_kill(config: &Path, args: &[String], log: &Path, hold: &Path) -> String {
    let first = Daemon::start_on_file(config, args);
    let id = emit(&first, "deploy.done", &json!({"env": "prod"}));
    // Acknowledged; its delivery has begun and is held by the subscriber,
    // so it cannot complete before the kill.
    wait_for_delivery(log, |d| d["id"] == json!(id));
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first.pid() as libc::pid_t, libc::SIGKILL) };
    drop(first);
    std::fs::remove_file(hold).unwrap();
    id
}

#[test]
fn an_event_acknowledged_before_a_sigkill_is_delivered_after_the_restart() {
    let (dir, state) = workdir();
    let log = dir.path().join("events.jsonl");
    let hold = dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let script = json!({"log": log, "hold_while": hold});
    let config = dir.path().join("outboard.toml");
    std::fs::write(&config, subscriber("sub", "deploy.*", &script)).unwrap();
    let args = vec!["--state-dir".to_owned(), state.display().to_string()];

    let id = emit_held_then_kill(&config, &args, &log, &hold);

    let second = Daemon::start_on_file(&config, &args);
    let all = wait_for_delivery(&log, |d| d["id"] == json!(id) && d["attempt"] == json!(2));
    let ours: Vec<&Value> = all.iter().filter(|d| d["id"] == json!(id)).collect();
    assert_eq!(ours[0]["attempt"], json!(1), "{all:?}");
    assert_eq!(ours[0]["name"], json!("deploy.done"));
    assert_eq!(ours[0]["source"], json!("operator"));
    assert_eq!(ours[0]["payload"], json!({"env": "prod"}));
    assert!(dead_letters(&second).is_empty());
    second.stop();
}

#[test]
fn a_crashing_subscriber_ends_in_the_dead_letters_and_delays_no_other() {
    let (dir, state) = workdir();
    let (crashy_log, steady_log) = (
        dir.path().join("crashy.jsonl"),
        dir.path().join("steady.jsonl"),
    );
    let crashing = dir.path().join("crashing");
    std::fs::write(&crashing, "").unwrap();
    let config = dir.path().join("outboard.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}",
            events_section(3),
            subscriber(
                "crashy",
                "build.*",
                &json!({"log": crashy_log, "crash_while": crashing})
            ),
            subscriber("steady", "build.*,other.*", &json!({"log": steady_log})),
        ),
    )
    .unwrap();
    let daemon = Daemon::start_on_file(
        &config,
        &["--state-dir".to_owned(), state.display().to_string()],
    );
    let one = emit(&daemon, "build.one", &json!(1));
    let two = emit(&daemon, "build.two", &json!(2));

    let steady = wait_for_delivery(&steady_log, |d| d["id"] == json!(two));
    assert!(steady.iter().any(|d| d["id"] == json!(one)), "{steady:?}");
    assert!(
        steady.iter().all(|d| d["attempt"] == json!(1)),
        "{steady:?}"
    );
    assert!(
        wait_until(DELIVERY, || dead_letters(&daemon).len() == 2),
        "dead letters: {:?}",
        dead_letters(&daemon)
    );
    let dead = dead_letters(&daemon);
    for letter in &dead {
        assert_eq!(letter["subscriber"], json!("crashy"), "{dead:?}");
        assert_eq!(letter["attempts"], json!(3), "{dead:?}");
        assert!(
            letter["last_error"].as_str().unwrap().contains("crashed"),
            "{dead:?}"
        );
    }
    let mut events: Vec<&str> = dead.iter().map(|d| d["event"].as_str().unwrap()).collect();
    events.sort_unstable();
    assert_eq!(events, ["build.one", "build.two"]);
    // Each attempt reached the plugin: three per event.
    let attempts = deliveries(&crashy_log);
    assert_eq!(attempts.len(), 6, "{attempts:?}");

    std::fs::remove_file(&crashing).unwrap();
    let out = daemon.cli(&["events", "--retry", "--all"]);
    assert_eq!(
        text(&out.stdout),
        "2 dead letters put back for delivery\n",
        "{}",
        text(&out.stderr)
    );
    assert!(wait_until(DELIVERY, || deliveries(&crashy_log).len() == 8));
    let again: Vec<Value> = deliveries(&crashy_log).into_iter().skip(6).collect();
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|d| d["attempt"] == json!(1)), "{again:?}");
    assert!(wait_until(DELIVERY, || dead_letters(&daemon).is_empty()));
    // The steady subscriber saw each event once.
    assert_eq!(deliveries(&steady_log).len(), 2);
    daemon.stop();
}

#[test]
fn emit_reaches_a_subscriber_through_the_daemon_and_through_the_outbox() {
    let (dir, state) = workdir();
    let log = dir.path().join("events.jsonl");
    let config = dir.path().join("outboard.toml");
    std::fs::write(&config, subscriber("sub", "ops.*", &json!({"log": log}))).unwrap();
    let state_arg = state.display().to_string();

    // No daemon: straight into the configuration's outbox.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["emit", "ops.offline", "--data", "[1,2]", "--config"])
        .arg(&config)
        .args(["--state-dir", &state_arg])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let offline = text(&out.stdout).trim().to_owned();
    // A reserved name is refused, naming the field.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["emit", "job.finished", "--config"])
        .arg(&config)
        .args(["--state-dir", &state_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("name: \"job.finished\""),
        "{}",
        text(&out.stderr)
    );

    let daemon = Daemon::start_on_file(&config, &["--state-dir".to_owned(), state_arg.clone()]);
    wait_for_delivery(&log, |d| {
        d["id"] == json!(offline) && d["payload"] == json!([1, 2])
    });
    let online = emit(&daemon, "ops.online", &json!({"by": "test"}));
    let all = wait_for_delivery(&log, |d| d["id"] == json!(online));
    assert_eq!(all.len(), 2, "each event once: {all:?}");
    daemon.stop();
}

#[test]
fn a_job_under_outboard_run_reaches_a_job_subscriber_before_the_host_stops() {
    let (dir, state) = workdir();
    let log = dir.path().join("events.jsonl");
    let config = dir.path().join("outboard.toml");
    std::fs::write(
        &config,
        subscriber("watcher", "job.*,plugin.ready", &json!({"log": log})),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .args(["--json", "--", "sh", "-c", "exit 3"])
        .env("OUTBOARD_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Delivered before `outboard run` returned: no waiting here.
    let all = deliveries(&log);
    let named = |name: &str| all.iter().find(|d| d["name"] == json!(name)).cloned();
    let ready = named("plugin.ready").unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(ready["payload"]["plugin"], json!("watcher"));
    assert!(ready["payload"]["pid"].is_u64(), "{ready}");
    let started = named("job.started").unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(started["source"], json!("host"));
    assert_eq!(started["payload"]["job"], report["job_id"]);
    assert_eq!(started["payload"]["command"], json!(["sh", "-c", "exit 3"]));
    let finished = named("job.finished").unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(finished["payload"]["job"], report["job_id"]);
    assert_eq!(finished["payload"]["status"], json!("exit_code"));
    assert_eq!(finished["payload"]["exit_code"], json!(3));
    assert!(finished["payload"]["duration_ms"].is_u64(), "{finished}");
}

#[test]
fn reloads_are_host_events_whether_they_apply_or_not() {
    let (dir, state) = workdir();
    let log = dir.path().join("events.jsonl");
    let config = dir.path().join("outboard.toml");
    let watcher = subscriber("watcher", "reload.*", &json!({"log": log}));
    std::fs::write(&config, &watcher).unwrap();
    let daemon = Daemon::start_on_file(
        &config,
        &["--state-dir".to_owned(), state.display().to_string()],
    );
    let reloads = || -> Vec<Value> {
        deliveries(&log)
            .into_iter()
            .filter(|d| d["name"] == json!("reload.finished"))
            .map(|d| d["payload"].clone())
            .collect()
    };
    // A plugin that exits before its handshake: the reload fails.
    let doomed = format!(
        "[[plugin]]\nname = \"doomed\"\ncommand = {:?}\nargs = [\"exit-early\"]\n",
        bin("broken-plugin").display().to_string()
    );
    std::fs::write(&config, format!("{watcher}{doomed}")).unwrap();
    assert_eq!(daemon.cli(&["reload"]).status.code(), Some(1));
    assert!(
        wait_until(DELIVERY, || reloads().len() == 1),
        "{:?}",
        deliveries(&log)
    );
    assert_eq!(reloads()[0]["ok"], json!(false));
    assert_eq!(reloads()[0]["added"], json!(["doomed"]));
    // A good one applies.
    let fine = subscriber("fine", "none.*", &json!({}));
    std::fs::write(&config, format!("{watcher}{fine}")).unwrap();
    let out = daemon.cli(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        wait_until(DELIVERY, || reloads().len() == 2),
        "{:?}",
        deliveries(&log)
    );
    let applied = &reloads()[1];
    assert_eq!(
        (&applied["ok"], &applied["added"], &applied["removed"]),
        (&json!(true), &json!(["fine"]), &json!([])),
        "{applied}"
    );
    daemon.stop();
}

#[test]
fn a_job_run_through_the_daemon_is_two_host_events_there() {
    let (dir, state) = workdir();
    let log = dir.path().join("events.jsonl");
    let config = dir.path().join("outboard.toml");
    std::fs::write(
        &config,
        subscriber("watcher", "job.*", &json!({"log": log})),
    )
    .unwrap();
    let daemon = Daemon::start_on_file(
        &config,
        &["--state-dir".to_owned(), state.display().to_string()],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["run", "--daemon", "--json", "--control-socket"])
        .arg(daemon.socket())
        .args(["--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = wait_for_delivery(&log, |d| d["name"] == json!("job.finished"));
    let all = if all.iter().any(|d| d["name"] == json!("job.started")) {
        all
    } else {
        wait_for_delivery(&log, |d| d["name"] == json!("job.started"))
    };
    let named = |name: &str| all.iter().find(|d| d["name"] == json!(name)).unwrap();
    let started = named("job.started");
    assert_eq!(started["payload"]["job"], report["job_id"]);
    assert_eq!(started["payload"]["command"], json!(["sh", "-c", "exit 3"]));
    let finished = named("job.finished");
    assert_eq!(finished["payload"]["job"], report["job_id"]);
    assert_eq!(finished["payload"]["status"], json!("exit_code"));
    assert_eq!(
        finished["payload"]["command"],
        json!(["sh", "-c", "exit 3"])
    );
    // The command ran on the client's side: the daemon does not know its
    // exit code.
    assert_eq!(finished["payload"]["exit_code"], Value::Null);
    daemon.stop();
}

#[test]
fn a_delivery_pending_when_its_subscribe_grant_is_removed_is_not_delivered() {
    let (dir, state) = workdir();
    let log = dir.path().join("events.jsonl");
    let hold = dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let script = json!({"log": log, "hold_while": hold});
    let config = dir.path().join("outboard.toml");
    let granted = subscriber("sub", "deploy.*", &script);
    std::fs::write(&config, format!("{}{granted}", events_section(3))).unwrap();
    let args = vec!["--state-dir".to_owned(), state.display().to_string()];

    // Fanned out to `sub` (granted then); its first attempt was held.
    let id = emit_held_then_kill(&config, &args, &log, &hold);

    // The operator takes the subscribe grant away: the pending delivery
    // must not reach the plugin any more.
    let revoked = granted.replace("grant = [\"*\"]", "grant = [\"kv\"]");
    assert_ne!(revoked, granted);
    std::fs::write(&config, format!("{}{revoked}", events_section(3))).unwrap();
    let second = Daemon::start_on_file(&config, &args);
    assert!(
        wait_until(DELIVERY, || dead_letters(&second).len() == 1),
        "dead letters: {:?}; deliveries: {:?}",
        dead_letters(&second),
        deliveries(&log)
    );
    let dead = dead_letters(&second);
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("event:subscribe:"),
        "{dead:?}"
    );
    let ours: Vec<Value> = deliveries(&log)
        .into_iter()
        .filter(|d| d["id"] == json!(id))
        .collect();
    assert_eq!(ours.len(), 1, "delivered again without the grant: {ours:?}");
    second.stop();
}
