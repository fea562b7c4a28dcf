//! Failures of the file itself: a full disk, a corrupt file, a schema from
//! the future. Each must name the file.

use std::sync::Arc;

use super::*;
use crate::{KvLimits, KvStore};

/// A database in a fresh private directory.
fn fresh() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(&dir.path().join("state")).expect("open");
    (dir, db)
}

#[test]
fn a_full_disk_is_an_error_naming_the_file_and_nothing_is_written() {
    let (_dir, db) = fresh();
    let limits = KvLimits::default();
    db.set("ns", "before", b"kept", None, &limits)
        .expect("first write");
    // Cap the file at its current size: the next growth is SQLITE_FULL,
    // exactly as a full file system reports it.
    let pages: i64 = db.with_writer(|conn| {
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .expect("page_count");
        conn.pragma_update(None, "max_page_count", pages)
            .expect("cap");
        pages
    });
    let big = vec![7u8; 60_000];
    let (failed, error) = (0..64)
        .find_map(|i| {
            let key = format!("big{i}");
            db.set("ns", &key, &big, None, &limits)
                .err()
                .map(|error| (key, error))
        })
        .expect("the capped file fills up");
    assert!(matches!(error, StateError::Full { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&db.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("disk is full"), "{message}");
    // The failed write left nothing behind and the store goes on working
    // once there is room again.
    db.with_writer(|conn| conn.pragma_update(None, "max_page_count", pages * 1000))
        .expect("uncap");
    assert_eq!(
        db.get("ns", &failed).expect("get"),
        None,
        "the failed write left nothing"
    );
    assert_eq!(
        db.get("ns", "before").expect("get").map(|e| e.value),
        Some(b"kept".to_vec())
    );
    db.set("ns", "after", b"room again", None, &limits)
        .expect("write after");
}

#[test]
fn a_corrupt_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    drop(Database::open(&state).expect("create"));
    let file = state.join(crate::DB_FILE);
    std::fs::write(&file, b"not a database, just some bytes ".repeat(256)).expect("overwrite");
    let error = Database::open(&state).expect_err("a garbage file must be refused");
    assert!(matches!(error, StateError::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("restore a backup"), "{message}");
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let db = Database::open(&state).expect("create");
    db.with_writer(|conn| conn.pragma_update(None, "user_version", 999))
        .expect("pretend a newer version wrote it");
    drop(db);
    let error = Database::open(&state).expect_err("too new");
    assert!(
        matches!(error, StateError::TooNew { found: 999, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("schema version 999"), "{error}");
}

#[test]
fn opening_twice_runs_each_step_once_and_reaches_the_latest_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    for _ in 0..2 {
        let db = Database::open_with_clock(&state, Arc::new(SystemClock)).expect("open");
        let version: i64 = db.with_writer(|conn| {
            conn.pragma_query_value(None, "user_version", |row| row.get(0))
                .expect("user_version")
        });
        assert_eq!(version, migrations::latest());
    }
}

#[test]
fn the_file_is_in_wal_mode_with_full_sync() {
    let (_dir, db) = fresh();
    let (mode, sync): (String, i64) = db.with_writer(|conn| {
        let mode = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        let sync = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("synchronous");
        (mode, sync)
    });
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL is 2");
}

#[test]
fn a_panic_during_a_read_hands_its_connection_back() {
    let (_dir, db) = fresh();
    for _ in 0..20 {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.read(|_| -> Result<(), Fail> { panic!("a bug in a read path") })
        }));
        assert!(result.is_err());
    }
    // Had the 20 panics leaked their connections, this read would wait for
    // ever for one of the pool's 8.
    let db = Arc::new(db);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = db.clone();
    std::thread::spawn(move || tx.send(reader.get("ns", "k").map(|entry| entry.is_none())));
    let answer = rx.recv_timeout(Duration::from_secs(30));
    assert!(matches!(answer, Ok(Ok(true))), "{answer:?}");
}

#[test]
fn many_threads_share_the_bounded_read_connections() {
    let (_dir, db) = fresh();
    db.set("ns", "k", b"v", None, &KvLimits::default())
        .expect("set");
    let db = Arc::new(db);
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                (0..20).all(|_| {
                    db.get("ns", "k")
                        .expect("get")
                        .is_some_and(|e| e.value == b"v")
                })
            })
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().expect("reader")));
}
