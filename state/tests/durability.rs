//! What survives: closing and reopening, and a SIGKILL of the writing
//! process in the middle of its writes (every acknowledged write is there).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use outboard_state::{Database, KvLimits, KvStore};

/// Set in the environment of the re-invoked test executable: the state
/// directory the child writes to.
const CHILD_DIR: &str = "OUTBOARD_STATE_CRASH_CHILD_DIR";
/// How many writes the child makes.
const WRITES: usize = 1_000;
/// After how many acknowledged writes the parent kills the child.
const KILL_AFTER: usize = 300;

#[test]
fn reopening_keeps_data_and_expiry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let limits = KvLimits::default();
    let expires = {
        let db = Database::open(&state).expect("open");
        db.set("plugin:a", "k", b"v1", None, &limits).expect("set");
        db.set(
            "shared:jobs",
            "k",
            b"v2",
            Some(Duration::from_secs(3_600)),
            &limits,
        )
        .expect("set");
        db.set("plugin:a", "gone", b"x", None, &limits)
            .expect("set");
        assert!(db.delete("plugin:a", "gone").expect("delete"));
        db.get("shared:jobs", "k")
            .expect("get")
            .expect("live")
            .expires
    };
    let db = Database::open(&state).expect("reopen");
    assert_eq!(
        db.get("plugin:a", "k").expect("get").map(|e| e.value),
        Some(b"v1".to_vec())
    );
    let shared = db
        .get("shared:jobs", "k")
        .expect("get")
        .expect("still there");
    assert_eq!((shared.value, shared.expires), (b"v2".to_vec(), expires));
    assert_eq!(
        db.get("plugin:a", "gone").expect("get"),
        None,
        "a delete is durable too"
    );
}

/// The key and value of the child's `i`th write.
fn write_number(i: usize) -> (String, String) {
    (
        format!("key-{i:04}"),
        format!("value-{i}-{}", "x".repeat(i % 97)),
    )
}

/// The child's side of the crash test, run only when
/// `every_acknowledged_write_survives_a_sigkill` re-invokes this executable
/// with `CHILD_DIR` set. Prints `ack KEY` on a line of its own after each
/// write has returned, then waits on its stdin, so that it never exits by
/// itself: it always dies by the SIGKILL.
#[test]
#[ignore = "the child process of every_acknowledged_write_survives_a_sigkill"]
fn crash_child() {
    let dir = std::env::var_os(CHILD_DIR).expect("run by the crash test, which sets the directory");
    let db = Database::open(Path::new(&dir)).expect("child: open");
    let limits = KvLimits::default();
    let mut out = std::io::stdout().lock();
    // The test harness has printed "test crash_child ... " without a newline.
    writeln!(out).expect("child: stdout");
    for i in 0..WRITES {
        let (key, value) = write_number(i);
        db.set("crash", &key, value.as_bytes(), None, &limits)
            .expect("child: set");
        writeln!(out, "ack {key}")
            .and_then(|()| out.flush())
            .expect("child: ack");
    }
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}

#[test]
fn every_acknowledged_write_survives_a_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let mut child = Command::new(std::env::current_exe().expect("test executable"))
        .args(["--exact", "crash_child", "--include-ignored", "--nocapture"])
        .env(CHILD_DIR, &state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = Vec::new();
    while acked.len() < KILL_AFTER {
        let line = lines
            .next()
            .expect("the child stopped before acknowledging enough writes")
            .expect("read the child's output");
        if let Some(key) = line.strip_prefix("ack ") {
            acked.push(key.to_string());
        }
    }
    child.kill().expect("SIGKILL the child");
    // Acknowledgements already in the pipe count too: read to its end.
    acked.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_string)),
    );
    let status = child.wait().expect("reap the child");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the child died by the kill, not by itself: {status:?}"
    );

    let db = Database::open(&state).expect("reopen after the crash");
    for (i, key) in acked.iter().enumerate() {
        let (expected_key, value) = write_number(i);
        assert_eq!(key, &expected_key, "acknowledged in order");
        let entry = db
            .get("crash", key)
            .expect("get")
            .unwrap_or_else(|| panic!("{key} acknowledged but lost"));
        assert_eq!(entry.value, value.as_bytes(), "{key}");
    }
    // At most the one write in flight at the kill may be there unacknowledged;
    // nothing after it.
    for i in acked.len() + 1..WRITES {
        assert_eq!(
            db.get("crash", &write_number(i).0).expect("get"),
            None,
            "write {i} never started"
        );
    }
    eprintln!(
        "{} of {WRITES} writes acknowledged before the SIGKILL",
        acked.len()
    );
}
