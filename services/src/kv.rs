//! The key-value handlers: arguments checked (naming the field), the
//! namespace mapped and its grant checked, the store called off the async
//! threads, its errors mapped to the statuses of docs/PROTOCOL.md §17.4.
//!
//! Namespaces as the store sees them: a plugin's own is
//! `plugin:<instance name>`, a shared one `shared:<NAME>`; the two prefixes
//! keep a shared namespace named like an instance apart from it.

use std::sync::Arc;
use std::time::Duration;

use outboard_proto::v1;
use outboard_proto::v1::kv_compare_and_set_request::Expected as WireExpected;
use outboard_state::{
    CasResult, Expected, KvEntry, KvStore, MAX_KEY_BYTES, PageRequest, StateError,
};
use tonic::Status;

use crate::caller::Caller;
use crate::permissions;
use crate::services::Shared;

/// The longest shared namespace name.
const MAX_NAMESPACE: usize = 64;

/// `KvGet`.
pub(crate) async fn get(
    shared: Arc<Shared>,
    caller: Caller,
    request: v1::KvGetRequest,
) -> Result<v1::KvGetResponse, Status> {
    let ns = namespace(&caller, &request.namespace)?;
    check_key(&request.key)?;
    let found = blocking(&shared, move |kv| kv.get(&ns, &request.key)).await?;
    Ok(match found {
        Some(entry) => v1::KvGetResponse {
            found: true,
            expire_time: entry.expires.map(Into::into),
            value: entry.value,
        },
        None => v1::KvGetResponse::default(),
    })
}

/// `KvSet`.
pub(crate) async fn set(
    shared: Arc<Shared>,
    caller: Caller,
    request: v1::KvSetRequest,
) -> Result<v1::KvSetResponse, Status> {
    let ns = namespace(&caller, &request.namespace)?;
    check_key(&request.key)?;
    let ttl = ttl(request.ttl.as_ref())?;
    let limits = shared.options.kv_limits;
    blocking(&shared, move |kv| {
        kv.set(&ns, &request.key, &request.value, ttl, &limits)
    })
    .await?;
    Ok(v1::KvSetResponse {})
}

/// `KvDelete`.
pub(crate) async fn delete(
    shared: Arc<Shared>,
    caller: Caller,
    request: v1::KvDeleteRequest,
) -> Result<v1::KvDeleteResponse, Status> {
    let ns = namespace(&caller, &request.namespace)?;
    check_key(&request.key)?;
    let deleted = blocking(&shared, move |kv| kv.delete(&ns, &request.key)).await?;
    Ok(v1::KvDeleteResponse { deleted })
}

/// `KvList`.
pub(crate) async fn list(
    shared: Arc<Shared>,
    caller: Caller,
    request: v1::KvListRequest,
) -> Result<v1::KvListResponse, Status> {
    let ns = namespace(&caller, &request.namespace)?;
    if request.prefix.len() > MAX_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "prefix: {} bytes, at most {MAX_KEY_BYTES} allowed",
            request.prefix.len()
        )));
    }
    let size = usize::try_from(request.page_size).map_err(|_| {
        Status::invalid_argument(format!("page_size: negative ({})", request.page_size))
    })?;
    let page = PageRequest {
        size,
        after: Some(request.page_token).filter(|t| !t.is_empty()),
        max_bytes: PageRequest::MAX_BYTES,
        keys_only: request.keys_only,
    };
    let listed = blocking(&shared, move |kv| kv.list(&ns, &request.prefix, &page)).await?;
    Ok(v1::KvListResponse {
        entries: listed.entries.into_iter().map(wire_entry).collect(),
        next_page_token: listed.next.unwrap_or_default(),
    })
}

/// `KvCompareAndSet`.
pub(crate) async fn compare_and_set(
    shared: Arc<Shared>,
    caller: Caller,
    request: v1::KvCompareAndSetRequest,
) -> Result<v1::KvCompareAndSetResponse, Status> {
    let ns = namespace(&caller, &request.namespace)?;
    check_key(&request.key)?;
    let ttl = ttl(request.ttl.as_ref())?;
    let expected = request.expected.ok_or_else(|| {
        Status::invalid_argument("expected: set expected_value or expected_absent")
    })?;
    let limits = shared.options.kv_limits;
    let (key, value) = (request.key, request.value);
    let result = blocking(&shared, move |kv| {
        let expected = match &expected {
            WireExpected::ExpectedValue(bytes) => Expected::Value(bytes),
            WireExpected::ExpectedAbsent(()) => Expected::Absent,
        };
        kv.compare_and_set(&ns, &key, expected, &value, ttl, &limits)
    })
    .await?;
    Ok(match result {
        CasResult::Swapped => v1::KvCompareAndSetResponse {
            swapped: true,
            ..Default::default()
        },
        CasResult::Mismatch { current } => v1::KvCompareAndSetResponse {
            swapped: false,
            found: current.is_some(),
            current_value: current.unwrap_or_default(),
        },
    })
}

/// The store's namespace for a call on `namespace`, once the caller is
/// found to hold its grant.
fn namespace(caller: &Caller, namespace: &str) -> Result<String, Status> {
    if !namespace.is_empty() {
        check_namespace(namespace)
            .map_err(|why| Status::invalid_argument(format!("namespace: {why}")))?;
    }
    caller.require(&permissions::for_namespace(namespace))?;
    Ok(if namespace.is_empty() {
        format!("plugin:{}", caller.plugin)
    } else {
        format!("shared:{namespace}")
    })
}

/// A shared namespace's name: 1 to 64 characters of `[a-z0-9_.-]`,
/// starting with a letter or digit.
fn check_namespace(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAMESPACE {
        return Err(format!(
            "{} characters, at most {MAX_NAMESPACE} allowed",
            name.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if !name.chars().all(allowed) {
        return Err(format!(
            "{:?} has a character outside [a-z0-9_.-]",
            name.escape_debug().to_string()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(format!("{name:?} must start with a letter or digit"));
    }
    Ok(())
}

/// A key: 1 to 512 bytes, no NUL.
fn check_key(key: &str) -> Result<(), Status> {
    let why = if key.is_empty() {
        "empty".to_owned()
    } else if key.len() > MAX_KEY_BYTES {
        format!("{} bytes, at most {MAX_KEY_BYTES} allowed", key.len())
    } else if key.contains('\0') {
        "contains a NUL byte".to_owned()
    } else {
        return Ok(());
    };
    Err(Status::invalid_argument(format!("key: {why}")))
}

/// A `ttl`: unset or zero is none; negative or malformed is refused.
fn ttl(ttl: Option<&prost_types::Duration>) -> Result<Option<Duration>, Status> {
    let Some(ttl) = ttl else { return Ok(None) };
    if ttl.seconds < 0 || ttl.nanos < 0 {
        return Err(Status::invalid_argument(format!(
            "ttl: negative ({}s {}ns)",
            ttl.seconds, ttl.nanos
        )));
    }
    let ttl = Duration::try_from(*ttl)
        .map_err(|e| Status::invalid_argument(format!("ttl: not a duration ({e})")))?;
    Ok(Some(ttl).filter(|d| !d.is_zero()))
}

fn wire_entry(entry: KvEntry) -> v1::KvEntry {
    v1::KvEntry {
        key: entry.key,
        value: entry.value,
        expire_time: entry.expires.map(Into::into),
    }
}

/// Runs `call` on the store on a blocking thread, its error mapped.
async fn blocking<T, F>(shared: &Shared, call: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(&dyn KvStore) -> Result<T, StateError> + Send + 'static,
{
    let kv = shared.kv.clone();
    match tokio::task::spawn_blocking(move || call(&*kv)).await {
        Ok(result) => result.map_err(status),
        Err(_) => Err(Status::unavailable(
            "the host's key-value call failed unexpectedly; retry",
        )),
    }
}

/// Where a limit was hit, as the plugin knows it: a key-value namespace of
/// its own (empty `namespace` in its calls) or a shared one by name, or
/// the plugin whose events fill the outbox; not the store's prefixed key.
fn shown(limit: &str, namespace: &str) -> String {
    if let Some(plugin) = namespace.strip_prefix("plugin:") {
        if limit.starts_with("kv") {
            format!("in the own namespace of plugin \"{plugin}\"")
        } else {
            format!("for plugin \"{plugin}\"")
        }
    } else if let Some(shared) = namespace.strip_prefix("shared:") {
        format!("in the shared namespace \"{shared}\"")
    } else {
        format!("for \"{namespace}\"")
    }
}

/// The status a plugin gets for a store error (the key-value store's, the
/// outbox's): a limit is `RESOURCE_EXHAUSTED` naming it, a bad argument
/// `INVALID_ARGUMENT` naming the field, anything else `UNAVAILABLE` (the
/// operator reads the details in the host's log; the plugin is not told
/// the host's paths).
pub(crate) fn status(err: StateError) -> Status {
    match err {
        StateError::Limit {
            limit,
            value,
            namespace,
        } => Status::resource_exhausted(format!(
            "{limit} limit of {value} bytes would be exceeded {}; nothing was written",
            shown(limit, &namespace)
        )),
        StateError::InvalidToken(_) | StateError::Invalid { .. } => {
            Status::invalid_argument(err.to_string())
        }
        StateError::Full { .. } => {
            tracing::error!("host services: {err}");
            Status::unavailable(
                "the host's state database is full; nothing was written; retry later",
            )
        }
        other => {
            tracing::error!("host services: {other}");
            Status::unavailable("the host's state database failed; retry later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_follow_the_rule() {
        for good in ["jobs", "a", "0x", "a.b-c_d", &"a".repeat(64)] {
            assert_eq!(check_namespace(good), Ok(()), "{good}");
        }
        for bad in ["Jobs", "-a", ".a", "_a", "a b", "a:b", "é", &"a".repeat(65)] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_one_to_512_bytes_without_nul() {
        assert!(check_key("k").is_ok());
        assert!(check_key(&"k".repeat(512)).is_ok());
        for bad in [String::new(), "k".repeat(513), "a\0b".to_owned()] {
            let status = check_key(&bad).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().starts_with("key: "),
                "{}",
                status.message()
            );
        }
    }

    #[test]
    fn ttl_zero_is_none_negative_is_refused() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(ttl(None).expect("ok"), None);
        assert_eq!(ttl(Some(&d(0, 0))).expect("ok"), None);
        assert_eq!(
            ttl(Some(&d(5, 0))).expect("ok"),
            Some(Duration::from_secs(5))
        );
        let refused = ttl(Some(&d(-5, 0))).expect_err("negative");
        assert!(
            refused.message().starts_with("ttl: negative"),
            "{}",
            refused.message()
        );
        assert!(ttl(Some(&d(0, -1))).is_err());
    }

    #[test]
    fn limits_are_resource_exhausted_naming_the_limit() {
        let status = status(StateError::Limit {
            limit: "kv value size",
            value: 65_536,
            namespace: "plugin:p".into(),
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("kv value size"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("65536"), "{}", status.message());
        assert!(
            status
                .message()
                .contains("in the own namespace of plugin \"p\""),
            "{}",
            status.message()
        );
    }
}
