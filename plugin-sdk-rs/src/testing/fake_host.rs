//! [`FakeHost`]: host services in memory, for unit tests — the same rules
//! as the host (PROTOCOL.md §17): namespaces, expiry on a clock the test
//! moves, compare-and-set, the size limits, paging, optional grants and
//! token, secrets from a map, and every publish recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use outboard_proto::handshake::{TOKEN_METADATA_KEY, bearer};
use outboard_proto::json::value_to_json;
use outboard_proto::v1::host_service_server::{HostService, HostServiceServer};
use outboard_proto::v1::{
    self, GetSecretRequest, GetSecretResponse, KvCompareAndSetRequest, KvCompareAndSetResponse,
    KvDeleteRequest, KvDeleteResponse, KvGetRequest, KvGetResponse, KvListRequest, KvListResponse,
    KvSetRequest, KvSetResponse, PublishRequest, PublishResponse, kv_compare_and_set_request,
};
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::fake_kv::{Limits, NAMESPACE_TOTAL, Store, Stored, VALUE_SIZE};
use super::rules;
use crate::host::HostServices;

/// Host services in memory. Clones share the same state, so a test keeps
/// one to inspect while the plugin calls another.
///
/// The `with_*` builders other than [`FakeHost::with_secret`] configure a
/// fake not yet shared: they panic once it has been cloned or its
/// [`services`](FakeHost::services) or [`server`](FakeHost::server) taken.
///
/// ```
/// use outboard_plugin::testing::FakeHost;
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt").block_on(async {
/// let host = FakeHost::new().with_secret("api-key", "s3cret");
/// let kv = host.services().kv();
/// kv.set("seen", "1", Some(Duration::from_secs(60))).await.expect("set");
/// host.advance(Duration::from_secs(61));
/// assert_eq!(kv.get("seen").await.expect("get"), None);
/// let key = host.services().secrets().get("api-key").await.expect("granted");
/// assert_eq!(key.expose(), b"s3cret");
/// # });
/// ```
#[derive(Clone)]
pub struct FakeHost {
    state: Arc<State>,
}

struct State {
    /// The calling plugin's instance name: its own namespace, its events'
    /// source, the messages.
    plugin: String,
    /// The time expiry is read against; moved by [`FakeHost::advance`].
    now: Mutex<SystemTime>,
    store: Mutex<Store>,
    secrets: Mutex<HashMap<String, Vec<u8>>>,
    published: Mutex<Vec<Published>>,
    /// The id of each idempotency key's first publish.
    keys: Mutex<std::collections::HashMap<String, String>>,
    /// `None`: everything is allowed.
    grants: Option<Vec<String>>,
    limits: Limits,
    /// When set, calls must carry it as the Bearer token.
    token: Option<String>,
    next_id: AtomicU64,
}

/// An event a plugin published through the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The id the fake answered with: `fake-1`, `fake-2`, ...
    pub id: String,
    /// The event's name.
    pub name: String,
    /// The payload.
    pub payload: Value,
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost")
            .field("plugin", &self.state.plugin)
            .field("grants", &self.state.grants)
            .finish_non_exhaustive()
    }
}

impl Default for FakeHost {
    fn default() -> FakeHost {
        FakeHost::new()
    }
}

impl FakeHost {
    /// A fake for plugin instance `plugin`, allowing every call, with the
    /// default limits and the clock at the current time.
    pub fn new() -> FakeHost {
        FakeHost {
            state: Arc::new(State {
                plugin: "plugin".to_owned(),
                now: Mutex::new(SystemTime::now()),
                store: Mutex::default(),
                secrets: Mutex::default(),
                published: Mutex::default(),
                keys: Mutex::default(),
                grants: None,
                limits: Limits {
                    value_size: VALUE_SIZE,
                    namespace_total: NAMESPACE_TOTAL,
                },
                token: None,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Rebuilds the (still unshared) state with `change` applied.
    fn configure(self, change: impl FnOnce(&mut State)) -> FakeHost {
        let mut state = Arc::try_unwrap(self.state).unwrap_or_else(|_| {
            panic!("configure the FakeHost before cloning it or taking its services")
        });
        change(&mut state);
        FakeHost {
            state: Arc::new(state),
        }
    }

    /// Names the calling plugin instance (default `plugin`).
    pub fn with_plugin(self, name: impl Into<String>) -> FakeHost {
        let name = name.into();
        self.configure(|s| s.plugin = name)
    }

    /// Checks grants as the host does: only `granted` permissions pass,
    /// the others fail with `PERMISSION_DENIED` naming them.
    pub fn with_grants<I, S>(self, granted: I) -> FakeHost
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let granted = granted.into_iter().map(Into::into).collect();
        self.configure(|s| s.grants = Some(granted))
    }

    /// Sets the `kv value size` and `kv namespace total` limits.
    pub fn with_limits(self, value_size: usize, namespace_total: u64) -> FakeHost {
        self.configure(|s| {
            s.limits = Limits {
                value_size,
                namespace_total,
            }
        })
    }

    /// Demands `authorization: Bearer <token>` on every call, as the host
    /// does (for a fake served over a socket).
    pub fn with_token(self, token: impl Into<String>) -> FakeHost {
        let token = token.into();
        self.configure(|s| s.token = Some(token))
    }

    /// Configures the secret `name`.
    pub fn with_secret(self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> FakeHost {
        lock(&self.state.secrets).insert(name.into(), value.into());
        self
    }

    /// The handle a plugin under test calls (in process, no socket).
    pub fn services(&self) -> HostServices {
        HostServices::with_service(Arc::new(self.clone()))
    }

    /// The fake as a gRPC service, to serve on a socket.
    pub fn server(&self) -> HostServiceServer<FakeHost> {
        HostServiceServer::new(self.clone())
    }

    /// Moves the clock forward by `by`: keys whose expiry passes vanish.
    pub fn advance(&self, by: Duration) {
        *lock(&self.state.now) += by;
    }

    /// The fake clock's time.
    pub fn now(&self) -> SystemTime {
        *lock(&self.state.now)
    }

    /// Every event published so far, in order.
    pub fn published(&self) -> Vec<Published> {
        lock(&self.state.published).clone()
    }

    /// The live value of `key` in the plugin's own namespace (`shared`
    /// `None`) or in a shared one, for assertions.
    pub fn value(&self, shared: Option<&str>, key: &str) -> Option<Vec<u8>> {
        let ns = self.store_namespace(shared.unwrap_or_default());
        let store = lock(&self.state.store);
        store.get(&ns, key, self.now()).map(|s| s.value.clone())
    }

    /// The store's name of a request's namespace.
    fn store_namespace(&self, namespace: &str) -> String {
        if namespace.is_empty() {
            format!("plugin:{}", self.state.plugin)
        } else {
            format!("shared:{namespace}")
        }
    }

    /// Authenticates, checks the namespace and its grant; returns the
    /// store's namespace and a label for messages.
    fn kv_access<T>(
        &self,
        request: &Request<T>,
        namespace: &str,
    ) -> Result<(String, String), Status> {
        self.authenticate(request)?;
        let permission = if namespace.is_empty() {
            "kv".to_owned()
        } else {
            rules::namespace(namespace)?;
            format!("kv:shared:{namespace}")
        };
        self.require(&permission)?;
        let label = if namespace.is_empty() {
            self.state.plugin.clone()
        } else {
            namespace.to_owned()
        };
        Ok((self.store_namespace(namespace), label))
    }

    fn require(&self, permission: &str) -> Result<(), Status> {
        rules::require(self.state.grants.as_deref(), &self.state.plugin, permission)
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.state.token else {
            return Ok(());
        };
        let values: Vec<_> = request
            .metadata()
            .get_all(TOKEN_METADATA_KEY)
            .iter()
            .collect();
        match values.as_slice() {
            [one] if one.to_str().ok() == Some(bearer(token).as_str()) => Ok(()),
            _ => Err(Status::unauthenticated(
                "missing, repeated or wrong `authorization` metadata",
            )),
        }
    }

    fn expiry(&self, ttl: Option<prost_types::Duration>) -> Result<Option<SystemTime>, Status> {
        Ok(rules::ttl(ttl)?.map(|d| self.now() + d))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn timestamp(at: Option<SystemTime>) -> Option<prost_types::Timestamp> {
    at.map(prost_types::Timestamp::from)
}

#[tonic::async_trait]
impl HostService for FakeHost {
    async fn kv_get(
        &self,
        request: Request<KvGetRequest>,
    ) -> Result<Response<KvGetResponse>, Status> {
        let (ns, _) = self.kv_access(&request, &request.get_ref().namespace)?;
        let r = request.into_inner();
        rules::key(&r.key)?;
        let store = lock(&self.state.store);
        let found = store.get(&ns, &r.key, self.now());
        Ok(Response::new(KvGetResponse {
            found: found.is_some(),
            value: found.map(|s| s.value.clone()).unwrap_or_default(),
            expire_time: timestamp(found.and_then(|s| s.expires)),
        }))
    }

    async fn kv_set(
        &self,
        request: Request<KvSetRequest>,
    ) -> Result<Response<KvSetResponse>, Status> {
        let (ns, label) = self.kv_access(&request, &request.get_ref().namespace)?;
        let r = request.into_inner();
        rules::key(&r.key)?;
        let stored = Stored {
            value: r.value,
            expires: self.expiry(r.ttl)?,
        };
        let mut store = lock(&self.state.store);
        store.set(&ns, &label, &r.key, stored, self.state.limits, self.now())?;
        Ok(Response::new(KvSetResponse {}))
    }

    async fn kv_delete(
        &self,
        request: Request<KvDeleteRequest>,
    ) -> Result<Response<KvDeleteResponse>, Status> {
        let (ns, _) = self.kv_access(&request, &request.get_ref().namespace)?;
        let r = request.into_inner();
        rules::key(&r.key)?;
        let deleted = lock(&self.state.store).delete(&ns, &r.key, self.now());
        Ok(Response::new(KvDeleteResponse { deleted }))
    }

    async fn kv_list(
        &self,
        request: Request<KvListRequest>,
    ) -> Result<Response<KvListResponse>, Status> {
        let (ns, _) = self.kv_access(&request, &request.get_ref().namespace)?;
        let r = request.into_inner();
        rules::prefix(&r.prefix)?;
        let size = usize::try_from(r.page_size).map_err(|_| {
            Status::invalid_argument(format!("page_size: negative ({})", r.page_size))
        })?;
        let store = lock(&self.state.store);
        let (page, next) = store.list(&ns, &r.prefix, size, &r.page_token, self.now())?;
        let entries = page
            .into_iter()
            .map(|(key, s)| v1::KvEntry {
                key,
                value: if r.keys_only { Vec::new() } else { s.value },
                expire_time: timestamp(s.expires),
            })
            .collect();
        Ok(Response::new(KvListResponse {
            entries,
            next_page_token: next,
        }))
    }

    async fn kv_compare_and_set(
        &self,
        request: Request<KvCompareAndSetRequest>,
    ) -> Result<Response<KvCompareAndSetResponse>, Status> {
        let (ns, label) = self.kv_access(&request, &request.get_ref().namespace)?;
        let r = request.into_inner();
        rules::key(&r.key)?;
        let expected = r.expected.ok_or_else(|| {
            Status::invalid_argument("expected: neither expected_value nor expected_absent is set")
        })?;
        let stored = Stored {
            value: r.value,
            expires: self.expiry(r.ttl)?,
        };
        // One lock across the read and the write: that is the atomicity.
        let mut store = lock(&self.state.store);
        let now = self.now();
        let current = store.get(&ns, &r.key, now).map(|s| s.value.clone());
        let holds = match (&expected, &current) {
            (kv_compare_and_set_request::Expected::ExpectedAbsent(()), None) => true,
            (kv_compare_and_set_request::Expected::ExpectedValue(want), Some(have)) => want == have,
            _ => false,
        };
        if !holds {
            return Ok(Response::new(KvCompareAndSetResponse {
                swapped: false,
                found: current.is_some(),
                current_value: current.unwrap_or_default(),
            }));
        }
        store.set(&ns, &label, &r.key, stored, self.state.limits, now)?;
        Ok(Response::new(KvCompareAndSetResponse {
            swapped: true,
            ..KvCompareAndSetResponse::default()
        }))
    }

    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        self.authenticate(&request)?;
        let name = request.into_inner().name;
        rules::secret_name(&name)?;
        // The grant first, so that a plugin cannot probe which secrets exist.
        self.require(&format!("secret:{name}"))?;
        let secrets = lock(&self.state.secrets);
        let value = secrets.get(&name).ok_or_else(|| {
            Status::not_found(format!("secret {name:?} is granted but not configured"))
        })?;
        Ok(Response::new(GetSecretResponse {
            value: value.clone(),
        }))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        self.authenticate(&request)?;
        let r = request.into_inner();
        rules::event_name(&r.name)?;
        self.require(&format!("event:publish:{}", r.name))?;
        let payload = r.payload.as_ref().map(value_to_json).unwrap_or(Value::Null);
        let size = payload.to_string().len();
        if size > rules::PAYLOAD_SIZE {
            return Err(Status::resource_exhausted(format!(
                "event payload size: {size} bytes > limit {}",
                rules::PAYLOAD_SIZE
            )));
        }
        let mut keys = lock(&self.state.keys);
        if let Some(first) = keys.get(&r.idempotency_key) {
            return Ok(Response::new(PublishResponse {
                event_id: first.clone(),
                duplicate: true,
            }));
        }
        let id = format!(
            "fake-{}",
            self.state.next_id.fetch_add(1, Ordering::Relaxed)
        );
        if !r.idempotency_key.is_empty() {
            keys.insert(r.idempotency_key, id.clone());
        }
        lock(&self.state.published).push(Published {
            id: id.clone(),
            name: r.name,
            payload,
        });
        Ok(Response::new(PublishResponse {
            event_id: id,
            duplicate: false,
        }))
    }
}
