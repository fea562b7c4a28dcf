//! The events outbox (PROTOCOL.md §17.6): published events, their
//! deliveries to subscribers, and the dead letters, on the state
//! [`Database`](crate::Database) behind the [`Outbox`] trait.
//!
//! - An event is stored, committed under `synchronous=FULL`, before
//!   [`Outbox::publish`] returns: a publisher that got an id never loses it.
//! - Everything carries a *scope*, the identity of the host that publishes
//!   and delivers (its config file's canonical path, or a name): two hosts
//!   with different configurations sharing one state directory never
//!   deliver each other's events.
//! - Within a scope, two processes never run the same delivery at once: a
//!   process [claims](Outbox::claim) a delivery under a lease in the same
//!   transaction that counts the attempt, and a crashed process's leases
//!   run out, after which another (or the restarted one) claims it again.
//! - Attempts are counted when claimed, so they count across restarts.

mod sqlite;

use std::time::{Duration, SystemTime};

use crate::StateError;

/// The outbox's tables: one migration step.
pub(crate) const SCHEMA: &str = include_str!("schema.sql");

/// The schema step that counts what each source keeps (`usage.sql`).
pub(crate) const USAGE: &str = include_str!("usage.sql");

/// What one event costs its source's quota beyond its payload: its id,
/// name, source, indexes and delivery rows (`usage.sql` says the same).
pub const EVENT_OVERHEAD_BYTES: usize = 256;

/// An event to store.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The event's id, unique (the caller makes it: a random UUID).
    pub id: &'a str,
    /// The publishing host's scope.
    pub scope: &'a str,
    /// The event's name (checked by the caller).
    pub name: &'a str,
    /// `host`, `operator` or `plugin:<instance name>`.
    pub source: &'a str,
    /// The payload's JSON text.
    pub payload: &'a str,
    /// With a key: a second event of the same scope and source with the same
    /// key, while the first is kept, is not stored.
    pub idempotency_key: Option<&'a str>,
    /// The most bytes (payloads plus [`EVENT_OVERHEAD_BYTES`] each) the
    /// source may keep in the scope's outbox, this event included; `None`
    /// for no bound. Past it nothing is stored and [`Outbox::publish`]
    /// fails with [`StateError::Limit`] `event outbox per plugin`.
    pub quota: Option<u64>,
}

/// What [`Outbox::publish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stored event's id: the new one, or the first one's for a
    /// duplicate.
    pub id: String,
    /// True if the idempotency key had been used: nothing was stored.
    pub duplicate: bool,
}

/// A stored event, as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's id.
    pub id: String,
    /// The event's name.
    pub name: String,
    /// Who published it.
    pub source: String,
    /// When it was published.
    pub time: SystemTime,
    /// The payload's JSON text.
    pub payload: String,
}

/// An event not yet fanned out to its subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undistributed {
    /// The event's row, for [`Outbox::fan_out`].
    pub seq: i64,
    /// The event's name, to match against subscriptions.
    pub name: String,
}

/// A delivery claimed by one process, under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The delivery's id, for [`Outbox::settle`].
    pub delivery: i64,
    /// This attempt's number: 1 for the first.
    pub attempt: u32,
    /// The event to deliver.
    pub event: StoredEvent,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The subscriber took it: the delivery is done.
    Delivered,
    /// It failed; try again at `at`.
    Retry {
        /// When the next attempt is due.
        at: SystemTime,
        /// What went wrong, for the dead-letter list.
        error: String,
    },
    /// It failed for the last time: a dead letter.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// A delivery that ran out of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's id (the delivery's).
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's name.
    pub event: String,
    /// The subscriber.
    pub subscriber: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
    /// When it was given up.
    pub time: SystemTime,
}

/// What [`Outbox::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Delivered (or unsubscribed) events older than the retention.
    pub events: u64,
    /// Dead letters older than theirs.
    pub dead_letters: u64,
}

/// Everything the events service needs of a store: object-safe, `Send +
/// Sync`, synchronous (callers run it with `spawn_blocking`). Each call is
/// one transaction; times are the database clock's.
pub trait Outbox: Send + Sync + 'static {
    /// Stores an event durably (or finds the first of its idempotency key).
    fn publish(&self, event: &NewEvent<'_>) -> Result<Published, StateError>;

    /// Up to `limit` events of `scope` not yet fanned out, oldest first.
    fn undistributed(&self, scope: &str, limit: usize) -> Result<Vec<Undistributed>, StateError>;

    /// Creates one delivery per subscriber of event `seq`, due now, and marks
    /// the event fanned out, in one transaction. False if another process
    /// had fanned it out already (then nothing is written).
    fn fan_out(&self, scope: &str, seq: i64, subscribers: &[&str]) -> Result<bool, StateError>;

    /// Claims the next due delivery of `subscriber` in `scope` whose lease
    /// is free or ran out: counts the attempt and leases it to `owner` for
    /// `lease`.
    fn claim(
        &self,
        scope: &str,
        subscriber: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StateError>;

    /// When `subscriber`'s next delivery in `scope` becomes claimable (due
    /// and its lease free); `None` if it has none pending.
    fn next_due(&self, scope: &str, subscriber: &str) -> Result<Option<SystemTime>, StateError>;

    /// Records how `owner`'s attempt at `delivery` ended. False if the lease
    /// had run out and another process claimed it (nothing is written).
    fn settle(&self, delivery: i64, owner: &str, outcome: &Outcome) -> Result<bool, StateError>;

    /// The owners holding leases in `scope` now (expired ones included), so
    /// that a starting host can release those of processes it knows dead.
    fn lease_owners(&self, scope: &str) -> Result<Vec<String>, StateError>;

    /// Gives up every lease `owner` holds (a stopping host whose in-flight
    /// deliveries did not finish): they are claimable again at once, their
    /// attempts counted.
    fn release(&self, owner: &str) -> Result<u64, StateError>;

    /// Up to `limit` dead letters of `scope` with ids above `after`, in id
    /// order.
    fn dead_letters(
        &self,
        scope: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError>;

    /// Puts dead letter `id` (or, with `None`, every dead letter of `scope`)
    /// back to be delivered now, attempts counted afresh. The number put
    /// back.
    fn retry_dead(&self, scope: &str, id: Option<i64>) -> Result<u64, StateError>;

    /// Removes events older than `retention` that have no delivery left,
    /// and dead letters older than `dead_retention`, across scopes.
    fn prune(&self, retention: Duration, dead_retention: Duration) -> Result<Pruned, StateError>;

    /// Makes dead letters of the pending deliveries of `scope` whose
    /// subscriber is none of `live` (a plugin removed from the
    /// configuration) and whose event is older than `older_than`, unless
    /// leased: otherwise they, and their events, would be kept for ever.
    /// As dead letters the operator sees them, may retry them once the
    /// plugin is back, and they are pruned after their own retention. The
    /// number made dead.
    fn abandon(
        &self,
        scope: &str,
        live: &[String],
        older_than: Duration,
    ) -> Result<u64, StateError>;
}
