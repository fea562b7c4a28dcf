//! [`KvStore`] on the state [`Database`].
//!
//! Keys are stored as BLOBs so that SQLite orders them by bytes (§17.4's
//! "ascending byte order") and a prefix is a byte range. `kv_usage` keeps
//! each namespace's bytes (keys plus values of every row, expired or not),
//! maintained by triggers so that no write path can forget it; a write that
//! would pass the limit first reclaims the namespace's expired rows, so that
//! those never count against it.

use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    CasResult, Expected, KvEntry, KvLimits, KvPage, KvStore, PageRequest, check_key, token,
};
use crate::StateError;
use crate::clock::{from_millis, to_millis};
use crate::database::{Database, Fail};

/// The `kv` schema step (see `migrations`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE kv (
    ns TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    -- milliseconds since the Unix epoch; NULL = never expires
    expires INTEGER,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE INDEX kv_expires ON kv (expires) WHERE expires IS NOT NULL;
CREATE TABLE kv_usage (ns TEXT PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv BEGIN
    INSERT INTO kv_usage (ns, bytes) VALUES (new.ns, length(new.key) + length(new.value))
        ON CONFLICT (ns) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER kv_usage_delete AFTER DELETE ON kv BEGIN
    UPDATE kv_usage SET bytes = bytes - length(old.key) - length(old.value) WHERE ns = old.ns;
END;
CREATE TRIGGER kv_usage_update AFTER UPDATE ON kv BEGIN
    UPDATE kv_usage SET bytes = bytes - length(old.key) - length(old.value) WHERE ns = old.ns;
    INSERT INTO kv_usage (ns, bytes) VALUES (new.ns, length(new.key) + length(new.value))
        ON CONFLICT (ns) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
";

/// Every this many writes, a write also reclaims some expired rows.
const RECLAIM_EVERY: u64 = 256;
/// How many expired rows a periodic reclaim removes at most, to keep that
/// write's transaction short.
const RECLAIM_BATCH: i64 = 512;

impl KvStore for Database {
    fn get(&self, ns: &str, key: &str) -> Result<Option<KvEntry>, StateError> {
        check_key("key", key)?;
        let now = to_millis(self.now());
        self.read(|conn| {
            Ok(live(conn, ns, key, now)?.map(|(value, expires)| KvEntry {
                key: key.to_string(),
                value,
                expires: expires.map(from_millis),
            }))
        })
    }

    fn set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        limits: &KvLimits,
    ) -> Result<(), StateError> {
        check_key("key", key)?;
        check_value(ns, value, limits)?;
        let now = self.now();
        self.write(|tx| {
            self.housekeep(tx, now)?;
            put(tx, ns, key, value, expiry(now, ttl), to_millis(now), limits)
        })
    }

    fn delete(&self, ns: &str, key: &str) -> Result<bool, StateError> {
        check_key("key", key)?;
        let now = to_millis(self.now());
        self.write(|tx| {
            let removed: Option<Option<i64>> = tx
                .query_row(
                    "DELETE FROM kv WHERE ns = ?1 AND key = ?2 RETURNING expires",
                    params![ns, key.as_bytes()],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(removed.is_some_and(|expires| is_live(expires, now)))
        })
    }

    fn list(&self, ns: &str, prefix: &str, page: &PageRequest) -> Result<KvPage, StateError> {
        check_key("prefix", prefix)?;
        let after = match &page.after {
            Some(next) => Some(token::decode(ns, prefix, next)?),
            None => None,
        };
        let now = to_millis(self.now());
        self.read(|conn| list_page(conn, ns, prefix, after.as_deref(), page, now))
    }

    fn compare_and_set(
        &self,
        ns: &str,
        key: &str,
        expected: Expected<'_>,
        value: &[u8],
        ttl: Option<Duration>,
        limits: &KvLimits,
    ) -> Result<CasResult, StateError> {
        check_key("key", key)?;
        check_value(ns, value, limits)?;
        let now = self.now();
        self.write(|tx| {
            self.housekeep(tx, now)?;
            let current = live(tx, ns, key, to_millis(now))?.map(|(value, _)| value);
            let holds = match expected {
                Expected::Value(bytes) => current.as_deref() == Some(bytes),
                Expected::Absent => current.is_none(),
            };
            if !holds {
                return Ok(CasResult::Mismatch { current });
            }
            put(tx, ns, key, value, expiry(now, ttl), to_millis(now), limits)?;
            Ok(CasResult::Swapped)
        })
    }
}

impl Database {
    /// Removes every expired key now, and returns how many. Writes also do
    /// this a batch at a time, so calling it is optional.
    pub fn reclaim_expired(&self) -> Result<u64, StateError> {
        let now = to_millis(self.now());
        self.write(|tx| {
            let removed = tx.execute(
                "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?1",
                [now],
            )?;
            Ok(removed as u64)
        })
    }

    /// Every [`RECLAIM_EVERY`]th set or compare-and-set also removes a batch of expired rows,
    /// so that keys nobody reads again do not stay on disk for ever.
    fn housekeep(&self, tx: &Transaction<'_>, now: SystemTime) -> Result<(), Fail> {
        if self.tick(RECLAIM_EVERY) {
            tx.execute(
                "DELETE FROM kv WHERE (ns, key) IN (SELECT ns, key FROM kv
                     WHERE expires IS NOT NULL AND expires <= ?1 LIMIT ?2)",
                params![to_millis(now), RECLAIM_BATCH],
            )?;
        }
        Ok(())
    }
}

/// The expiry of a write made at `now` with `ttl`: none or zero never
/// expires, and neither does one too far away to represent.
fn expiry(now: SystemTime, ttl: Option<Duration>) -> Option<i64> {
    ttl.filter(|ttl| !ttl.is_zero())
        .and_then(|ttl| now.checked_add(ttl))
        .map(to_millis)
}

/// Whether a row expiring at `expires` is live at `now`.
fn is_live(expires: Option<i64>, now: i64) -> bool {
    expires.is_none_or(|expires| expires > now)
}

/// A stored value and its expiry in milliseconds since the epoch.
type Stored = (Vec<u8>, Option<i64>);

/// The live value and expiry of `key`, if any.
fn live(conn: &Connection, ns: &str, key: &str, now: i64) -> Result<Option<Stored>, Fail> {
    let row = conn
        .prepare_cached(
            "SELECT value, expires FROM kv WHERE ns = ?1 AND key = ?2
                 AND (expires IS NULL OR expires > ?3)",
        )?
        .query_row(params![ns, key.as_bytes(), now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    Ok(row)
}

/// Refuses a value over the size limit, whatever the key holds (so also a
/// compare-and-set that would not have swapped).
fn check_value(ns: &str, value: &[u8], limits: &KvLimits) -> Result<(), StateError> {
    if value.len() > limits.value_size {
        return Err(limit(ns, "kv value size", limits.value_size as u64));
    }
    Ok(())
}

/// Writes `key` after checking the namespace's total, unless the write does
/// not grow the key's live size.
fn put(
    tx: &Transaction<'_>,
    ns: &str,
    key: &str,
    value: &[u8],
    expires: Option<i64>,
    now: i64,
    limits: &KvLimits,
) -> Result<(), Fail> {
    let new = (key.len() + value.len()) as u64;
    let (stored, live_size) = stored_size(tx, ns, key, now)?;
    if new > live_size {
        let mut total = usage(tx, ns)?.saturating_sub(stored) + new;
        if total > limits.namespace_total {
            // Expired rows take space until reclaimed, but must not count.
            tx.execute(
                "DELETE FROM kv WHERE ns = ?1 AND expires IS NOT NULL AND expires <= ?2",
                params![ns, now],
            )?;
            let (stored, _) = stored_size(tx, ns, key, now)?;
            total = usage(tx, ns)?.saturating_sub(stored) + new;
        }
        if total > limits.namespace_total {
            return Err(limit(ns, "kv namespace total", limits.namespace_total).into());
        }
    }
    tx.prepare_cached(
        "INSERT INTO kv (ns, key, value, expires) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
    )?
    .execute(params![ns, key.as_bytes(), value, expires])?;
    Ok(())
}

/// The bytes `key`'s row takes in the namespace's usage (0 when absent),
/// and the same counting only a live row.
fn stored_size(tx: &Transaction<'_>, ns: &str, key: &str, now: i64) -> Result<(u64, u64), Fail> {
    let row: Option<(i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT length(key) + length(value), expires FROM kv WHERE ns = ?1 AND key = ?2",
        )?
        .query_row(params![ns, key.as_bytes()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    Ok(match row {
        Some((size, expires)) => {
            let size = u64::try_from(size).unwrap_or(0);
            (size, if is_live(expires, now) { size } else { 0 })
        }
        None => (0, 0),
    })
}

/// The namespace's bytes, expired rows included.
fn usage(tx: &Transaction<'_>, ns: &str) -> Result<u64, Fail> {
    let bytes: Option<i64> = tx
        .prepare_cached("SELECT bytes FROM kv_usage WHERE ns = ?1")?
        .query_row([ns], |row| row.get(0))
        .optional()?;
    Ok(bytes.map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0)))
}

/// A [`StateError::Limit`] for `ns`.
fn limit(ns: &str, name: &'static str, value: u64) -> StateError {
    StateError::Limit {
        limit: name,
        value,
        namespace: ns.to_string(),
    }
}

/// One page of the live keys of `ns` starting with `prefix`, after `after`.
fn list_page(
    conn: &Connection,
    ns: &str,
    prefix: &str,
    after: Option<&str>,
    page: &PageRequest,
    now: i64,
) -> Result<KvPage, Fail> {
    let size = page.effective_size();
    let max_bytes = page.effective_bytes();
    // One byte range [lower, upper) so that SQLite seeks straight to the
    // page's first key: after the previous page's last key (that key plus a
    // zero byte is the least key greater than it), or at the prefix. No
    // UTF-8 key contains 0xFF, so [0xFF] bounds a listing of everything.
    let lower = match after {
        Some(last) => [last.as_bytes(), &[0]].concat(),
        None => prefix.as_bytes().to_vec(),
    };
    let upper = successor(prefix.as_bytes()).unwrap_or_else(|| vec![u8::MAX]);
    let mut stmt = conn.prepare_cached(
        "SELECT key, CASE WHEN ?5 THEN x'' ELSE value END, expires FROM kv
             WHERE ns = ?1 AND key >= ?2 AND key < ?3 AND (expires IS NULL OR expires > ?4)
             ORDER BY key LIMIT ?6",
    )?;
    let fetch = i64::try_from(size + 1).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![ns, lower, upper, now, page.keys_only, fetch])?;
    let mut entries: Vec<KvEntry> = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    while let Some(row) = rows.next()? {
        let key: Vec<u8> = row.get(0)?;
        let value: Vec<u8> = row.get(1)?;
        let cost = key.len() + value.len();
        if entries.len() == size || (!entries.is_empty() && bytes + cost > max_bytes) {
            more = true;
            break;
        }
        bytes += cost;
        entries.push(KvEntry {
            key: String::from_utf8_lossy(&key).into_owned(),
            value,
            expires: row.get::<_, Option<i64>>(2)?.map(from_millis),
        });
    }
    let next = match entries.last() {
        Some(last) if more => Some(token::encode(ns, prefix, &last.key)),
        _ => None,
    };
    Ok(KvPage { entries, next })
}

/// The smallest byte string greater than every string starting with
/// `prefix`; `None` when there is none (empty or all 0xFF).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}
