//! The events outbox over a real database file: durable across reopening,
//! leases between two connections (two processes' worth), scopes apart,
//! dead letters, idempotency, pruning.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outboard_state::{
    Clock, Database, EVENT_OVERHEAD_BYTES, ManualClock, NewEvent, Outbox, Outcome, StateError,
};

const LEASE: Duration = Duration::from_secs(30);

fn event<'a>(id: &'a str, scope: &'a str, key: Option<&'a str>) -> NewEvent<'a> {
    NewEvent {
        id,
        scope,
        name: "build.done",
        source: "plugin:builder",
        payload: r#"{"n":1}"#,
        idempotency_key: key,
        quota: None,
    }
}

/// A database in `dir` reading `clock`.
fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Database {
    Database::open_with_clock(dir, clock.clone()).expect("open the state database")
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ))
}

/// Publishes one event in `scope` and fans it out to `subscribers`.
fn published(db: &Database, id: &str, scope: &str, subscribers: &[&str]) {
    db.publish(&event(id, scope, None)).expect("publish");
    let pending = db.undistributed(scope, 10).expect("undistributed");
    let seq = pending
        .iter()
        .find(|e| e.name == "build.done")
        .expect("pending")
        .seq;
    assert!(db.fan_out(scope, seq, subscribers).expect("fan out"));
}

#[test]
fn an_event_and_its_attempts_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    {
        let db = open(dir.path(), &clock);
        let stored = db.publish(&event("e1", "s", None)).expect("publish");
        assert_eq!(stored.id, "e1");
        assert!(!stored.duplicate);
    }
    let db = open(dir.path(), &clock);
    let pending = db.undistributed("s", 10).expect("undistributed");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(db.fan_out("s", pending[0].seq, &["sub"]).expect("fan out"));
    let first = db
        .claim("s", "sub", "host-a", LEASE)
        .expect("claim")
        .expect("due");
    assert_eq!(first.attempt, 1);
    assert_eq!(first.event.payload, r#"{"n":1}"#);
    assert_eq!(first.event.source, "plugin:builder");
    drop(db);
    // The claiming process died: its lease runs out and the next attempt
    // counts on from the first.
    let db = open(dir.path(), &clock);
    assert_eq!(db.claim("s", "sub", "host-b", LEASE).expect("claim"), None);
    clock.advance(LEASE);
    let second = db
        .claim("s", "sub", "host-b", LEASE)
        .expect("claim")
        .expect("due");
    assert_eq!((second.attempt, second.event.id.as_str()), (2, "e1"));
}

#[test]
fn a_lease_keeps_a_second_process_off_until_it_runs_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let (a, b) = (open(dir.path(), &clock), open(dir.path(), &clock));
    published(&a, "e1", "s", &["sub"]);
    let claimed = a
        .claim("s", "sub", "a", LEASE)
        .expect("claim")
        .expect("due");
    assert_eq!(b.claim("s", "sub", "b", LEASE).expect("claim"), None);
    assert_eq!(
        b.next_due("s", "sub").expect("next due"),
        Some(clock.now() + LEASE)
    );
    clock.advance(LEASE);
    let taken = b
        .claim("s", "sub", "b", LEASE)
        .expect("claim")
        .expect("expired");
    assert_eq!(taken.delivery, claimed.delivery);
    // The first owner's late answer no longer counts.
    assert!(
        !a.settle(claimed.delivery, "a", &Outcome::Delivered)
            .expect("settle")
    );
    assert!(
        b.settle(taken.delivery, "b", &Outcome::Delivered)
            .expect("settle")
    );
    assert_eq!(b.next_due("s", "sub").expect("next due"), None);
}

#[test]
fn scopes_do_not_see_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), &clock());
    published(&db, "e1", "/etc/outboard/a.toml", &["sub"]);
    assert!(
        db.undistributed("/etc/outboard/b.toml", 10)
            .expect("undistributed")
            .is_empty()
    );
    assert_eq!(
        db.claim("/etc/outboard/b.toml", "sub", "b", LEASE)
            .expect("claim"),
        None
    );
    assert!(
        db.claim("/etc/outboard/a.toml", "sub", "a", LEASE)
            .expect("claim")
            .is_some()
    );
}

#[test]
fn fanning_out_happens_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), &clock());
    published(&db, "e1", "s", &["one", "two"]);
    assert!(!db.fan_out("s", 1, &["three"]).expect("fan out again"));
    assert!(db.undistributed("s", 10).expect("undistributed").is_empty());
    assert!(db.claim("s", "two", "h", LEASE).expect("claim").is_some());
    assert_eq!(db.claim("s", "three", "h", LEASE).expect("claim"), None);
}

#[test]
fn an_idempotency_key_is_per_scope_and_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), &clock());
    assert!(
        !db.publish(&event("e1", "s", Some("k")))
            .expect("first")
            .duplicate
    );
    let again = db.publish(&event("e2", "s", Some("k"))).expect("second");
    assert_eq!((again.id.as_str(), again.duplicate), ("e1", true));
    assert!(
        !db.publish(&event("e3", "other", Some("k")))
            .expect("scope")
            .duplicate
    );
    let other_source = NewEvent {
        source: "plugin:other",
        ..event("e4", "s", Some("k"))
    };
    assert!(!db.publish(&other_source).expect("source").duplicate);
    assert_eq!(db.undistributed("s", 10).expect("undistributed").len(), 2);
}

#[test]
fn retries_wait_and_dead_letters_come_back_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let db = open(dir.path(), &clock);
    published(&db, "e1", "s", &["sub"]);
    let first = db
        .claim("s", "sub", "h", LEASE)
        .expect("claim")
        .expect("due");
    let later = clock.now() + Duration::from_secs(4);
    let retry = Outcome::Retry {
        at: later,
        error: "UNAVAILABLE: down".into(),
    };
    assert!(db.settle(first.delivery, "h", &retry).expect("settle"));
    assert_eq!(db.claim("s", "sub", "h", LEASE).expect("claim"), None);
    assert_eq!(db.next_due("s", "sub").expect("next due"), Some(later));
    clock.advance(Duration::from_secs(4));
    let second = db
        .claim("s", "sub", "h", LEASE)
        .expect("claim")
        .expect("due");
    assert_eq!(second.attempt, 2);
    let dead = Outcome::Dead {
        error: "plugin crashed".into(),
    };
    assert!(db.settle(second.delivery, "h", &dead).expect("settle"));
    assert_eq!(db.next_due("s", "sub").expect("next due"), None);
    let letters = db.dead_letters("s", 0, 10).expect("dead letters");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (
            letter.event_id.as_str(),
            letter.event.as_str(),
            letter.subscriber.as_str()
        ),
        ("e1", "build.done", "sub")
    );
    assert_eq!(
        (letter.attempts, letter.last_error.as_str()),
        (2, "plugin crashed")
    );
    assert!(
        db.dead_letters("other", 0, 10)
            .expect("other scope")
            .is_empty()
    );
    assert!(
        db.dead_letters("s", letter.id, 10)
            .expect("next page")
            .is_empty()
    );
    assert_eq!(db.retry_dead("s", Some(letter.id + 1)).expect("no such"), 0);
    assert_eq!(db.retry_dead("s", Some(letter.id)).expect("retry"), 1);
    let again = db
        .claim("s", "sub", "h", LEASE)
        .expect("claim")
        .expect("due");
    assert_eq!(again.attempt, 1, "attempts are counted afresh");
    assert!(db.settle(again.delivery, "h", &dead).expect("settle"));
    assert_eq!(db.retry_dead("s", None).expect("retry all"), 1);
}

#[test]
fn released_leases_are_claimable_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), &clock());
    published(&db, "e1", "s", &["sub"]);
    assert!(
        db.claim("s", "sub", "stopping", LEASE)
            .expect("claim")
            .is_some()
    );
    assert_eq!(db.lease_owners("s").expect("owners"), ["stopping"]);
    assert!(db.lease_owners("other").expect("owners").is_empty());
    assert_eq!(db.release("stopping").expect("release"), 1);
    assert!(db.lease_owners("s").expect("owners").is_empty());
    let next = db
        .claim("s", "sub", "next", LEASE)
        .expect("claim")
        .expect("due");
    assert_eq!(next.attempt, 2);
}

#[test]
fn pruning_keeps_what_is_still_owed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let db = open(dir.path(), &clock);
    let day = Duration::from_secs(86_400);
    published(&db, "delivered", "s", &["sub"]);
    let claimed = db
        .claim("s", "sub", "h", LEASE)
        .expect("claim")
        .expect("due");
    assert!(
        db.settle(claimed.delivery, "h", &Outcome::Delivered)
            .expect("settle")
    );
    db.publish(&event("pending", "s", Some("k")))
        .expect("publish");
    clock.advance(day * 2);
    let pruned = db.prune(day, day * 30).expect("prune");
    assert_eq!((pruned.events, pruned.dead_letters), (1, 0));
    // The undistributed event stays, and so does its idempotency key.
    assert!(
        db.publish(&event("again", "s", Some("k")))
            .expect("publish")
            .duplicate
    );
}

#[test]
fn a_source_over_its_quota_stores_nothing_until_its_events_are_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let db = open(dir.path(), &clock);
    let big = "x".repeat(1000);
    let payload = format!("{big:?}");
    let cost = (payload.len() + EVENT_OVERHEAD_BYTES) as u64;
    let flood = |id: &'static str, source: &'static str| NewEvent {
        source,
        payload: &payload,
        quota: Some(3 * cost),
        ..event(id, "s", None)
    };
    for id in ["e1", "e2", "e3"] {
        db.publish(&flood(id, "plugin:flood"))
            .expect("within the quota");
    }
    let refused = db.publish(&flood("e4", "plugin:flood")).expect_err("over");
    assert!(
        matches!(
            refused,
            StateError::Limit {
                limit: "event outbox per plugin",
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("plugin:flood"), "{refused}");
    // Nothing of it was stored; another source has its own quota.
    assert_eq!(db.undistributed("s", 10).expect("read").len(), 3);
    db.publish(&flood("e5", "plugin:other"))
        .expect("its own quota");
    // Kept across reopening, and freed when the events are pruned.
    drop(db);
    let db = open(dir.path(), &clock);
    assert!(db.publish(&flood("e6", "plugin:flood")).is_err());
    for event in db.undistributed("s", 10).expect("read") {
        assert!(db.fan_out("s", event.seq, &[]).expect("fan out"));
    }
    clock.advance(Duration::from_secs(7200));
    db.prune(Duration::from_secs(3600), Duration::from_secs(3600))
        .expect("prune");
    db.publish(&flood("e7", "plugin:flood"))
        .expect("room again");
}

#[test]
fn deliveries_to_a_removed_plugin_become_dead_letters_after_the_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let db = open(dir.path(), &clock);
    published(&db, "e1", "s", &["kept", "removed", "busy"]);
    let retention = Duration::from_secs(3600);
    let live = ["kept".to_owned()];
    // Not yet past the retention: nothing changes.
    assert_eq!(db.abandon("s", &live, retention).expect("abandon"), 0);
    // A lease held by a live host is left alone.
    let busy = db
        .claim("s", "busy", "host-a", retention * 2)
        .expect("claim")
        .expect("due");
    assert_eq!(busy.attempt, 1);
    clock.advance(retention + Duration::from_secs(1));
    assert_eq!(db.abandon("other", &live, retention).expect("abandon"), 0);
    assert_eq!(db.abandon("s", &live, retention).expect("abandon"), 1);
    let letters = db.dead_letters("s", 0, 10).expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].subscriber, "removed");
    assert!(
        letters[0]
            .last_error
            .contains("no longer in the configuration"),
        "{letters:?}"
    );
    // The configured subscriber's delivery is still owed.
    assert!(
        db.claim("s", "kept", "host-a", LEASE)
            .expect("claim")
            .is_some()
    );
}
