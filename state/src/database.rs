//! [`Database`]: the state directory's SQLite file and the connections to it.

mod readers;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::clock::{Clock, SystemClock};
use crate::migrations::{self, MigrateError};
use crate::{StateError, dir};
use readers::Readers;

/// How long a write waits for another process's write transaction (the
/// `outboard emit` of an operator, a second host on the same directory).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The state directory's database: `<dir>/state.db`, SQLite through
/// rusqlite (bundled), WAL, `synchronous=FULL` (a write survives a crash of
/// the process or the machine once its call returns), a busy timeout, and
/// foreign keys. The directory is created 0700 and refused if another user
/// owns it or others can write to it; the file is 0600.
///
/// Writes go through one connection, each in a `BEGIN IMMEDIATE`
/// transaction (SQLite serialises writers anyway; one connection means no
/// lock waits inside the process). Reads take a connection of their own from
/// a small bounded pool, and under WAL never wait for a writer.
#[derive(Debug)]
pub struct Database {
    /// The database file, named in every error.
    path: PathBuf,
    /// The connection every write goes through.
    writer: Mutex<Connection>,
    /// The read connections.
    readers: Readers,
    /// What expiry is checked against.
    clock: Arc<dyn Clock>,
    /// Writes so far, to reclaim expired keys every so many.
    writes: AtomicU64,
}

/// A failure inside a transaction: an SQLite error (classified with the
/// file's path once it leaves the transaction) or a refusal of our own.
#[derive(Debug)]
pub(crate) enum Fail {
    /// SQLite failed.
    Sql(rusqlite::Error),
    /// The operation was refused.
    State(StateError),
}

impl From<rusqlite::Error> for Fail {
    fn from(error: rusqlite::Error) -> Fail {
        Fail::Sql(error)
    }
}

impl From<StateError> for Fail {
    fn from(error: StateError) -> Fail {
        Fail::State(error)
    }
}

impl Database {
    /// Opens (creating if needed) `<dir>/state.db` and brings its schema up
    /// to date. Expiry is checked against the system clock.
    pub fn open(dir: &Path) -> Result<Database, StateError> {
        Database::open_with_clock(dir, Arc::new(SystemClock))
    }

    /// [`Database::open`] with expiry checked against `clock` (tests).
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<Database, StateError> {
        let path = dir::prepare(dir)?;
        let mut writer = connect(&path, OpenFlags::SQLITE_OPEN_CREATE)?;
        // WAL is a property of the file: set once, by the writer, before any
        // reader opens it.
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|error| StateError::sqlite(&path, error))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Unsafe {
                path,
                reason: format!(
                    "cannot use write-ahead logging (journal mode stays {mode}); put the state directory on a local file system"
                ),
            });
        }
        migrations::run(&mut writer).map_err(|error| match error {
            MigrateError::TooNew(found) => StateError::TooNew {
                path: path.clone(),
                found,
                known: migrations::latest(),
            },
            MigrateError::Step(step, error) => match StateError::sqlite(&path, error) {
                StateError::Sqlite { path, source } => StateError::Migration { path, step, source },
                classified => classified,
            },
        })?;
        Ok(Database {
            path,
            writer: Mutex::new(writer),
            readers: Readers::default(),
            clock,
            writes: AtomicU64::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current time of the database's clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Counts a write; `true` every `every`th, for periodic housekeeping.
    pub(crate) fn tick(&self, every: u64) -> bool {
        self.writes.fetch_add(1, Ordering::Relaxed) % every == every - 1
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction and commits it: all of
    /// it is durable when this returns `Ok`, none of it when `Err`.
    pub(crate) fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, Fail>,
    ) -> Result<T, StateError> {
        let mut conn = lock(&self.writer);
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|fail| self.error(fail))
    }

    /// Runs `work` on a read connection. It sees the last committed state
    /// and waits for no writer.
    pub(crate) fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, StateError> {
        self.readers
            .with(&self.path, work)?
            .map_err(|fail| self.error(fail))
    }

    /// A [`Fail`] as the caller sees it, naming the file.
    fn error(&self, fail: Fail) -> StateError {
        match fail {
            Fail::Sql(error) => StateError::sqlite(&self.path, error),
            Fail::State(error) => error,
        }
    }

    /// Runs `work` on the write connection outside any transaction (tests
    /// that need a pragma on it, such as a page cap to fill the "disk").
    #[cfg(test)]
    pub(crate) fn with_writer<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        work(&lock(&self.writer))
    }
}

/// Opens a connection to `path` with the per-connection settings: never
/// through a symlink, `synchronous=FULL`, the busy timeout, foreign keys.
fn connect(path: &Path, extra: OpenFlags) -> Result<Connection, StateError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | extra;
    let fail = |error| StateError::sqlite(path, error);
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(fail)?;
    Ok(conn)
}

/// Locks `mutex`, carrying on after a panic elsewhere: a connection whose
/// transaction was interrupted has rolled it back and is fine to reuse.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
