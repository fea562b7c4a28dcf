//! [`Kv`]: the key-value store the host keeps for a plugin (PROTOCOL.md
//! §17.4), in its own namespace or a shared one.

use std::time::{Duration, SystemTime};

use outboard_proto::v1::{
    self, KvCompareAndSetRequest, KvDeleteRequest, KvGetRequest, KvListRequest, KvSetRequest,
    kv_compare_and_set_request,
};
use tonic::Request;

use super::{HostError, HostServices};

/// The key-value store: the plugin's own namespace (permission `kv`), or a
/// shared one from [`Kv::shared`] (permission `kv:shared:NAME`). Values are
/// bytes; keys are UTF-8, 1 to 512 bytes.
///
/// ```no_run
/// # async fn demo(kv: outboard_plugin::host::Kv) -> Result<(), outboard_plugin::host::HostError> {
/// use std::time::Duration;
/// use outboard_plugin::host::{Cas, Expected};
///
/// kv.set("last-run", "2026-01-01", Some(Duration::from_secs(3600))).await?;
/// if let Some(entry) = kv.get("last-run").await? {
///     println!("{}", String::from_utf8_lossy(&entry.value));
/// }
/// match kv.compare_and_set("lock", Expected::Absent, "me", None).await? {
///     Cas::Swapped => println!("taken"),
///     Cas::Mismatch { current } => println!("held by {current:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    /// Where the calls go.
    host: HostServices,
    /// Empty: the plugin's own namespace; else a shared namespace's name.
    namespace: String,
}

/// A live key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value, byte for byte (empty in a `keys_only` listing).
    pub value: Vec<u8>,
    /// When the key expires, if it does.
    pub expires: Option<SystemTime>,
}

/// What a key must hold for [`Kv::compare_and_set`] to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Exactly these bytes (an empty value matches a present, empty value,
    /// never an absent key).
    Value(Vec<u8>),
    /// No live key (create-if-absent).
    Absent,
}

/// What [`Kv::compare_and_set`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    /// The expectation held; the new value is written.
    Swapped,
    /// It did not; nothing was written. `current` is the key's value now
    /// (`None` if absent), so a retry loop needs no extra `get`.
    Mismatch {
        /// The current value, if the key is present.
        current: Option<Vec<u8>>,
    },
}

/// How [`Kv::list_page`] reads one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The most entries (0: the host's default, 100; at most 1000).
    pub page_size: u32,
    /// The previous page's [`Page::next`], or empty for the first page.
    pub page_token: String,
    /// Keys (and expiry) only, no values.
    pub keys_only: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Live entries in ascending byte order of the key.
    pub entries: Vec<Entry>,
    /// The token for the next page; `None` at the end (a short page is not
    /// the end).
    pub next: Option<String>,
}

impl Kv {
    pub(super) fn new(host: HostServices) -> Kv {
        Kv {
            host,
            namespace: String::new(),
        }
    }

    /// The shared namespace `name` (1 to 64 characters of `[a-z0-9_.-]`),
    /// which every plugin granted `kv:shared:NAME` sees.
    pub fn shared(&self, name: impl Into<String>) -> Kv {
        Kv {
            host: self.host.clone(),
            namespace: name.into(),
        }
    }

    /// The shared namespace's name, or `None` for the plugin's own.
    pub fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }

    /// The live value of `key`, or `None` if it is absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, HostError> {
        let request = KvGetRequest {
            namespace: self.namespace.clone(),
            key: key.to_owned(),
        };
        let response = self
            .host
            .service()?
            .kv_get(Request::new(request))
            .await
            .map_err(|s| HostError::status("KvGet", s))?
            .into_inner();
        Ok(response.found.then(|| Entry {
            key: key.to_owned(),
            value: response.value,
            expires: expiry(response.expire_time),
        }))
    }

    /// Writes `key`, expiring after `ttl` (`None`: never; a write without
    /// one removes an earlier expiry). Durable when it returns.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> Result<(), HostError> {
        let request = KvSetRequest {
            namespace: self.namespace.clone(),
            key: key.to_owned(),
            value: value.into(),
            ttl: ttl.map(duration),
        };
        self.host
            .service()?
            .kv_set(Request::new(request))
            .await
            .map_err(|s| HostError::status("KvSet", s))?;
        Ok(())
    }

    /// Removes `key`; `true` if a live key was removed.
    pub async fn delete(&self, key: &str) -> Result<bool, HostError> {
        let request = KvDeleteRequest {
            namespace: self.namespace.clone(),
            key: key.to_owned(),
        };
        let response = self
            .host
            .service()?
            .kv_delete(Request::new(request))
            .await
            .map_err(|s| HostError::status("KvDelete", s))?;
        Ok(response.into_inner().deleted)
    }

    /// Writes `value` only if `key` holds what `expected` says, atomically
    /// with every other write to it.
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Expected,
        value: impl Into<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> Result<Cas, HostError> {
        let expected = match expected {
            Expected::Value(v) => kv_compare_and_set_request::Expected::ExpectedValue(v),
            Expected::Absent => kv_compare_and_set_request::Expected::ExpectedAbsent(()),
        };
        let request = KvCompareAndSetRequest {
            namespace: self.namespace.clone(),
            key: key.to_owned(),
            expected: Some(expected),
            value: value.into(),
            ttl: ttl.map(duration),
        };
        let response = self
            .host
            .service()?
            .kv_compare_and_set(Request::new(request))
            .await
            .map_err(|s| HostError::status("KvCompareAndSet", s))?
            .into_inner();
        Ok(if response.swapped {
            Cas::Swapped
        } else {
            Cas::Mismatch {
                current: response.found.then_some(response.current_value),
            }
        })
    }

    /// One page of the keys starting with `prefix`.
    pub async fn list_page(&self, prefix: &str, options: ListOptions) -> Result<Page, HostError> {
        let request = KvListRequest {
            namespace: self.namespace.clone(),
            prefix: prefix.to_owned(),
            page_size: i32::try_from(options.page_size).unwrap_or(i32::MAX),
            page_token: options.page_token,
            keys_only: options.keys_only,
        };
        let response = self
            .host
            .service()?
            .kv_list(Request::new(request))
            .await
            .map_err(|s| HostError::status("KvList", s))?
            .into_inner();
        Ok(Page {
            entries: response.entries.into_iter().map(entry).collect(),
            next: (!response.next_page_token.is_empty()).then_some(response.next_page_token),
        })
    }

    /// Every key starting with `prefix`, fetched a page at a time as
    /// [`List::next`] is called.
    pub fn list(&self, prefix: &str) -> List {
        List {
            kv: self.clone(),
            prefix: prefix.to_owned(),
            keys_only: false,
            buffered: Vec::new().into_iter(),
            next: Some(String::new()),
        }
    }
}

/// A listing read page by page: call [`List::next`] until it gives `None`,
/// or [`List::collect`] for all of it.
#[derive(Debug)]
pub struct List {
    /// Where the pages come from.
    kv: Kv,
    /// The keys' prefix.
    prefix: String,
    /// Keys only, no values.
    keys_only: bool,
    /// The rest of the page last fetched.
    buffered: std::vec::IntoIter<Entry>,
    /// The token of the page to fetch next; `None` after the last.
    next: Option<String>,
}

impl List {
    /// Lists keys and expiry only, without values.
    pub fn keys_only(mut self) -> List {
        self.keys_only = true;
        self
    }

    /// The next entry, fetching the next page when needed; `None` at the
    /// end.
    pub async fn next(&mut self) -> Result<Option<Entry>, HostError> {
        loop {
            if let Some(entry) = self.buffered.next() {
                return Ok(Some(entry));
            }
            let Some(token) = self.next.take() else {
                return Ok(None);
            };
            let options = ListOptions {
                page_size: 0,
                page_token: token,
                keys_only: self.keys_only,
            };
            let page = self.kv.list_page(&self.prefix, options).await?;
            self.buffered = page.entries.into_iter();
            self.next = page.next;
        }
    }

    /// Every remaining entry.
    pub async fn collect(mut self) -> Result<Vec<Entry>, HostError> {
        let mut all = Vec::new();
        while let Some(entry) = self.next().await? {
            all.push(entry);
        }
        Ok(all)
    }
}

fn entry(e: v1::KvEntry) -> Entry {
    Entry {
        key: e.key,
        value: e.value,
        expires: expiry(e.expire_time),
    }
}

fn expiry(at: Option<prost_types::Timestamp>) -> Option<SystemTime> {
    at.and_then(|t| SystemTime::try_from(t).ok())
}

fn duration(d: Duration) -> prost_types::Duration {
    // Durations beyond what protobuf holds (about 10,000 years) are clamped.
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: 315_576_000_000,
        nanos: 0,
    })
}
