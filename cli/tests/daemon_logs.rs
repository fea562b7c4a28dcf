//! The log ring end to end: a plugin floods stderr far beyond its ring's
//! bound; `outboard logs` shows at most the bound, the latest lines last,
//! the dropped ones as a gap in the sequence, and `-f` follows new lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Lines, text, wait_until};
use daemon::{Daemon, scripted};
use outboard_daemon::logs::Limits;

/// Lines the flood writes: twenty rings' worth.
const FLOOD: u64 = 20_000;

/// Runs `phase` on the daemon; the flood plugin must have answered.
async fn invoke(daemon: &Daemon, phase: &str) {
    let report = daemon::invoke(&mut daemon.client().await, phase).await;
    assert_eq!(report.entries.len(), 1, "{report:?}");
}

/// Asserts that the lines' sequence numbers follow one another.
fn assert_consecutive(lines: &[serde_json::Value], what: &str) {
    let sequences: Vec<u64> = lines
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "{what}: sequences not consecutive: {sequences:?}"
    );
}

/// `outboard logs flood --json ARGS`, parsed line by line.
fn logs_json(daemon: &Daemon, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["logs", "flood", "--json"];
    all.extend_from_slice(args);
    let out = daemon.cli(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    parse(&text(&out.stdout))
}

/// One JSON object per line.
fn parse(lines: &str) -> Vec<serde_json::Value> {
    lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Spawns `outboard logs flood -f --json ARGS`, its stdout read line by line.
fn follow(daemon: &Daemon, args: &[&str]) -> (Child, Lines) {
    let mut all = vec!["logs", "flood", "-f", "--json"];
    all.extend_from_slice(args);
    let mut child = daemon
        .cli_command(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outboard logs -f");
    let lines = Lines::read(child.stdout.take().unwrap());
    (child, lines)
}

/// Interrupts a follower, as a person would end it (exit 130), and returns
/// everything it printed.
fn interrupt(mut child: Child, lines: Lines) -> String {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "logs -f: {status}: {stderr}");
    lines.rest()
}

/// The text of the flood's line number `k`.
fn line(k: u64) -> String {
    format!("flood: log line {k}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_ring_stays_bounded_under_a_flood_and_follows() {
    let bound = Limits::default().lines;
    let daemon = Daemon::start(&format!(
        "[[plugin]]\nname = \"flood\"\ncommand = \"{}\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"flood:10,tick:10\" }}\ncall_timeout = \"30s\"\n\
         config = {{ flood = {{ log_lines = {FLOOD} }}, tick = {{ log_lines = 1 }} }}\n",
        scripted()
    ));
    invoke(&daemon, "flood").await;
    // The lines reach the ring after the call returns: wait for the last.
    let last = line(FLOOD);
    assert!(
        wait_until(Duration::from_secs(30), || {
            logs_json(&daemon, &["-n", "1"])
                .last()
                .is_some_and(|l| l["message"] == last.as_str())
        }),
        "the flood's last line never showed"
    );

    // Asked for more than the ring holds: at most the bound, in order,
    // the latest last, the dropped lines a gap before the first.
    let asked = (bound * 5).to_string();
    let shown = logs_json(&daemon, &["-n", &asked]);
    assert!(
        !shown.is_empty() && shown.len() <= bound,
        "{} lines shown, the bound is {bound}",
        shown.len()
    );
    assert!(
        shown.iter().all(|l| l.get("dropped").is_none()),
        "the ring's lines are consecutive"
    );
    assert_consecutive(&shown, "the ring");
    // Sequences count every line from 1: the first shown tells how many
    // the ring dropped.
    let first_sequence = shown[0]["sequence"].as_u64().unwrap();
    assert!(
        first_sequence > FLOOD - bound as u64,
        "the first line shown, {first_sequence}, is older than the ring can hold"
    );
    assert_eq!(shown.last().unwrap()["message"], last.as_str());
    assert_eq!(shown.last().unwrap()["stream"], "stderr");
    let first = shown[0]["message"].as_str().unwrap();
    let k: u64 = first.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        k + shown.len() as u64 - 1,
        FLOOD,
        "the lines shown are the latest, in order: from {first}"
    );

    // -n N: the last N, for people too.
    let ten = daemon.cli(&["logs", "flood", "-n", "10"]);
    let ten = text(&ten.stdout);
    let ten: Vec<&str> = ten.lines().collect();
    assert_eq!(ten.len(), 10, "{ten:?}");
    assert!(ten[0].ends_with(&line(FLOOD - 9)), "{ten:?}");
    assert!(ten[9].ends_with(&last), "{ten:?}");

    // -f: the ring, then each new line as it comes.
    let (follow, mut lines) = follow(&daemon, &["-n", "5"]);
    lines.expect(&last, Duration::from_secs(10));
    invoke(&daemon, "tick").await;
    lines.expect(&line(FLOOD + 1), Duration::from_secs(10));
    invoke(&daemon, "tick").await;
    lines.expect(&line(FLOOD + 2), Duration::from_secs(10));
    let seen = interrupt(follow, lines);
    let followed = parse(&seen);
    assert_eq!(followed.len(), 7, "5 from the ring, then 2 new: {seen}");
    assert_consecutive(&followed, "the ring, then the follow");
    daemon.stop();
}

/// A config of the `flood` plugin whose `tick` writes `tick` lines.
fn ticking(tick: u64) -> String {
    format!(
        "[[plugin]]\nname = \"flood\"\ncommand = \"{}\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"tick:10\" }}\n\
         config = {{ tick = {{ log_lines = {tick} }} }}\n",
        scripted()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_follows_the_plugin_across_a_restart_and_a_reload() {
    let daemon = Daemon::start(&ticking(1));
    let (follow, mut lines) = follow(&daemon, &[]);
    invoke(&daemon, "tick").await;
    lines.expect(&line(1), Duration::from_secs(10));

    // A new process under the same name: its lines join the same stream.
    let out = daemon.cli(&["restart", "flood"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    invoke(&daemon, "tick").await;
    lines.expect(&line(1), Duration::from_secs(10));

    // Replaced blue/green by a reload: the new instance's lines too.
    daemon.write_config(&ticking(2));
    let out = daemon.cli(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    invoke(&daemon, "tick").await;
    lines.expect(&line(2), Duration::from_secs(10));

    let seen = interrupt(follow, lines);
    let followed = parse(&seen);
    assert_consecutive(&followed, "one plugin's lines across its instances");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_ring_stays_bounded_in_bytes_under_a_flood_of_long_lines() {
    let limits = Limits::default();
    // 8 KiB lines: the ring's bytes fill long before its line count.
    let width = 8 * 1024;
    let count = (limits.bytes / width * 4) as u64;
    let daemon = Daemon::start(&format!(
        "[[plugin]]\nname = \"flood\"\ncommand = \"{}\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"flood:10\" }}\ncall_timeout = \"30s\"\n\
         config = {{ flood = {{ log_lines = {count}, log_width = {width} }} }}\n",
        scripted()
    ));
    invoke(&daemon, "flood").await;
    let last = format!("{} ", line(count));
    assert!(
        wait_until(Duration::from_secs(30), || {
            logs_json(&daemon, &["-n", "1"])
                .last()
                .is_some_and(|l| l["message"].as_str().is_some_and(|m| m.starts_with(&last)))
        }),
        "the flood's last line never showed"
    );
    let shown = logs_json(&daemon, &[]);
    let bytes: usize = shown
        .iter()
        .map(|l| l["message"].as_str().unwrap().len())
        .sum();
    assert!(
        bytes <= limits.bytes && shown.len() < limits.lines,
        "{} lines of {bytes} bytes shown; the ring holds {} bytes",
        shown.len(),
        limits.bytes
    );
    // Whole lines, the latest, in order.
    assert!(
        shown
            .iter()
            .all(|l| l["message"].as_str().unwrap().len() == width),
        "a line was cut"
    );
    assert_consecutive(&shown, "the ring");
    assert!(
        shown.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with(&last)
    );
    assert!(
        shown.len() as u64 >= count / 8,
        "only {} lines kept",
        shown.len()
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_a_flood_shows_the_gap_and_goes_on() {
    let daemon = Daemon::start(&format!(
        "[[plugin]]\nname = \"flood\"\ncommand = \"{}\"\n\
         env = {{ SCRIPTED_SUBSCRIBE = \"flood:10,tick:10\" }}\ncall_timeout = \"30s\"\n\
         config = {{ flood = {{ log_lines = {FLOOD} }}, tick = {{ log_lines = 1 }} }}\n",
        scripted()
    ));
    invoke(&daemon, "tick").await;
    let (follow, mut lines) = follow(&daemon, &[]);
    lines.expect(&line(1), Duration::from_secs(10));
    // Far more lines at once than a follower's buffer holds.
    invoke(&daemon, "flood").await;
    lines.expect(&line(FLOOD + 1), Duration::from_secs(30));
    invoke(&daemon, "tick").await;
    lines.expect(&line(FLOOD + 2), Duration::from_secs(10));
    let seen = parse(&interrupt(follow, lines));
    // Every line it printed is in order; where it fell behind, a marker
    // says how many it missed, and the count adds up.
    let mut last: Option<u64> = None;
    let mut missed = 0;
    for entry in &seen {
        if let Some(dropped) = entry.get("dropped") {
            missed += dropped.as_u64().unwrap();
            continue;
        }
        let sequence = entry["sequence"].as_u64().unwrap();
        if let Some(last) = last {
            assert!(sequence > last, "out of order: {last} then {sequence}");
        }
        last = Some(sequence);
    }
    let printed = seen.iter().filter(|e| e.get("sequence").is_some()).count() as u64;
    let first = seen[0]["sequence"].as_u64().unwrap();
    assert_eq!(
        printed + missed,
        last.unwrap() - first + 1,
        "lines printed and lines said missed add up to every line"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_do_not_keep_a_stopping_daemon_up() {
    let daemon = Daemon::start(&ticking(1));
    invoke(&daemon, "tick").await;
    let (logs, mut lines) = follow(&daemon, &[]);
    lines.expect(&line(1), Duration::from_secs(10));
    let mut events = daemon
        .cli_command(&["events", "-f", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outboard events -f");
    let mut event_lines = Lines::read(events.stdout.take().unwrap());
    event_lines.expect("\"plugin\"", Duration::from_secs(10));

    // SIGTERM ends the daemon (exit 0, nothing left: `stop` checks) even
    // with two streams open that would never end on their own; each
    // follower then ends too.
    let started = std::time::Instant::now();
    daemon.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the daemon took {:?} to stop with followers attached",
        started.elapsed()
    );
    for (mut child, what) in [(logs, "logs -f"), (events, "events -f")] {
        // try_wait reaps it once it has exited.
        assert!(
            wait_until(Duration::from_secs(10), || child
                .try_wait()
                .unwrap()
                .is_some()),
            "{what} still runs after the daemon stopped"
        );
    }
}
