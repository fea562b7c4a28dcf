//! Outboard's durable state: the state directory's SQLite database
//! ([`Database`]) and the key-value store of host services ([`KvStore`]).
//!
//! Layout:
//! - `dir`: the state directory and file, created private, refused when unsafe.
//! - `database`: [`Database`], its connections and transactions.
//! - `migrations`: the schema steps, one line each (how to add one is there).
//! - `kv`: the [`KvStore`] trait, its types, and the SQLite backend.
//! - `outbox`: the events outbox ([`Outbox`]): events, deliveries under
//!   leases, dead letters.
//! - `clock`: the wall clock expiry is checked against, injectable for tests.
//! - `error`: [`StateError`].
//!
//! A module with tables of its own (the events outbox, `outbox/`) adds its
//! schema as one line in `migrations::STEPS` and runs its statements through
//! `Database::write` (one `BEGIN IMMEDIATE` transaction, durable on return)
//! and `Database::read` (a pooled read connection that never waits for a
//! writer), both crate-private.
//!
//! No dependency on the host or on gRPC: callers map [`StateError`] to their
//! own errors (a gRPC server: [`StateError::Limit`] is `RESOURCE_EXHAUSTED`,
//! [`StateError::InvalidToken`] and [`StateError::Invalid`] are
//! `INVALID_ARGUMENT`, everything else is `UNAVAILABLE`), and run these
//! synchronous calls off their async threads (`spawn_blocking`).

mod clock;
mod database;
mod dir;
mod error;
mod kv;
mod migrations;
mod outbox;

pub use clock::{Clock, ManualClock, SystemClock};
pub use database::Database;
pub use dir::DB_FILE;
pub use error::StateError;
pub use kv::{CasResult, Expected, KvEntry, KvLimits, KvPage, KvStore, MAX_KEY_BYTES, PageRequest};
pub use outbox::{
    Claimed, DeadLetter, EVENT_OVERHEAD_BYTES, NewEvent, Outbox, Outcome, Pruned, Published,
    StoredEvent, Undistributed,
};
