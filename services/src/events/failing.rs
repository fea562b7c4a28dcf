//! For tests: the state database as an [`Outbox`], except that the calls
//! chosen fail as on a full disk, and are counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use outboard_state::{
    Claimed, Database, DeadLetter, NewEvent, Outbox, Outcome, Pruned, Published, StateError,
    Undistributed,
};

/// Where the failures say the database is: a path the plugin must not see.
pub(super) const PATH: &str = "/srv/private/outboard/state.db";

/// The database, with `claim` and/or `publish` failing.
pub(super) struct Failing {
    inner: Database,
    fail_claims: bool,
    fail_publish: bool,
    /// Claims tried.
    pub(super) claims: AtomicUsize,
}

impl Failing {
    /// Every claim fails.
    pub(super) fn claims(inner: Database) -> Failing {
        Failing {
            inner,
            fail_claims: true,
            fail_publish: false,
            claims: AtomicUsize::new(0),
        }
    }

    /// Every publish fails.
    pub(super) fn publishes(inner: Database) -> Failing {
        Failing {
            fail_claims: false,
            fail_publish: true,
            ..Failing::claims(inner)
        }
    }
}

/// The disk is full.
fn full() -> StateError {
    StateError::Full { path: PATH.into() }
}

impl Outbox for Failing {
    fn publish(&self, event: &NewEvent<'_>) -> Result<Published, StateError> {
        if self.fail_publish {
            return Err(full());
        }
        self.inner.publish(event)
    }
    fn undistributed(&self, scope: &str, limit: usize) -> Result<Vec<Undistributed>, StateError> {
        self.inner.undistributed(scope, limit)
    }
    fn fan_out(&self, scope: &str, seq: i64, subscribers: &[&str]) -> Result<bool, StateError> {
        self.inner.fan_out(scope, seq, subscribers)
    }
    fn claim(
        &self,
        scope: &str,
        subscriber: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StateError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        if self.fail_claims {
            return Err(full());
        }
        self.inner.claim(scope, subscriber, owner, lease)
    }
    fn next_due(&self, scope: &str, subscriber: &str) -> Result<Option<SystemTime>, StateError> {
        self.inner.next_due(scope, subscriber)
    }
    fn settle(&self, delivery: i64, owner: &str, outcome: &Outcome) -> Result<bool, StateError> {
        self.inner.settle(delivery, owner, outcome)
    }
    fn lease_owners(&self, scope: &str) -> Result<Vec<String>, StateError> {
        self.inner.lease_owners(scope)
    }
    fn release(&self, owner: &str) -> Result<u64, StateError> {
        self.inner.release(owner)
    }
    fn dead_letters(
        &self,
        scope: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        self.inner.dead_letters(scope, after, limit)
    }
    fn retry_dead(&self, scope: &str, id: Option<i64>) -> Result<u64, StateError> {
        self.inner.retry_dead(scope, id)
    }
    fn prune(&self, retention: Duration, dead_retention: Duration) -> Result<Pruned, StateError> {
        self.inner.prune(retention, dead_retention)
    }
    fn abandon(
        &self,
        scope: &str,
        live: &[String],
        older_than: Duration,
    ) -> Result<u64, StateError> {
        self.inner.abandon(scope, live, older_than)
    }
}
