-- What each source keeps in the outbox (PROTOCOL.md §17.5 `event outbox per
-- plugin`): payload bytes plus a fixed overhead per event, maintained by
-- triggers so that no write path can forget it. The overhead (256) is
-- `EVENT_OVERHEAD_BYTES` in `outbox/mod.rs`.
CREATE TABLE outbox_usage (
    scope TEXT NOT NULL,
    source TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (scope, source)
) WITHOUT ROWID, STRICT;
INSERT INTO outbox_usage (scope, source, bytes)
    SELECT scope, source, SUM(length(CAST(payload AS BLOB)) + 256)
    FROM outbox_events GROUP BY scope, source;
CREATE TRIGGER outbox_usage_insert AFTER INSERT ON outbox_events BEGIN
    INSERT INTO outbox_usage (scope, source, bytes)
        VALUES (new.scope, new.source, length(CAST(new.payload AS BLOB)) + 256)
        ON CONFLICT (scope, source) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER outbox_usage_delete AFTER DELETE ON outbox_events BEGIN
    UPDATE outbox_usage SET bytes = bytes - length(CAST(old.payload AS BLOB)) - 256
        WHERE scope = old.scope AND source = old.source;
END;
