//! Many threads on one database: compare-and-set loses no update, and a
//! listing stays ordered and complete while a writer changes the keys.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use outboard_state::{CasResult, Database, Expected, KvLimits, KvStore, PageRequest};

/// A database in a fresh private directory.
fn fresh() -> (tempfile::TempDir, Arc<Database>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(&dir.path().join("state")).expect("open");
    (dir, Arc::new(db))
}

#[test]
fn sixteen_concurrent_compare_and_set_writers_lose_no_update() {
    const WRITERS: u64 = 16;
    const INCREMENTS: u64 = 50;
    let (_dir, db) = fresh();
    let limits = KvLimits::default();
    let workers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let db = db.clone();
            thread::spawn(move || {
                let mut mismatches = 0u64;
                for _ in 0..INCREMENTS {
                    loop {
                        let current = db.get("shared:c", "counter").expect("get").map(|e| e.value);
                        let next = current
                            .as_deref()
                            .map_or(1, |bytes| parse(bytes) + 1)
                            .to_string();
                        let expected = match current.as_deref() {
                            Some(bytes) => Expected::Value(bytes),
                            None => Expected::Absent,
                        };
                        let outcome = db
                            .compare_and_set(
                                "shared:c",
                                "counter",
                                expected,
                                next.as_bytes(),
                                None,
                                &limits,
                            )
                            .expect("compare-and-set");
                        match outcome {
                            CasResult::Swapped => break,
                            CasResult::Mismatch { .. } => mismatches += 1,
                        }
                    }
                }
                mismatches
            })
        })
        .collect();
    let mismatches: u64 = workers.into_iter().map(|w| w.join().expect("writer")).sum();
    let value = db
        .get("shared:c", "counter")
        .expect("get")
        .expect("set")
        .value;
    assert_eq!(
        parse(&value),
        WRITERS * INCREMENTS,
        "after {mismatches} lost races"
    );
}

/// The counter's decimal text.
fn parse(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .expect("utf-8")
        .parse()
        .expect("a number")
}

#[test]
fn paging_through_2500_keys_while_a_writer_changes_them_sees_each_once_in_order() {
    const KEYS: usize = 2_500;
    let (_dir, db) = fresh();
    let limits = KvLimits::default();
    for i in 0..KEYS {
        db.set("ns", &format!("k/{i:05}"), b"0", None, &limits)
            .expect("seed");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, written) = (db.clone(), stop.clone(), written.clone());
        thread::spawn(move || {
            let mut round = 0usize;
            while !stop.load(Ordering::Acquire) {
                // Overwrite seeded keys, add keys between them, delete some
                // of those again, and write outside the prefix.
                let i = round * 7 % KEYS;
                db.set(
                    "ns",
                    &format!("k/{i:05}"),
                    round.to_string().as_bytes(),
                    None,
                    &limits,
                )
                .expect("overwrite");
                db.set("ns", &format!("k/{i:05}+{round}"), b"new", None, &limits)
                    .expect("insert");
                if round.is_multiple_of(3) {
                    db.delete("ns", &format!("k/{i:05}+{round}"))
                        .expect("delete");
                }
                db.set("ns", &format!("l/{round}"), b"outside", None, &limits)
                    .expect("outside");
                round += 1;
                written.store(round as u64, Ordering::Release);
            }
        })
    };

    let mut seen = Vec::new();
    let mut request = PageRequest {
        size: 97,
        ..PageRequest::default()
    };
    loop {
        // Let the writer change something between every two pages.
        let before = written.load(Ordering::Acquire);
        let deadline = Instant::now() + Duration::from_secs(30);
        while written.load(Ordering::Acquire) == before {
            assert!(Instant::now() < deadline, "the writer made no progress");
            thread::yield_now();
        }
        let page = db.list("ns", "k/", &request).expect("list");
        seen.extend(page.entries.into_iter().map(|entry| entry.key));
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    stop.store(true, Ordering::Release);
    writer.join().expect("writer");

    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "strictly ascending, so no key twice"
    );
    assert!(
        seen.iter().all(|key| key.starts_with("k/")),
        "only the prefix"
    );
    let seen: BTreeSet<_> = seen.into_iter().collect();
    let missing: Vec<_> = (0..KEYS)
        .map(|i| format!("k/{i:05}"))
        .filter(|key| !seen.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "keys present throughout were skipped: {missing:?}"
    );
}

#[test]
fn a_read_does_not_wait_for_an_open_write_transaction() {
    let (dir, db) = fresh();
    let limits = KvLimits::default();
    db.set("ns", "k", b"committed", None, &limits).expect("set");
    // Another connection (as another process would) sits inside a write
    // transaction with an uncommitted change.
    let file = dir.path().join("state").join(outboard_state::DB_FILE);
    let other = rusqlite::Connection::open(&file).expect("second connection");
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE kv SET value = x'00';")
        .expect("hold the write lock");
    let entry = db
        .get("ns", "k")
        .expect("a read does not wait for the writer");
    assert_eq!(
        entry.map(|e| e.value),
        Some(b"committed".to_vec()),
        "and sees no uncommitted change"
    );
    other.execute_batch("ROLLBACK").expect("rollback");
}
