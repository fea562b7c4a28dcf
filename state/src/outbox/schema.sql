-- The events outbox (PROTOCOL.md §17.6): events as published, and one
-- delivery row per (event, subscriber) once the event has been fanned out.
-- A delivered delivery is deleted; a dead letter is a delivery with
-- `dead_since` set. Times are milliseconds since the Unix epoch.
CREATE TABLE outbox_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    time INTEGER NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    fanned_out INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX outbox_events_key
    ON outbox_events (scope, source, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX outbox_events_undistributed ON outbox_events (scope, seq) WHERE fanned_out = 0;
CREATE INDEX outbox_events_time ON outbox_events (time);
CREATE TABLE outbox_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event INTEGER NOT NULL REFERENCES outbox_events (seq) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    dead_since INTEGER,
    UNIQUE (event, subscriber)
) STRICT;
CREATE INDEX outbox_deliveries_due
    ON outbox_deliveries (scope, subscriber, next_attempt)
    WHERE dead_since IS NULL;
CREATE INDEX outbox_deliveries_dead ON outbox_deliveries (scope, id) WHERE dead_since IS NOT NULL;
