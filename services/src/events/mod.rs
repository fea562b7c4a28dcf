//! Events: `Publish`, the outbox, fan-out and delivery to subscribers
//! (owned by the `events` work; until it lands `Publish` answers
//! `UNIMPLEMENTED`).
