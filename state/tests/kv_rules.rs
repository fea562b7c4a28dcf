//! The KV rules of PROTOCOL.md §17.4–17.5 on a real database: expiry
//! against an injected clock, the size limits, deletes, listing and its
//! bounds.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use outboard_state::{
    CasResult, Clock, Database, Expected, KvLimits, KvStore, ManualClock, PageRequest, StateError,
};

/// A database whose clock moves only when the test says.
fn with_clock() -> (tempfile::TempDir, Arc<ManualClock>, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ));
    let db = Database::open_with_clock(&dir.path().join("state"), clock.clone()).expect("open");
    (dir, clock, db)
}

/// Asserts that `result` was refused by the limit `name` of `value` bytes
/// in namespace `ns` (`why` says which write), with a message naming all three.
fn assert_limit<T: std::fmt::Debug>(
    result: Result<T, StateError>,
    why: &str,
    name: &str,
    value: u64,
    ns: &str,
) {
    let error = match result {
        Err(error @ StateError::Limit { .. }) => error,
        other => panic!("{why}: expected the {name} limit, got {other:?}"),
    };
    if let StateError::Limit {
        limit,
        value: v,
        namespace,
    } = &error
    {
        assert_eq!((*limit, *v, namespace.as_str()), (name, value, ns), "{why}");
    }
    let message = error.to_string();
    for part in [name.to_string(), value.to_string(), format!("\"{ns}\"")] {
        assert!(
            message.contains(&part),
            "{why}: {message} should name {part}"
        );
    }
}

/// The keys of every page of a listing, following the tokens.
fn all_keys(db: &Database, ns: &str, prefix: &str, size: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut request = PageRequest {
        size,
        ..PageRequest::default()
    };
    loop {
        let page = db.list(ns, prefix, &request).expect("list");
        keys.extend(page.entries.into_iter().map(|entry| entry.key));
        match page.next {
            Some(next) => request.after = Some(next),
            None => return keys,
        }
    }
}

#[test]
fn an_expired_key_is_invisible_to_every_call() {
    let (_dir, clock, db) = with_clock();
    let limits = KvLimits::default();
    db.set("ns", "short", b"v", Some(Duration::from_secs(10)), &limits)
        .expect("set");
    db.set("ns", "forever", b"v", None, &limits).expect("set");
    db.set("ns", "zero", b"v", Some(Duration::ZERO), &limits)
        .expect("set");

    let entry = db
        .get("ns", "short")
        .expect("get")
        .expect("live before expiry");
    assert_eq!(entry.expires, Some(clock.now() + Duration::from_secs(10)));
    clock.advance(Duration::from_secs(9));
    assert!(
        db.get("ns", "short").expect("get").is_some(),
        "still live at 9 s"
    );
    clock.advance(Duration::from_secs(1));

    assert_eq!(db.get("ns", "short").expect("get"), None, "expired at 10 s");
    assert_eq!(
        all_keys(&db, "ns", "", 10),
        ["forever", "zero"],
        "a listing skips it"
    );
    assert!(
        !db.delete("ns", "short").expect("delete"),
        "deleting it finds nothing"
    );
    assert_eq!(
        db.get("ns", "zero").expect("get").map(|e| e.expires),
        Some(None),
        "zero TTL = never"
    );

    db.set("ns", "again", b"old", Some(Duration::from_secs(1)), &limits)
        .expect("set");
    clock.advance(Duration::from_secs(1));
    let cas = db
        .compare_and_set("ns", "again", Expected::Absent, b"new", None, &limits)
        .expect("cas");
    assert_eq!(
        cas,
        CasResult::Swapped,
        "an expired key is absent to compare-and-set"
    );
    let cas = db
        .compare_and_set("ns", "again", Expected::Value(b"old"), b"x", None, &limits)
        .expect("cas");
    assert_eq!(
        cas,
        CasResult::Mismatch {
            current: Some(b"new".to_vec())
        }
    );
}

#[test]
fn reclaiming_removes_only_expired_keys() {
    let (_dir, clock, db) = with_clock();
    let limits = KvLimits::default();
    for i in 0..5 {
        db.set(
            "ns",
            &format!("t{i}"),
            b"v",
            Some(Duration::from_secs(5)),
            &limits,
        )
        .expect("set");
    }
    db.set("ns", "keep", b"v", Some(Duration::from_secs(60)), &limits)
        .expect("set");
    assert_eq!(
        db.reclaim_expired().expect("reclaim"),
        0,
        "nothing has expired yet"
    );
    clock.advance(Duration::from_secs(5));
    assert_eq!(db.reclaim_expired().expect("reclaim"), 5);
    assert_eq!(all_keys(&db, "ns", "", 10), ["keep"]);
}

#[test]
fn later_writes_reclaim_expired_keys_without_being_asked() {
    let (_dir, clock, db) = with_clock();
    let limits = KvLimits::default();
    for i in 0..10 {
        db.set(
            "old",
            &format!("t{i}"),
            b"v",
            Some(Duration::from_secs(1)),
            &limits,
        )
        .expect("set");
    }
    clock.advance(Duration::from_secs(1));
    let rows = || -> i64 {
        let conn = rusqlite::Connection::open(db.path()).expect("inspect");
        conn.query_row("SELECT count(*) FROM kv WHERE ns = 'old'", [], |row| {
            row.get(0)
        })
        .expect("count")
    };
    assert_eq!(rows(), 10, "expired but not yet reclaimed");
    // Writes elsewhere reclaim in batches every few hundred writes.
    for i in 0..300 {
        db.set("new", &format!("k{}", i % 7), b"v", None, &limits)
            .expect("set");
    }
    assert_eq!(rows(), 0);
}

#[test]
fn a_value_over_the_size_limit_is_refused_naming_limit_value_and_namespace() {
    let (_dir, _clock, db) = with_clock();
    let limits = KvLimits {
        value_size: 10,
        namespace_total: 1_000,
    };
    db.set("plugin:a", "k", &[1; 10], None, &limits)
        .expect("exactly the limit");
    assert_limit(
        db.set("plugin:a", "k", &[1; 11], None, &limits),
        "one byte over",
        "kv value size",
        10,
        "plugin:a",
    );
    let cas = db.compare_and_set(
        "plugin:a",
        "k",
        Expected::Value(&[1; 10]),
        &[2; 11],
        None,
        &limits,
    );
    assert_limit(cas, "compare-and-set", "kv value size", 10, "plugin:a");
    assert_eq!(
        db.get("plugin:a", "k").expect("get").map(|e| e.value),
        Some(vec![1; 10])
    );
}

#[test]
fn the_namespace_total_counts_live_keys_and_allows_a_shrinking_write() {
    let (_dir, clock, db) = with_clock();
    // Each write below is a 2-byte key plus a 48-byte value: 50 bytes.
    let limits = KvLimits {
        value_size: 1_000,
        namespace_total: 200,
    };
    for i in 0..4 {
        db.set("ns", &format!("k{i}"), &[0; 48], None, &limits)
            .expect("within the total");
    }
    assert_limit(
        db.set("ns", "k4", &[0; 48], None, &limits),
        "201..250 bytes",
        "kv namespace total",
        200,
        "ns",
    );
    assert_eq!(
        db.get("ns", "k4").expect("get"),
        None,
        "nothing was written"
    );
    assert!(
        db.set("other", "k4", &[0; 48], None, &limits).is_ok(),
        "another namespace has its own total"
    );

    // Overwrites that keep or shrink a key's size are allowed even when the
    // namespace is over its total (an operator may have lowered it).
    let lower = KvLimits {
        namespace_total: 100,
        ..limits
    };
    db.set("ns", "k0", &[1; 48], None, &lower)
        .expect("same size");
    db.set("ns", "k0", &[1; 8], None, &lower)
        .expect("shrinking");
    assert_limit(
        db.set("ns", "k0", &[1; 9], None, &lower),
        "growing while over",
        "kv namespace total",
        100,
        "ns",
    );

    // Expired keys do not count, even before they are reclaimed.
    db.set("ns", "k1", &[0; 48], Some(Duration::from_secs(1)), &limits)
        .expect("same size");
    db.set("ns", "k2", &[0; 48], Some(Duration::from_secs(1)), &limits)
        .expect("same size");
    clock.advance(Duration::from_secs(1));
    db.set("ns", "k5", &[0; 48], None, &limits)
        .expect("room freed by expiry");
    db.set("ns", "k6", &[0; 48], None, &limits)
        .expect("room freed by expiry");
    // Deleting frees room too.
    assert!(
        db.set("ns", "k7", &[0; 48], None, &limits).is_err(),
        "full again"
    );
    assert!(db.delete("ns", "k5").expect("delete"));
    db.set("ns", "k7", &[0; 48], None, &limits)
        .expect("room freed by delete");
}

#[test]
fn listing_is_in_byte_order_within_the_prefix_and_paged() {
    let (_dir, _clock, db) = with_clock();
    let limits = KvLimits::default();
    // Byte order, not character order: "Z" < "a" < "é" (0xC3 0xA9).
    for key in [
        "p/é",
        "p/a",
        "p/Z",
        "p/b/1",
        "p",
        "q/a",
        "o/z",
        "p/\u{10FFFF}",
    ] {
        db.set("ns", key, key.as_bytes(), None, &limits)
            .expect("set");
    }
    db.set("other", "p/x", b"x", None, &limits).expect("set");
    let expected = ["p/Z", "p/a", "p/b/1", "p/é", "p/\u{10FFFF}"];
    for size in [1, 2, 3, 100] {
        assert_eq!(
            all_keys(&db, "ns", "p/", size),
            expected,
            "page size {size}"
        );
    }
    assert_eq!(all_keys(&db, "ns", "", 3).len(), 8);
    assert!(all_keys(&db, "empty", "", 3).is_empty());

    let page = db
        .list(
            "ns",
            "p/",
            &PageRequest {
                size: 2,
                keys_only: true,
                ..PageRequest::default()
            },
        )
        .expect("list");
    assert!(
        page.entries.iter().all(|entry| entry.value.is_empty()),
        "keys only"
    );
    let token = page.next.expect("more follow");
    for (ns, prefix) in [("other", "p/"), ("ns", "p/b"), ("ns", "")] {
        let request = PageRequest {
            after: Some(token.clone()),
            ..PageRequest::default()
        };
        assert!(
            matches!(
                db.list(ns, prefix, &request),
                Err(StateError::InvalidToken(_))
            ),
            "a token of ns/p/ used on {ns}/{prefix}"
        );
    }
}

#[test]
fn a_page_is_bounded_in_entries_and_bytes() {
    let (_dir, _clock, db) = with_clock();
    let limits = KvLimits::default();
    for i in 0..1_200 {
        db.set("ns", &format!("k{i:04}"), b"", None, &limits)
            .expect("set");
    }
    let page = |size| {
        db.list(
            "ns",
            "",
            &PageRequest {
                size,
                ..PageRequest::default()
            },
        )
        .expect("list")
    };
    assert_eq!(
        page(0).entries.len(),
        PageRequest::DEFAULT_SIZE,
        "0 = the default"
    );
    assert_eq!(
        page(5_000).entries.len(),
        PageRequest::MAX_SIZE,
        "clamped, not refused"
    );

    // 20 values of 64 KiB: a page of them stops under 1 MiB, and
    // keys-only pages are not limited by the values' size.
    for i in 0..20 {
        db.set("big", &format!("b{i:02}"), &[9; 65_536], None, &limits)
            .expect("set");
    }
    let first = db.list("big", "", &PageRequest::default()).expect("list");
    let bytes: usize = first
        .entries
        .iter()
        .map(|e| e.key.len() + e.value.len())
        .sum();
    assert!(
        bytes <= PageRequest::MAX_BYTES && first.entries.len() < 20,
        "{bytes} bytes"
    );
    assert!(first.next.is_some(), "a short page still says more follow");
    assert_eq!(all_keys(&db, "big", "", 100).len(), 20);
    let keys_only = PageRequest {
        keys_only: true,
        ..PageRequest::default()
    };
    assert_eq!(
        db.list("big", "", &keys_only).expect("list").entries.len(),
        20
    );
}

#[test]
fn bad_keys_are_refused_naming_the_field() {
    let (_dir, _clock, db) = with_clock();
    let limits = KvLimits::default();
    let long = "k".repeat(513);
    for (field, result) in [
        ("key", db.set("ns", "", b"v", None, &limits).err()),
        ("key", db.get("ns", &long).err()),
        (
            "prefix",
            db.list("ns", &long, &PageRequest::default()).err(),
        ),
    ] {
        let error = result.expect("refused");
        assert!(
            matches!(error, StateError::Invalid { field: f, .. } if f == field),
            "{error:?}"
        );
    }
    db.set("ns", &"k".repeat(512), b"v", None, &limits)
        .expect("512 bytes is allowed");
}
