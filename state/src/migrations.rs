//! The schema, versioned with `PRAGMA user_version`: step N of [`STEPS`]
//! brings the database from version N-1 to N, in one transaction.
//!
//! **Adding a step** (a new table, an index, a module's own tables): append
//! one line to [`STEPS`] naming the SQL, kept beside the module that owns it
//! (`kv::SCHEMA`; the outbox adds `crate::outbox::SCHEMA`). Never edit,
//! reorder or remove a step that has shipped: databases in the field have
//! run it, and a changed step would leave them different from new ones.
//! Change a shipped table with a new step (`ALTER TABLE ...`) instead.

use rusqlite::{Connection, TransactionBehavior};

use crate::kv;

/// One schema step.
#[derive(Debug)]
pub(crate) struct Step {
    /// What it does, for error messages.
    pub(crate) name: &'static str,
    /// The SQL, run as one batch inside the step's transaction.
    pub(crate) sql: &'static str,
}

/// Every step, oldest first. Append only (see the module's documentation).
pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "kv",
        sql: kv::SCHEMA,
    },
    Step {
        name: "outbox",
        sql: crate::outbox::SCHEMA,
    },
    Step {
        name: "outbox usage",
        sql: crate::outbox::USAGE,
    },
];

/// The schema version of a fully migrated database.
pub(crate) fn latest() -> i64 {
    i64::try_from(STEPS.len()).unwrap_or(i64::MAX)
}

/// What went wrong while migrating.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The file's version is newer than [`latest`].
    TooNew(i64),
    /// A step failed; the database stays at the version before it.
    Step(&'static str, rusqlite::Error),
}

/// Brings the database up to [`latest`]. Each step runs in its own
/// `BEGIN IMMEDIATE` transaction that re-reads the version first, so two
/// processes opening the same fresh database never run a step twice.
pub(crate) fn run(conn: &mut Connection) -> Result<(), MigrateError> {
    let current = version(conn).map_err(|error| MigrateError::Step("read version", error))?;
    if current > latest() {
        return Err(MigrateError::TooNew(current));
    }
    for (index, step) in STEPS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let target = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let fail = |error| MigrateError::Step(step.name, error);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        if version(&tx).map_err(fail)? >= target {
            continue;
        }
        tx.execute_batch(step.sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", target)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

/// The database's `user_version`.
fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}
