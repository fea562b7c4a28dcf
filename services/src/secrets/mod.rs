//! Secrets a plugin may read with `GetSecret`: the operator's
//! `[secrets.NAME]` sources, resolved lazily (owned by the `secrets` work;
//! until it lands `GetSecret` answers `UNIMPLEMENTED`).
