//! Reload end to end: a real `outboard up`, real `outboard reload` (and
//! SIGHUP) processes, control-API callers invoking all the while. A reload
//! loses no call and mixes no routing; a bad one changes nothing; a dry
//! run only prints the plan; a plugin restarted after its binary was
//! replaced gets the routes of its new manifest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{text, wait_until};
use daemon::{Client, Daemon, broken, scripted, write_script};
use outboard_proto::control::v1::{DispatchReport, EntryOutcome, PhaseMode, PluginState, verdict};

/// The phase every test plugin subscribes to.
const PHASE: &str = "work";

/// How long each plugin takes over a call under load: long enough that
/// calls are in flight on the old instances when the routes switch.
const CALL_MS: u64 = 50;

/// How long a slow plugin takes to start: a reload that adds it takes that
/// long, and calls must not wait for it.
const SLOW_START_MS: u64 = 1000;

/// A `[[plugin]]` table for the scripted fixture, subscribed to `work`,
/// setting `/NAME` to `value` after `sleep_ms`; `slow` ones take
/// [`SLOW_START_MS`] to start.
fn plugin(name: &str, value: &str, sleep_ms: u64, slow: bool) -> String {
    let delay = if slow { SLOW_START_MS } else { 0 };
    format!(
        r#"
[[plugin]]
name = "{name}"
command = "{cmd}"
env = {{ SCRIPTED_SUBSCRIBE = "{PHASE}:10", SCRIPTED_START_DELAY_MS = "{delay}" }}
restart = "never"
config = {{ {PHASE} = {{ sleep_ms = {sleep_ms}, set = {{ "/{name}" = "{value}" }} }} }}
"#,
        cmd = scripted()
    )
}

/// A config of `plugins` (name, value), `work` run in `mode`, the plugins
/// named in `slow` slow to start.
fn config_in(mode: &str, plugins: &[(&str, &str)], sleep_ms: u64, slow: &[&str]) -> String {
    let mut text = format!("[phases.{PHASE}]\nmode = \"{mode}\"\n");
    for (name, value) in plugins {
        text.push_str(&plugin(name, value, sleep_ms, slow.contains(name)));
    }
    text
}

/// A config of `plugins` (name, value), `work` run in parallel.
fn config(plugins: &[(&str, &str)], sleep_ms: u64) -> String {
    config_in("parallel", plugins, sleep_ms, &[])
}

/// What routing a report saw: each entry's plugin and the value it set at
/// `/its-name`. Fails the test if the dispatch did not pass or an entry
/// did not answer OK with exactly that one operation.
fn routing(report: &DispatchReport) -> BTreeMap<String, String> {
    assert!(
        matches!(
            report.verdict.as_ref().and_then(|v| v.result.as_ref()),
            Some(verdict::Result::Passed(_))
        ),
        "a dispatch did not pass: {report:?}"
    );
    report
        .entries
        .iter()
        .map(|entry| {
            assert_eq!(
                entry.outcome(),
                EntryOutcome::Ok,
                "{} did not answer OK: {report:?}",
                entry.plugin
            );
            let [op] = entry.patch.as_slice() else {
                panic!("{} sent not one operation: {report:?}", entry.plugin);
            };
            assert_eq!(op.path, format!("/{}", entry.plugin), "{report:?}");
            let value = match op.value.as_ref().and_then(|v| v.kind.as_ref()) {
                Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
                other => panic!("{}: not a string: {other:?}", entry.plugin),
            };
            (entry.plugin.clone(), value)
        })
        .collect()
}

/// The routing a list of plugins (name, value) gives.
fn expected(plugins: &[(&str, &str)]) -> BTreeMap<String, String> {
    plugins
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Invokes `work` with an empty context and checks the report.
async fn invoke(client: &mut Client) -> BTreeMap<String, String> {
    routing(&daemon::invoke(client, PHASE).await)
}

/// One answered call: when it was sent and answered, and the routing it
/// saw (the phase's mode, and each plugin's value).
struct Call {
    sent: Instant,
    answered: Instant,
    routing: (PhaseMode, BTreeMap<String, String>),
}

/// `count` callers invoking `work` in a loop until `stop`, each on its own
/// connection; every call must be answered with a passing report.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<Call>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(daemon: &Daemon, count: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..count {
            let mut client = daemon.client().await;
            let (stop, answered, calls) = (stop.clone(), answered.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let report = daemon::invoke(&mut client, PHASE).await;
                    let routing = (report.mode(), routing(&report));
                    let call = Call {
                        sent,
                        answered: Instant::now(),
                        routing,
                    };
                    calls.lock().unwrap().push(call);
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Load {
            stop,
            answered,
            calls,
            tasks,
        }
    }

    /// Waits until `more` calls beyond those answered now are answered.
    async fn wait_for(&self, more: usize) {
        let target = self.answered.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.answered.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the callers stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the callers (each finishes its call) and returns every call;
    /// a caller that failed fails the test here.
    async fn finish(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a caller failed");
        }
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// Runs `outboard ARGS` off the runtime's threads.
async fn cli(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    let mut command = daemon.cli_command(args);
    tokio::task::spawn_blocking(move || command.output().expect("run outboard"))
        .await
        .unwrap()
}

/// Waits until the daemon has applied `reloads` reloads.
async fn wait_reloads(daemon: &Daemon, reloads: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = daemon.status().await;
        if status.daemon.as_ref().is_some_and(|d| d.reloads >= reloads) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon has not applied {reloads} reloads: {:?}",
            status.daemon
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_loses_no_call_and_mixes_no_routing() {
    let first = [
        ("alpha", "v1"),
        ("beta", "v1"),
        ("gone", "yes"),
        ("keep", "k"),
    ];
    let second = [
        ("alpha", "v2"),
        ("beta", "v2"),
        ("fresh", "yes"),
        ("keep", "k"),
    ];
    let third = [
        ("alpha", "v3"),
        ("beta", "v3"),
        ("keep", "k"),
        ("late", "yes"),
    ];
    let daemon = Daemon::start(&config(&first, CALL_MS));
    let before = daemon.pids().await;

    let load = Load::start(&daemon, 16).await;
    load.wait_for(160).await;

    // Two plugins' config changed, one removed, one added (slow to start),
    // the phase now sequential: through the CLI.
    daemon.write_config(&config_in("sequential", &second, CALL_MS, &["fresh"]));
    let asked = Instant::now();
    let out = cli(&daemon, &["reload", "--json"]).await;
    let reloaded = Instant::now();
    assert!(
        out.status.success(),
        "outboard reload: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["applied"], true, "{reply}");
    let plan = &reply["plan"];
    assert_eq!(plan["unchanged"], serde_json::json!(["keep"]), "{plan}");
    assert_eq!(plan["added"], serde_json::json!(["fresh"]), "{plan}");
    assert_eq!(plan["removed"], serde_json::json!(["gone"]), "{plan}");
    let changed: Vec<&str> = plan["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["alpha", "beta"], "{plan}");
    assert_eq!(plan["phases_changed"], serde_json::json!([PHASE]), "{plan}");
    for change in plan["changed"].as_array().unwrap() {
        assert!(
            change["fields"]
                .as_array()
                .unwrap()
                .contains(&"config".into()),
            "{plan}"
        );
    }
    let middle = daemon.pids().await;
    load.wait_for(160).await;

    // Again, by SIGHUP: the changed plugins change again, the added one
    // goes, another comes.
    daemon.write_config(&config(&third, CALL_MS));
    let hangup = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    wait_reloads(&daemon, 2).await;
    let rehung = Instant::now();
    let after = daemon.pids().await;
    load.wait_for(160).await;
    let calls = load.finish().await;

    // Every call answered and passed (checked as it came); each saw one
    // whole routing, and once a reload returned, only the new one.
    let routings = [
        (PhaseMode::Parallel, expected(&first)),
        (PhaseMode::Sequential, expected(&second)),
        (PhaseMode::Parallel, expected(&third)),
    ];
    let mut seen = [0usize; 3];
    for call in &calls {
        let generation = routings
            .iter()
            .position(|r| *r == call.routing)
            .unwrap_or_else(|| panic!("a mixed routing: {:?}", call.routing));
        seen[generation] += 1;
        if call.sent >= reloaded && call.sent < hangup {
            assert_eq!(generation, 1, "sent after the reload: {:?}", call.routing);
        }
        if call.sent >= rehung {
            assert_eq!(generation, 2, "sent after SIGHUP's: {:?}", call.routing);
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "calls per routing: {seen:?}");
    // The load went on through each reload: calls were in flight as it
    // began, and others were sent while it ran; while the added plugin
    // took its time to start, calls went on being answered.
    assert!(
        reloaded - asked >= Duration::from_millis(SLOW_START_MS),
        "the reload did not wait for the added plugin to start"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.sent > asked && c.answered < reloaded),
        "no call was answered while the reload waited for the added plugin"
    );
    for (start, end, what) in [(asked, reloaded, "reload"), (hangup, rehung, "SIGHUP")] {
        assert!(
            calls.iter().any(|c| c.sent < start && c.answered > start),
            "no call in flight as the {what} began"
        );
        assert!(
            calls.iter().any(|c| c.sent > start && c.sent < end),
            "no call sent during the {what}"
        );
    }

    // `keep` never restarted and took part in every call: its count is
    // every call the callers made, none lost, none twice.
    let status = daemon.status().await;
    let keep = status.plugins.iter().find(|p| p.name == "keep").unwrap();
    assert_eq!(
        keep.invocations.as_ref().map(|i| (i.ok, i.failed)),
        Some((calls.len() as u64, 0)),
        "keep's calls"
    );

    // Unchanged: the same process throughout; changed: a new one each time.
    assert_eq!(before["keep"], middle["keep"]);
    assert_eq!(middle["keep"], after["keep"]);
    for name in ["alpha", "beta"] {
        assert_ne!(before[name], middle[name], "{name} after the first reload");
        assert_ne!(middle[name], after[name], "{name} after SIGHUP's");
    }
    let names = |pids: &BTreeMap<String, u32>| pids.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&middle), ["alpha", "beta", "fresh", "keep"]);
    assert_eq!(names(&after), ["alpha", "beta", "keep", "late"]);
    // The processes replaced or removed are gone.
    for pid in [
        before["alpha"],
        before["beta"],
        before["gone"],
        middle["fresh"],
    ] {
        assert!(
            wait_until(Duration::from_secs(10), || !common::alive(pid)),
            "a replaced plugin's process {pid} still runs"
        );
    }
    daemon.stop();
}

/// The plugins' pids, the reloads applied, and the routing a call sees,
/// all as before.
async fn assert_unchanged(
    daemon: &Daemon,
    pids: &BTreeMap<String, u32>,
    routing: &BTreeMap<String, String>,
    what: &str,
) {
    assert_eq!(&daemon.pids().await, pids, "after {what}: the plugins");
    let status = daemon.status().await;
    assert_eq!(
        status.daemon.map(|d| d.reloads),
        Some(0),
        "after {what}: reloads"
    );
    assert_eq!(
        &invoke(&mut daemon.client().await).await,
        routing,
        "after {what}: a call's routing"
    );
}

/// Reloads through the CLI, and checks that it failed naming every one of
/// `named`, and that nothing changed.
async fn refused(
    daemon: &Daemon,
    named: &[&str],
    pids: &BTreeMap<String, u32>,
    routing: &BTreeMap<String, String>,
    what: &str,
) {
    let out = cli(daemon, &["reload"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reload of {what}: stdout {}\nstderr {stderr}",
        text(&out.stdout)
    );
    for needle in named {
        assert!(
            stderr.contains(needle),
            "reload of {what}: the error does not name {needle:?}: {stderr}"
        );
    }
    assert_unchanged(daemon, pids, routing, what).await;
}

/// A `[[plugin]]` of the broken fixture in `mode`, subscribed to nothing.
fn broken_plugin(name: &str, mode: &str) -> String {
    format!(
        "\n[[plugin]]\nname = \"{name}\"\ncommand = \"{}\"\nargs = [\"{mode}\"]\n\
         handshake_timeout = \"1s\"\nrestart = \"never\"\n",
        broken()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_changes_nothing() {
    let good = [("alpha", "v1"), ("gone", "yes"), ("keep", "k")];
    let good_text = config(&good, 0);
    let daemon = Daemon::start(&good_text);
    let pids = daemon.pids().await;
    let routing = expected(&good);
    let config_path = daemon.config_path().display().to_string();
    // Each bad config also changes alpha and removes gone, which alone
    // would apply: none of it may.
    let beside = config(&[("alpha", "v2"), ("keep", "k")], 0);
    let missing = daemon.work().join("no-such-plugin").display().to_string();
    let line = good_text.lines().count() + 2;
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (
            format!("{good_text}\n[[plugin]\nname = \"x\"\n"),
            vec![format!("{config_path}:{line}")],
            "a TOML error (named by file and line)",
        ),
        (
            format!("{beside}\n[[plugin]]\nname = \"ghost\"\ncommand = \"{missing}\"\n"),
            vec!["ghost".into(), missing.clone()],
            "a missing binary",
        ),
        (
            format!("{beside}{}", broken_plugin("doomed", "exit-early")),
            vec!["doomed".into()],
            "an added plugin that exits before its handshake",
        ),
        (
            format!("{beside}{}", broken_plugin("mute", "silent")),
            vec!["mute".into()],
            "an added plugin that never hands shake",
        ),
        (
            config(&[("keep", "k")], 0) + &broken_plugin("alpha", "exit-early"),
            vec!["alpha".into()],
            "a changed plugin whose new binary exits before its handshake",
        ),
        (
            format!(
                "{}\n[[plugin]]\nname = \"alpha\"\ncommand = \"{}\"\nconfig = {{ {PHASE} = \"no\" }}\n",
                config(&[("keep", "k")], 0),
                scripted()
            ),
            vec!["alpha".into()],
            "a changed plugin whose new config it refuses",
        ),
    ];
    for (bad, named, what) in &cases {
        // Under load: no call sees a new instance started then discarded.
        let load = Load::start(&daemon, 4).await;
        load.wait_for(8).await;
        daemon.write_config(bad);
        let named: Vec<&str> = named.iter().map(String::as_str).collect();
        refused(&daemon, &named, &pids, &routing, what).await;
        for call in load.finish().await {
            assert_eq!(call.routing.1, routing, "a call during {what}");
        }
    }

    // The config file gone, then a FIFO where it was (read at once, it
    // would hang the reload): refused by name, without waiting.
    std::fs::remove_file(daemon.config_path()).unwrap();
    refused(&daemon, &[&config_path], &pids, &routing, "a missing file").await;
    let path = std::ffi::CString::new(config_path.clone()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    refused(&daemon, &[&config_path, "FIFO"], &pids, &routing, "a FIFO").await;

    // Neither a failed plugin nor a discarded new instance runs on.
    daemon.expect_children(pids.values().copied());

    // A good config again: the daemon still reloads.
    daemon.write_config(&beside);
    let out = cli(&daemon, &["reload"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        invoke(&mut daemon.client().await).await,
        expected(&[("alpha", "v2"), ("keep", "k")])
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let first = [("alpha", "v1"), ("gone", "yes"), ("keep", "k")];
    let daemon = Daemon::start(&config(&first, 0));
    let pids = daemon.pids().await;
    daemon.write_config(&config(
        &[("alpha", "v2"), ("fresh", "yes"), ("keep", "k")],
        0,
    ));

    let reply = daemon.cli_json(&["reload", "--dry-run"]);
    assert_eq!(reply["applied"], false, "{reply}");
    let plan = &reply["plan"];
    assert_eq!(plan["unchanged"], serde_json::json!(["keep"]), "{plan}");
    assert_eq!(plan["added"], serde_json::json!(["fresh"]), "{plan}");
    assert_eq!(plan["removed"], serde_json::json!(["gone"]), "{plan}");
    assert_eq!(plan["changed"][0]["name"], "alpha", "{plan}");
    assert_eq!(plan["changed"].as_array().map(Vec::len), Some(1), "{plan}");

    // For people: the same plan, every plugin named.
    let out = daemon.cli(&["reload", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("dry run"), "{stdout}");
    for name in ["alpha", "fresh", "gone", "keep"] {
        assert!(
            stdout.contains(name),
            "the plan does not name {name}: {stdout}"
        );
    }
    assert_unchanged(&daemon, &pids, &expected(&first), "a dry run").await;
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_restarted_after_an_upgrade_in_place_gets_its_new_routes() {
    let subscribed =
        |phase: &str| format!("SCRIPTED_SUBSCRIBE={phase}:10 exec '{}' \"$@\"", scripted());
    let daemon = Daemon::start_with(|work| {
        let command = write_script(work, "upgraded", &subscribed("old_phase"));
        let config = format!(
            "[[plugin]]\nname = \"upgraded\"\ncommand = \"{}\"\n\
             config = {{ old_phase = {{ set = {{ \"/upgraded\" = \"old\" }} }}, \
             new_phase = {{ set = {{ \"/upgraded\" = \"new\" }} }}, \
             third_phase = {{ set = {{ \"/upgraded\" = \"third\" }} }} }}\n",
            command.display()
        );
        (config, Vec::new())
    });
    let mut client = daemon.client().await;
    let mut run = async |phase: &str| routing(&daemon::invoke(&mut client, phase).await);
    let upgraded = |value: &str| expected(&[("upgraded", value)]);
    assert_eq!(run("old_phase").await, upgraded("old"));
    assert_eq!(run("new_phase").await, BTreeMap::new());
    let before = daemon.pids().await["upgraded"];

    // The new binary subscribes to the other phase.
    daemon.write_script("upgraded", &subscribed("new_phase"));
    let out = daemon.cli(&["restart", "upgraded"]);
    assert!(
        out.status.success(),
        "outboard restart: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_ne!(daemon.pids().await["upgraded"], before, "a new process");
    assert_eq!(run("new_phase").await, upgraded("new"));
    assert_eq!(run("old_phase").await, BTreeMap::new());
    let status = daemon.cli_json(&["status", "upgraded"]);
    assert_eq!(
        status["plugins"][0]["phases"],
        serde_json::json!(["new_phase"]),
        "{status}"
    );

    // Upgraded again, then killed: the supervisor's own restart reads the
    // new manifest too.
    daemon.write_script("upgraded", &subscribed("third_phase"));
    let killed = daemon.pids().await["upgraded"];
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(killed as libc::pid_t, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while [0, killed].contains(&daemon.pids().await["upgraded"]) {
        assert!(Instant::now() < deadline, "upgraded was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.wait_all_ready().await;
    assert_eq!(run("third_phase").await, upgraded("third"));
    assert_eq!(run("new_phase").await, BTreeMap::new());
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_stop_holds_across_a_reload_and_start_brings_the_new_config() {
    let first = [("alpha", "v1"), ("beta", "v1"), ("keep", "k")];
    let second = [("alpha", "v2"), ("beta", "v2"), ("keep", "k")];
    let daemon = Daemon::start(&config(&first, CALL_MS));
    // Under load throughout: a stop lets alpha's calls in flight finish,
    // and no call fails as it leaves or rejoins the routes.
    let load = Load::start(&daemon, 8).await;
    load.wait_for(16).await;
    let stopping = Instant::now();
    let stopped = daemon.cli_json(&["stop", "alpha"]);
    let stopped_at = Instant::now();
    assert_eq!(stopped["plugins"][0]["state"], "disabled", "{stopped}");
    load.wait_for(16).await;

    // Both change; the stopped one stays stopped, its new config kept.
    daemon.write_config(&config(&second, CALL_MS));
    let reloading = Instant::now();
    let reply = daemon.cli_json(&["reload"]);
    let reloaded = Instant::now();
    assert_eq!(reply["applied"], true, "{reply}");
    assert_eq!(
        reply["plan"]["disabled"],
        serde_json::json!(["alpha"]),
        "{reply}"
    );
    let status = daemon.status().await;
    let alpha = status.plugins.iter().find(|p| p.name == "alpha").unwrap();
    assert_eq!(
        (alpha.state(), alpha.pid),
        (PluginState::Disabled, 0),
        "alpha after the reload"
    );
    load.wait_for(16).await;

    let starting = Instant::now();
    let started = daemon.cli_json(&["start", "alpha"]);
    let started_at = Instant::now();
    assert_eq!(started["plugins"][0]["state"], "ready", "{started}");
    load.wait_for(16).await;

    let without_alpha = |plugins: &[(&str, &str)]| {
        let mut routing = expected(plugins);
        routing.remove("alpha");
        routing
    };
    for call in load.finish().await {
        let routing = &call.routing.1;
        let sent = call.sent;
        let want = if sent < stopping {
            expected(&first)
        } else if sent >= stopped_at && sent < reloading {
            without_alpha(&first)
        } else if sent >= reloaded && sent < starting {
            without_alpha(&second)
        } else if sent >= started_at {
            expected(&second)
        } else {
            // Sent while a command ran: either side of it.
            assert!(
                [
                    expected(&first),
                    without_alpha(&first),
                    without_alpha(&second),
                    expected(&second)
                ]
                .contains(routing),
                "{routing:?}"
            );
            continue;
        };
        assert_eq!(
            routing,
            &want,
            "a call sent {:?} after the stop",
            sent.checked_duration_since(stopping)
        );
    }
    daemon.stop();
}

/// A `[[plugin]]` of the scripted fixture subscribed to `slow`, whose call
/// takes `sleep_ms` and sets `/NAME` to `value`.
fn slow_plugin(name: &str, value: &str, sleep_ms: u64) -> String {
    format!(
        "[[plugin]]\nname = \"{name}\"\ncommand = \"{}\"\ncall_timeout = \"30s\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"slow:10\" }}\n\
         config = {{ slow = {{ sleep_ms = {sleep_ms}, set = {{ \"/{name}\" = \"{value}\" }} }} }}\n",
        scripted()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_on_removed_and_replaced_plugins_finish() {
    let first = format!(
        "[phases.slow]\nmode = \"parallel\"\n{}{}",
        slow_plugin("gone", "old", 1500),
        slow_plugin("changed", "old", 1500)
    );
    let daemon = Daemon::start(&first);
    let old = daemon.pids().await;
    let mut client = daemon.client().await;
    let in_flight =
        tokio::spawn(async move { routing(&daemon::invoke(&mut client, "slow").await) });
    // The call is under way on both plugins before the reload begins.
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon
        .status()
        .await
        .daemon
        .is_none_or(|d| d.in_flight == 0)
    {
        assert!(Instant::now() < deadline, "the call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    daemon.write_config(&format!(
        "[phases.slow]\nmode = \"parallel\"\n{}",
        slow_plugin("changed", "new", 0)
    ));
    let out = cli(&daemon, &["reload"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // New calls see the new routing at once, even while the old instances
    // still finish the first call.
    assert_eq!(
        routing(&daemon::invoke(&mut daemon.client().await, "slow").await),
        expected(&[("changed", "new")])
    );
    assert_eq!(
        in_flight.await.expect("the call in flight"),
        expected(&[("changed", "old"), ("gone", "old")]),
        "the call in flight finished on the old instances"
    );
    for pid in [old["gone"], old["changed"]] {
        assert!(
            wait_until(Duration::from_secs(10), || !common::alive(pid)),
            "an old instance, {pid}, still runs after its call"
        );
    }
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_at_once_leave_one_instance_per_plugin() {
    let daemon = Daemon::start(&config(&[("alpha", "v1"), ("keep", "k")], 0));
    let second = [("alpha", "v2"), ("fresh", "yes"), ("keep", "k")];
    // fresh is slow to start: the first reload takes that long, and the
    // others come while it runs.
    daemon.write_config(&config_in("parallel", &second, 0, &["fresh"]));
    // Three CLI reloads and a SIGHUP, all at once.
    let reloads: Vec<_> = (0..3)
        .map(|_| {
            let mut command = daemon.cli_command(&["reload"]);
            std::thread::spawn(move || command.output().expect("run outboard"))
        })
        .collect();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    let outputs: Vec<_> = reloads.into_iter().map(|r| r.join().unwrap()).collect();
    // Each either applied (perhaps nothing left to do) or was refused
    // saying why; none crashed, at least one applied.
    for out in &outputs {
        assert!(
            out.status.code() == Some(0)
                || (out.status.code() == Some(1) && !out.stderr.is_empty()),
            "outboard reload: {}\n{}",
            out.status,
            text(&out.stderr)
        );
    }
    assert!(
        outputs.iter().any(|o| o.status.success()),
        "no reload applied: {:?}",
        outputs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    wait_reloads(&daemon, 1).await;
    daemon.wait_all_ready().await;
    assert_eq!(invoke(&mut daemon.client().await).await, expected(&second));
    // One process per plugin (and the keeper): no second instance of a
    // plugin started by two reloads at once.
    daemon.expect_children(daemon.pids().await.into_values());
    daemon.stop();
}

/// Writes `dir/name/plugin.toml`: the scripted fixture subscribed to
/// `work`, setting `/NAME` to `value`.
fn plugin_dir_entry(dir: &Path, name: &str, value: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(
        dir.join(name).join("plugin.toml"),
        format!(
            "command = \"{}\"\nenv = {{ SCRIPTED_SUBSCRIBE = \"{PHASE}:10\" }}\n\
             config = {{ {PHASE} = {{ set = {{ \"/{name}\" = \"{value}\" }} }} }}\n",
            scripted()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reads_the_plugin_directories_again() {
    let daemon = Daemon::start_with(|work| {
        let dir = work.join("plugins");
        plugin_dir_entry(&dir, "listed", "v1");
        plugin_dir_entry(&dir, "dropped", "yes");
        let args = vec!["--plugin-dir".into(), dir.display().to_string()];
        (config(&[("keep", "k")], 0), args)
    });
    let dir = daemon.work().join("plugins");
    let mut client = daemon.client().await;
    let pids = daemon.pids().await;
    assert_eq!(
        invoke(&mut client).await,
        expected(&[("dropped", "yes"), ("keep", "k"), ("listed", "v1")])
    );

    // A folder changed, one removed, one added.
    plugin_dir_entry(&dir, "listed", "v2");
    std::fs::remove_dir_all(dir.join("dropped")).unwrap();
    plugin_dir_entry(&dir, "joined", "yes");
    let reply = daemon.cli_json(&["reload"]);
    let plan = &reply["plan"];
    assert_eq!(plan["added"], serde_json::json!(["joined"]), "{plan}");
    assert_eq!(plan["removed"], serde_json::json!(["dropped"]), "{plan}");
    assert_eq!(plan["changed"][0]["name"], "listed", "{plan}");
    assert_eq!(plan["unchanged"], serde_json::json!(["keep"]), "{plan}");
    let after = [("joined", "yes"), ("keep", "k"), ("listed", "v2")];
    assert_eq!(invoke(&mut client).await, expected(&after));
    assert_eq!(daemon.pids().await["keep"], pids["keep"]);

    // A bad plugin.toml: refused naming it, nothing changed.
    let bad = dir.join("joined").join("plugin.toml");
    std::fs::write(&bad, "comand = \"typo\"\n").unwrap();
    let pids = daemon.pids().await;
    let out = cli(&daemon, &["reload"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert_eq!(daemon.pids().await, pids);
    assert_eq!(invoke(&mut client).await, expected(&after));

    // The events tell of both: the plan applied, then the error.
    let out = daemon.cli(&["events", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reloads: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "reload")
        .collect();
    let [applied, failed] = reloads.as_slice() else {
        panic!("not two reload events: {reloads:?}");
    };
    assert_eq!(applied["plan"]["added"], serde_json::json!(["joined"]));
    assert!(applied["error"].is_null(), "{applied}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains(&bad.display().to_string()), "{failed}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fixes_a_failed_plugins_config_brings_it_back() {
    let crashing = format!(
        "{}\n[[plugin]]\nname = \"flaky\"\ncommand = \"{}\"\nrestart = \"never\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"{PHASE}:10\" }}\nconfig = {{ {PHASE} = {{ crash = true }} }}\n",
        config(&[("keep", "k")], 0),
        scripted()
    );
    let daemon = Daemon::start(&crashing);
    let report = daemon::invoke(&mut daemon.client().await, PHASE).await;
    assert!(
        report
            .entries
            .iter()
            .any(|e| e.plugin == "flaky" && e.outcome() == EntryOutcome::Failed),
        "{report:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = daemon.status().await;
        let flaky = status.plugins.iter().find(|p| p.name == "flaky").unwrap();
        if flaky.state() == PluginState::Failed {
            break;
        }
        assert!(Instant::now() < deadline, "flaky is {:?}", flaky.state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The operator fixes its config: the reload starts it again.
    let fixed = [("flaky", "fixed"), ("keep", "k")];
    daemon.write_config(&config(&fixed, 0));
    let reply = daemon.cli_json(&["reload"]);
    assert_eq!(reply["plan"]["changed"][0]["name"], "flaky", "{reply}");
    daemon.wait_all_ready().await;
    assert_eq!(invoke(&mut daemon.client().await).await, expected(&fixed));
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn back_to_back_reloads_under_load_lose_nothing_and_leak_nothing() {
    let a = [("alpha", "a"), ("keep", "k"), ("only_a", "yes")];
    let b = [("alpha", "b"), ("keep", "k"), ("only_b", "yes")];
    let daemon = Daemon::start(&config(&a, CALL_MS));
    let keep = daemon.pids().await["keep"];
    let load = Load::start(&daemon, 16).await;
    load.wait_for(32).await;
    // Each reload replaces alpha and swaps one plugin for another, the
    // next one as soon as the last has returned.
    for round in 0..8 {
        let next = if round % 2 == 0 { &b } else { &a };
        daemon.write_config(&config(next, CALL_MS));
        let out = cli(&daemon, &["reload"]).await;
        assert!(
            out.status.success(),
            "reload {round}: {}",
            text(&out.stderr)
        );
    }
    load.wait_for(32).await;
    let calls = load.finish().await;
    for call in &calls {
        assert!(
            call.routing.1 == expected(&a) || call.routing.1 == expected(&b),
            "a mixed routing: {:?}",
            call.routing
        );
    }
    let status = daemon.status().await;
    assert_eq!(status.daemon.map(|d| d.reloads), Some(8));
    let pids = daemon.pids().await;
    assert_eq!(pids["keep"], keep, "keep kept its process");
    // The last config's plugins, one process each: every replaced or
    // removed instance has stopped.
    daemon.expect_children(pids.into_values());
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_would_leave_a_dependency_unmet_changes_nothing() {
    let user = format!(
        "\n[[plugin]]\nname = \"user\"\ncommand = \"{}\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"{PHASE}:20\", SCRIPTED_DEPENDS = \"base\" }}\n\
         config = {{ {PHASE} = {{ set = {{ \"/user\" = \"u\" }} }} }}\n",
        scripted()
    );
    let daemon = Daemon::start(&(config(&[("base", "b"), ("keep", "k")], 0) + &user));
    let pids = daemon.pids().await;
    let routing = expected(&[("base", "b"), ("keep", "k"), ("user", "u")]);
    assert_eq!(invoke(&mut daemon.client().await).await, routing);

    // base removed while user, which requires it, runs on.
    daemon.write_config(&(config(&[("keep", "k")], 0) + &user));
    refused(
        &daemon,
        &["base", "user"],
        &pids,
        &routing,
        "a dependency removed",
    )
    .await;
    daemon.stop();
}
