//! [`Outbox`] on the state [`Database`]: every call one transaction (writes
//! through the writer's `BEGIN IMMEDIATE`, so a claim and its attempt count
//! are atomic against every other process on the file).

use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{
    Claimed, DeadLetter, EVENT_OVERHEAD_BYTES, NewEvent, Outbox, Outcome, Pruned, Published,
    StoredEvent, Undistributed,
};
use crate::clock::{from_millis, to_millis};
use crate::database::Fail;
use crate::{Database, StateError};

/// A count or limit as SQLite's integer.
fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A duration in milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An attempt count as stored.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Outbox for Database {
    fn publish(&self, event: &NewEvent<'_>) -> Result<Published, StateError> {
        let now = to_millis(self.now());
        self.write(|tx| {
            if let Some(key) = event.idempotency_key {
                let first: Option<String> = tx
                    .query_row(
                        "SELECT id FROM outbox_events \
                         WHERE scope = ?1 AND source = ?2 AND idempotency_key = ?3",
                        params![event.scope, event.source, key],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(id) = first {
                    return Ok(Published {
                        id,
                        duplicate: true,
                    });
                }
            }
            if let Some(quota) = event.quota {
                check_quota(tx, event, quota)?;
            }
            tx.execute(
                "INSERT INTO outbox_events \
                 (id, scope, name, source, time, payload, idempotency_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    event.id,
                    event.scope,
                    event.name,
                    event.source,
                    now,
                    event.payload,
                    event.idempotency_key
                ],
            )?;
            Ok(Published {
                id: event.id.to_owned(),
                duplicate: false,
            })
        })
    }

    fn undistributed(&self, scope: &str, limit: usize) -> Result<Vec<Undistributed>, StateError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, name FROM outbox_events \
                 WHERE scope = ?1 AND fanned_out = 0 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![scope, int(limit)], |row| {
                Ok(Undistributed {
                    seq: row.get(0)?,
                    name: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn fan_out(&self, scope: &str, seq: i64, subscribers: &[&str]) -> Result<bool, StateError> {
        let now = to_millis(self.now());
        self.write(|tx| {
            let marked = tx.execute(
                "UPDATE outbox_events SET fanned_out = 1 \
                 WHERE seq = ?1 AND scope = ?2 AND fanned_out = 0",
                params![seq, scope],
            )?;
            if marked == 0 {
                return Ok(false);
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox_deliveries (event, scope, subscriber, next_attempt) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for subscriber in subscribers {
                insert.execute(params![seq, scope, subscriber, now])?;
            }
            Ok(true)
        })
    }

    fn claim(
        &self,
        scope: &str,
        subscriber: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StateError> {
        let now = to_millis(self.now());
        let until = now.saturating_add(millis(lease));
        self.write(|tx| {
            let claimed: Option<(i64, i64, i64)> = tx
                .query_row(
                    "UPDATE outbox_deliveries \
                     SET attempts = attempts + 1, lease_owner = ?3, lease_until = ?5 \
                     WHERE id = (SELECT id FROM outbox_deliveries \
                         WHERE scope = ?1 AND subscriber = ?2 AND dead_since IS NULL \
                         AND next_attempt <= ?4 AND (lease_until IS NULL OR lease_until <= ?4) \
                         ORDER BY next_attempt, id LIMIT 1) \
                     RETURNING id, event, attempts",
                    params![scope, subscriber, owner, now, until],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let Some((delivery, seq, attempts)) = claimed else {
                return Ok(None);
            };
            Ok(Some(Claimed {
                delivery,
                attempt: count(attempts),
                event: event_of(tx, seq)?,
            }))
        })
    }

    fn next_due(&self, scope: &str, subscriber: &str) -> Result<Option<SystemTime>, StateError> {
        self.read(|conn| {
            let due: Option<i64> = conn.query_row(
                "SELECT MIN(MAX(next_attempt, COALESCE(lease_until, 0))) FROM outbox_deliveries \
                 WHERE scope = ?1 AND subscriber = ?2 AND dead_since IS NULL",
                params![scope, subscriber],
                |row| row.get(0),
            )?;
            Ok(due.map(from_millis))
        })
    }

    fn settle(&self, delivery: i64, owner: &str, outcome: &Outcome) -> Result<bool, StateError> {
        let now = to_millis(self.now());
        self.write(|tx| {
            let changed = match outcome {
                Outcome::Delivered => tx.execute(
                    "DELETE FROM outbox_deliveries WHERE id = ?1 AND lease_owner = ?2",
                    params![delivery, owner],
                )?,
                Outcome::Retry { at, error } => tx.execute(
                    "UPDATE outbox_deliveries SET next_attempt = ?3, last_error = ?4, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
                    params![delivery, owner, to_millis(*at), error],
                )?,
                Outcome::Dead { error } => tx.execute(
                    "UPDATE outbox_deliveries SET dead_since = ?3, last_error = ?4, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
                    params![delivery, owner, now, error],
                )?,
            };
            Ok(changed == 1)
        })
    }

    fn lease_owners(&self, scope: &str) -> Result<Vec<String>, StateError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT lease_owner FROM outbox_deliveries \
                 WHERE scope = ?1 AND lease_owner IS NOT NULL",
            )?;
            let rows = stmt.query_map(params![scope], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn release(&self, owner: &str) -> Result<u64, StateError> {
        self.write(|tx| {
            let released = tx.execute(
                "UPDATE outbox_deliveries SET lease_owner = NULL, lease_until = NULL \
                 WHERE lease_owner = ?1",
                params![owner],
            )?;
            Ok(released as u64)
        })
    }

    fn dead_letters(
        &self,
        scope: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT d.id, e.id, e.name, d.subscriber, d.attempts, \
                 COALESCE(d.last_error, ''), d.dead_since \
                 FROM outbox_deliveries d JOIN outbox_events e ON e.seq = d.event \
                 WHERE d.scope = ?1 AND d.dead_since IS NOT NULL AND d.id > ?2 \
                 ORDER BY d.id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![scope, after, int(limit)], dead_letter)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn retry_dead(&self, scope: &str, id: Option<i64>) -> Result<u64, StateError> {
        let now = to_millis(self.now());
        self.write(|tx| {
            let retried = tx.execute(
                "UPDATE outbox_deliveries SET dead_since = NULL, attempts = 0, next_attempt = ?2 \
                 WHERE scope = ?1 AND dead_since IS NOT NULL AND (?3 IS NULL OR id = ?3)",
                params![scope, now, id],
            )?;
            Ok(retried as u64)
        })
    }

    fn prune(&self, retention: Duration, dead_retention: Duration) -> Result<Pruned, StateError> {
        let now = to_millis(self.now());
        self.write(|tx| {
            let dead_letters = tx.execute(
                "DELETE FROM outbox_deliveries WHERE dead_since IS NOT NULL AND dead_since < ?1",
                params![now.saturating_sub(millis(dead_retention))],
            )?;
            let events = tx.execute(
                "DELETE FROM outbox_events WHERE fanned_out = 1 AND time < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event = seq)",
                params![now.saturating_sub(millis(retention))],
            )?;
            Ok(Pruned {
                events: events as u64,
                dead_letters: dead_letters as u64,
            })
        })
    }

    fn abandon(
        &self,
        scope: &str,
        live: &[String],
        older_than: Duration,
    ) -> Result<u64, StateError> {
        let now = to_millis(self.now());
        let live = serde_json::to_string(live).unwrap_or_else(|_| "[]".to_owned());
        self.write(|tx| {
            let abandoned = tx.execute(
                "UPDATE outbox_deliveries SET dead_since = ?1, \
                 last_error = 'its subscriber is no longer in the configuration' \
                 WHERE scope = ?2 AND dead_since IS NULL \
                 AND (lease_until IS NULL OR lease_until < ?1) \
                 AND subscriber NOT IN (SELECT value FROM json_each(?3)) \
                 AND event IN (SELECT seq FROM outbox_events WHERE time < ?4)",
                params![now, scope, live, now.saturating_sub(millis(older_than))],
            )?;
            Ok(abandoned as u64)
        })
    }
}

/// Refuses `event` when its source would keep more than `quota` bytes in
/// the scope's outbox (a plugin publishing until the disk is full).
fn check_quota(tx: &Transaction<'_>, event: &NewEvent<'_>, quota: u64) -> Result<(), Fail> {
    let kept: Option<i64> = tx
        .prepare_cached("SELECT bytes FROM outbox_usage WHERE scope = ?1 AND source = ?2")?
        .query_row(params![event.scope, event.source], |row| row.get(0))
        .optional()?;
    let kept = kept.map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0));
    let cost = (event.payload.len() + EVENT_OVERHEAD_BYTES) as u64;
    if kept.saturating_add(cost) > quota {
        return Err(StateError::Limit {
            limit: "event outbox per plugin",
            value: quota,
            namespace: event.source.to_owned(),
        }
        .into());
    }
    Ok(())
}

/// Event row `seq`.
fn event_of(tx: &Transaction<'_>, seq: i64) -> Result<StoredEvent, Fail> {
    Ok(tx.query_row(
        "SELECT id, name, source, time, payload FROM outbox_events WHERE seq = ?1",
        params![seq],
        |row| {
            Ok(StoredEvent {
                id: row.get(0)?,
                name: row.get(1)?,
                source: row.get(2)?,
                time: from_millis(row.get(3)?),
                payload: row.get(4)?,
            })
        },
    )?)
}

/// A dead letter from its row.
fn dead_letter(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        event_id: row.get(1)?,
        event: row.get(2)?,
        subscriber: row.get(3)?,
        attempts: count(row.get(4)?),
        last_error: row.get(5)?,
        time: from_millis(row.get(6)?),
    })
}
