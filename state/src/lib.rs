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
//! No dependency on the host or on gRPC: callers map [`StateError`] to their
//! own errors, and run these synchronous calls off their async threads.

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
    Claimed, DeadLetter, NewEvent, Outbox, Outcome, Pruned, Published, StoredEvent, Undistributed,
};
