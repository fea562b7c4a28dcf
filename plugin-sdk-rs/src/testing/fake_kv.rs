//! The fake host's key-value store: namespaces of sorted keys, expiry read
//! against the fake clock, the size limits, paging and compare-and-set,
//! with the rules of PROTOCOL.md §17.4–17.5.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use tonic::Status;

/// The default `kv value size` limit.
pub(crate) const VALUE_SIZE: usize = 65_536;
/// The default `kv namespace total` limit.
pub(crate) const NAMESPACE_TOTAL: u64 = 16 * 1024 * 1024;
/// The page size of `page_size` 0, and the most a page holds.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// The two limits an operator may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) value_size: usize,
    pub(crate) namespace_total: u64,
}

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) value: Vec<u8>,
    pub(crate) expires: Option<SystemTime>,
}

/// Every namespace, by its store name (`plugin:<name>` or `shared:<name>`).
#[derive(Debug, Default)]
pub(crate) struct Store {
    namespaces: HashMap<String, BTreeMap<String, Stored>>,
}

impl Store {
    /// The live value of `key`.
    pub(crate) fn get(&self, ns: &str, key: &str, now: SystemTime) -> Option<&Stored> {
        self.namespaces.get(ns)?.get(key).filter(|s| live(s, now))
    }

    /// Writes `key` if the limits allow it; `label` names the namespace in
    /// a refusal.
    pub(crate) fn set(
        &mut self,
        ns: &str,
        label: &str,
        key: &str,
        stored: Stored,
        limits: Limits,
        now: SystemTime,
    ) -> Result<(), Status> {
        if stored.value.len() > limits.value_size {
            return Err(Status::resource_exhausted(format!(
                "kv value size: {} bytes > limit {}",
                stored.value.len(),
                limits.value_size
            )));
        }
        let map = self.namespaces.entry(ns.to_owned()).or_default();
        let before: u64 = map
            .iter()
            .filter(|(_, s)| live(s, now))
            .map(|(k, s)| size(k, &s.value))
            .sum();
        let old = map
            .get(key)
            .filter(|s| live(s, now))
            .map_or(0, |s| size(key, &s.value));
        let after = before - old + size(key, &stored.value);
        // A write that shrinks or keeps the namespace's size is allowed.
        if after > limits.namespace_total && after > before {
            return Err(Status::resource_exhausted(format!(
                "kv namespace {label:?} total: {after} bytes > limit {}",
                limits.namespace_total
            )));
        }
        map.insert(key.to_owned(), stored);
        Ok(())
    }

    /// Removes `key`; `true` if it was live.
    pub(crate) fn delete(&mut self, ns: &str, key: &str, now: SystemTime) -> bool {
        let removed = self.namespaces.get_mut(ns).and_then(|m| m.remove(key));
        removed.is_some_and(|s| live(&s, now))
    }

    /// One page of the live keys starting with `prefix`, after the key in
    /// `token`; the token of the next page is empty at the end.
    pub(crate) fn list(
        &self,
        ns: &str,
        prefix: &str,
        page_size: usize,
        token: &str,
        now: SystemTime,
    ) -> Result<(Vec<(String, Stored)>, String), Status> {
        let after = if token.is_empty() {
            None
        } else {
            Some(decode_token(token, ns, prefix)?)
        };
        let size = match page_size {
            0 => PAGE_DEFAULT,
            n => n.min(PAGE_MAX),
        };
        let Some(map) = self.namespaces.get(ns) else {
            return Ok((Vec::new(), String::new()));
        };
        let mut matching = map
            .range(after.clone().unwrap_or_else(|| prefix.to_owned())..)
            .filter(|(k, _)| Some(*k) != after.as_ref())
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, s)| live(s, now));
        let page: Vec<(String, Stored)> = matching
            .by_ref()
            .take(size)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let more = matching.next().is_some();
        let next = match page.last() {
            Some((last, _)) if more => encode_token(ns, prefix, last),
            _ => String::new(),
        };
        Ok((page, next))
    }
}

fn live(stored: &Stored, now: SystemTime) -> bool {
    stored.expires.is_none_or(|at| at > now)
}

fn size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// An opaque token: the namespace, prefix and last key, hex-encoded, so
/// that a token from another listing is recognised and refused.
fn encode_token(ns: &str, prefix: &str, last: &str) -> String {
    format!("{ns}\0{prefix}\0{last}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_token(token: &str, ns: &str, prefix: &str) -> Result<String, Status> {
    let invalid = || {
        Status::invalid_argument(
            "page_token: not a token of this listing (pass the previous response's \
             next_page_token with the same namespace and prefix)",
        )
    };
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes.ok_or_else(invalid)?).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '\0');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(p), Some(last)) if n == ns && p == prefix => Ok(last.to_owned()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    const LIMITS: Limits = Limits {
        value_size: 8,
        namespace_total: 20,
    };

    fn put(store: &mut Store, key: &str, value: &str, now: SystemTime) -> Result<(), Status> {
        let stored = Stored {
            value: value.into(),
            expires: None,
        };
        store.set("ns", "counter", key, stored, LIMITS, now)
    }

    #[test]
    fn limits_name_themselves_and_shrinking_is_allowed() {
        let now = SystemTime::UNIX_EPOCH;
        let mut store = Store::default();
        let err = put(&mut store, "k", "123456789", now).unwrap_err();
        assert_eq!(err.message(), "kv value size: 9 bytes > limit 8");
        put(&mut store, "aaaa", "12345678", now).unwrap(); // 12
        let err = put(&mut store, "bbbb", "12345", now).unwrap_err(); // 21
        assert_eq!(
            err.message(),
            "kv namespace \"counter\" total: 21 bytes > limit 20"
        );
        put(&mut store, "aaaa", "1", now).unwrap();
        put(&mut store, "bbbb", "12345", now).unwrap();
    }

    #[test]
    fn pages_walk_every_live_key_and_refuse_foreign_tokens() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let mut store = Store::default();
        for key in ["a1", "a2", "a3", "b1"] {
            put(&mut store, key, "v", now).unwrap();
        }
        let expired = Stored {
            value: b"v".to_vec(),
            expires: Some(now),
        };
        store.set("ns", "n", "a0", expired, LIMITS, now).unwrap();
        let (page, next) = store.list("ns", "a", 2, "", now).unwrap();
        let keys: Vec<_> = page.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a1", "a2"]);
        let (page, end) = store.list("ns", "a", 2, &next, now).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].0, "a3");
        assert_eq!(end, "");
        let err = store.list("ns", "b", 2, &next, now).unwrap_err();
        assert!(err.message().starts_with("page_token:"), "{err:?}");
        assert!(store.list("ns", "a", 2, "zz", now).is_err());
    }
}
