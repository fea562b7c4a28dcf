//! The key-value store of host services (PROTOCOL.md §17.4): the types and
//! the [`KvStore`] trait every backend implements, and the SQLite backend.

mod sqlite;
mod token;

pub(crate) use sqlite::SCHEMA;

use std::time::{Duration, SystemTime};

use crate::StateError;

/// The longest key or prefix, in bytes: a rule of the protocol (§17.5).
pub const MAX_KEY_BYTES: usize = 512;

/// Everything a backend must do for KV: object-safe, `Send + Sync`, and
/// synchronous (async callers use `tokio::task::spawn_blocking`). Namespaces
/// are opaque strings to the store.
pub trait KvStore: Send + Sync + 'static {
    /// The live value of `key` in `ns`; `None` when missing or expired.
    fn get(&self, ns: &str, key: &str) -> Result<Option<KvEntry>, StateError>;
    /// Writes `key`, durably once this returns. `ttl` `None` or zero: never
    /// expires. Refused with [`StateError::Limit`] past `limits`.
    fn set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        limits: &KvLimits,
    ) -> Result<(), StateError>;
    /// Removes `key`; `false` when it was missing or expired.
    fn delete(&self, ns: &str, key: &str) -> Result<bool, StateError>;
    /// The live keys starting with `prefix`, in ascending byte order, a page
    /// at a time; `page.next` is `None` only at the end.
    fn list(&self, ns: &str, prefix: &str, page: &PageRequest) -> Result<KvPage, StateError>;
    /// Writes `value` only if `key` holds `expected` (an expired key is
    /// absent), atomically with every other write to it.
    fn compare_and_set(
        &self,
        ns: &str,
        key: &str,
        expected: Expected<'_>,
        value: &[u8],
        ttl: Option<Duration>,
        limits: &KvLimits,
    ) -> Result<CasResult, StateError>;
}

/// A key with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value; empty in a `keys_only` listing.
    pub value: Vec<u8>,
    /// When it expires; `None` = never.
    pub expires: Option<SystemTime>,
}

/// What a compare-and-set expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected<'a> {
    /// The key holds exactly these bytes.
    Value(&'a [u8]),
    /// The key is missing or expired.
    Absent,
}

/// The outcome of a compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasResult {
    /// The expectation held and the value was written.
    Swapped,
    /// It did not; nothing was written. `current` is the live value, `None`
    /// when the key is missing or expired.
    Mismatch {
        /// The value found.
        current: Option<Vec<u8>>,
    },
}

/// The operator's KV limits (§17.5); [`Default`] is the protocol's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// The largest value, in bytes (`kv value size`).
    pub value_size: usize,
    /// The most bytes of keys plus values of live keys in one namespace
    /// (`kv namespace total`).
    pub namespace_total: u64,
}

impl Default for KvLimits {
    fn default() -> KvLimits {
        KvLimits {
            value_size: 65_536,
            namespace_total: 16 * 1024 * 1024,
        }
    }
}

/// Which page of a listing to return. Out-of-range sizes are clamped, not
/// refused (§17.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Entries per page: 0 = [`PageRequest::DEFAULT_SIZE`], at most
    /// [`PageRequest::MAX_SIZE`]. A page may be shorter while more follow.
    pub size: usize,
    /// The opaque `next` token of the previous page, as handed out; `None`
    /// for the first page. A token of another namespace or prefix is
    /// refused with [`StateError::InvalidToken`].
    pub after: Option<String>,
    /// Bytes of keys plus values per page, at most [`PageRequest::MAX_BYTES`];
    /// a page always holds at least one entry when any follows.
    pub max_bytes: usize,
    /// Return keys and expiry only, with empty values.
    pub keys_only: bool,
}

impl PageRequest {
    /// The page size when none is asked for.
    pub const DEFAULT_SIZE: usize = 100;
    /// The largest page size.
    pub const MAX_SIZE: usize = 1_000;
    /// The most bytes of entries in one page (about 1 MiB, §17.5).
    pub const MAX_BYTES: usize = 1024 * 1024;

    /// The entries per page after clamping.
    pub(crate) fn effective_size(&self) -> usize {
        match self.size {
            0 => Self::DEFAULT_SIZE,
            size => size.min(Self::MAX_SIZE),
        }
    }

    /// The bytes per page after clamping.
    pub(crate) fn effective_bytes(&self) -> usize {
        match self.max_bytes {
            0 => Self::MAX_BYTES,
            bytes => bytes.min(Self::MAX_BYTES),
        }
    }
}

impl Default for PageRequest {
    fn default() -> PageRequest {
        PageRequest {
            size: Self::DEFAULT_SIZE,
            after: None,
            max_bytes: Self::MAX_BYTES,
            keys_only: false,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPage {
    /// The entries, in ascending byte order of key.
    pub entries: Vec<KvEntry>,
    /// The token for the next page; `None` when the listing is complete.
    pub next: Option<String>,
}

/// Refuses an empty or oversized key, or an oversized prefix.
pub(crate) fn check_key(field: &'static str, key: &str) -> Result<(), StateError> {
    let reason = if field == "key" && key.is_empty() {
        "must not be empty".to_string()
    } else if key.len() > MAX_KEY_BYTES {
        format!("is {} bytes, at most {MAX_KEY_BYTES} allowed", key.len())
    } else {
        return Ok(());
    };
    Err(StateError::Invalid { field, reason })
}
