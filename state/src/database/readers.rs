//! The read connections: at most [`MAX_READERS`] open at once, so that a
//! burst of reads (a plugin calling `KvGet` from hundreds of tasks) cannot
//! open a connection, with its own page cache, per blocking thread.

use std::path::Path;
use std::sync::{Condvar, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::{connect, lock};
use crate::StateError;

/// The most read connections open at once; a read beyond waits for one.
const MAX_READERS: usize = 8;

/// A bounded pool of read-only connections to one database.
#[derive(Debug, Default)]
pub(super) struct Readers {
    /// The idle connections, and how many exist (idle or in use).
    state: Mutex<Pool>,
    /// Signalled when a connection is handed back.
    returned: Condvar,
}

/// What [`Readers`] guards.
#[derive(Debug, Default)]
struct Pool {
    /// Connections not in use.
    idle: Vec<Connection>,
    /// Connections open, idle or in use.
    open: usize,
}

impl Readers {
    /// Runs `work` on a read connection to `path`: an idle one, a new one
    /// while fewer than [`MAX_READERS`] are open, or the next one handed back.
    pub(super) fn with<T>(
        &self,
        path: &Path,
        work: impl FnOnce(&Connection) -> T,
    ) -> Result<T, StateError> {
        let lease = Lease {
            readers: self,
            conn: Some(self.take(path)?),
        };
        Ok(work(lease.conn.as_ref().expect("held until dropped")))
    }

    /// A connection for this caller alone.
    fn take(&self, path: &Path) -> Result<Connection, StateError> {
        let mut pool = lock(&self.state);
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < MAX_READERS {
                pool.open += 1;
                drop(pool);
                return open(path).inspect_err(|_| {
                    lock(&self.state).open -= 1;
                    self.returned.notify_one();
                });
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// A connection taken from [`Readers`], handed back when dropped, also when
/// the work on it panicked (so that the pool never shrinks for good).
struct Lease<'a> {
    /// Where it goes back to.
    readers: &'a Readers,
    /// The connection; `None` only while being handed back.
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.readers.state).idle.push(conn);
            self.readers.returned.notify_one();
        }
    }
}

/// A new read connection: `query_only`, so that a bug in a read path
/// cannot write.
fn open(path: &Path) -> Result<Connection, StateError> {
    let conn = connect(path, OpenFlags::empty())?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|error| StateError::sqlite(path, error))?;
    Ok(conn)
}
