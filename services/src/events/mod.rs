//! Events (PROTOCOL.md §17.4, §17.6): `Publish`, the operator's `Emit`, the
//! host's own events, the outbox, fan-out to subscribers, delivery with
//! backoff, dead letters.
//!
//! - `rules`: what a publishable event is (name, payload, key).
//! - `backoff`: the wait before a failed delivery's next attempt.
//! - `subscribers`: who receives an event (pattern AND grant).
//! - `fanout`: turns stored events into deliveries, one per subscriber.
//! - `deliver`: one worker per subscriber, delivering through `Invoke`.
//! - `host_events`: `plugin.*` and `reload.finished` from the host's own
//!   event channel.
//!
//! An event is committed (`synchronous=FULL`) before any publish returns;
//! fan-out and delivery run later, in this process or the next one of the
//! same scope, so nothing published is lost to a crash.

mod backoff;
mod deliver;
#[cfg(test)]
mod failing;
mod fanout;
mod host_events;
mod owner;
mod rules;
mod subscribers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outboard_host::{EventsSpec, Host, HostHandle};
use outboard_proto::json::value_to_json;
use outboard_proto::v1;
use outboard_state::{DeadLetter, NewEvent, Outbox, Published, StateError};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::caller::Caller;
use crate::permissions::EVENT_PUBLISH;

pub use rules::{MAX_PAYLOAD_BYTES, MAX_PLUGIN_OUTBOX_BYTES, RESERVED_PREFIXES};

/// The source of the events an operator emits.
pub const OPERATOR_SOURCE: &str = "operator";
/// The source of the host's own events.
pub const HOST_SOURCE: &str = "host";

/// Events for one host process and scope.
pub struct Events {
    /// Where events and deliveries are kept.
    outbox: Arc<dyn Outbox>,
    /// The host's scope (see `ServicesOptions::scope`).
    scope: Arc<str>,
    /// `[events]`.
    spec: EventsSpec,
    /// This process's name on the leases it takes.
    owner: Arc<str>,
    /// Wakes the fan-out: an event was stored.
    stored: Notify,
    /// True once delivery stops.
    stop: watch::Sender<bool>,
    /// The host, once served.
    host: Mutex<Option<HostHandle>>,
    /// One wake-up per subscriber with a worker.
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Every task started by [`Events::serve`].
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("scope", &self.scope)
            .field("spec", &self.spec)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Events kept in `outbox`, for a host of `scope`, delivered as `spec`
    /// says.
    pub fn new(outbox: Arc<dyn Outbox>, scope: &str, spec: EventsSpec) -> Arc<Events> {
        let owner = owner::mine();
        Arc::new(Events {
            outbox,
            scope: scope.into(),
            spec,
            owner: owner.into(),
            stored: Notify::new(),
            stop: watch::channel(false).0,
            host: Mutex::new(None),
            workers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The scope events are published and delivered in.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// `Publish` from `caller` (§17.4): a valid name outside the host's
    /// prefixes, granted by one of its `event:publish:GLOB`s, a payload
    /// within the limit; stored durably before this returns.
    pub async fn publish(
        &self,
        caller: &Caller,
        request: v1::PublishRequest,
    ) -> Result<v1::PublishResponse, Status> {
        rules::check_name(&request.name)?;
        caller.require_glob(EVENT_PUBLISH, &request.name)?;
        let key = rules::idempotency_key(&request.idempotency_key)?;
        let payload = request
            .payload
            .as_ref()
            .map(value_to_json)
            .unwrap_or_default();
        let source = format!("plugin:{}", caller.plugin);
        let quota = Some(rules::MAX_PLUGIN_OUTBOX_BYTES);
        let stored = self
            .store(&request.name, &source, &payload, key, quota)
            .await?
            .map_err(crate::kv::status)?;
        if !stored.duplicate {
            tracing::debug!(plugin = %caller.plugin, event = %request.name, id = %stored.id, "event published");
        }
        Ok(v1::PublishResponse {
            event_id: stored.id,
            duplicate: stored.duplicate,
        })
    }

    /// An operator's event (`outboard emit`, the control API's `Emit`):
    /// the rules of `Publish` without a grant; source `operator`.
    pub async fn emit(&self, name: &str, payload: &serde_json::Value) -> Result<String, Status> {
        rules::check_name(name)?;
        let stored = self
            .store(name, OPERATOR_SOURCE, payload, None, None)
            .await?
            .map_err(|e| rules::unavailable(&e))?;
        tracing::info!(event = name, id = %stored.id, "event emitted by the operator");
        Ok(stored.id)
    }

    /// One of the host's own events (§17.6's table), source `host`. A
    /// failure is logged, not returned: the host's work goes on without it.
    pub async fn publish_host(&self, name: &str, payload: serde_json::Value) {
        let stored = self.store(name, HOST_SOURCE, &payload, None, None).await;
        if let Err(status) = stored.and_then(|s| s.map_err(|e| rules::unavailable(&e))) {
            tracing::warn!(
                event = name,
                "the host's event was not stored: {}",
                status.message()
            );
        }
    }

    /// Stores an event, within `quota` bytes kept for its source, and
    /// wakes the fan-out. The outer error is the event's (its payload); the
    /// inner one the outbox's, for the caller to word for its audience.
    async fn store(
        &self,
        name: &str,
        source: &str,
        payload: &serde_json::Value,
        key: Option<&str>,
        quota: Option<u64>,
    ) -> Result<Result<Published, StateError>, Status> {
        let payload = rules::payload_text(payload)?;
        let id = uuid::Uuid::new_v4().to_string();
        let (outbox, scope) = (self.outbox.clone(), self.scope.clone());
        let (name, source, key) = (name.to_owned(), source.to_owned(), key.map(str::to_owned));
        let stored = tokio::task::spawn_blocking(move || {
            outbox.publish(&NewEvent {
                id: &id,
                scope: &scope,
                name: &name,
                source: &source,
                payload: &payload,
                idempotency_key: key.as_deref(),
                quota,
            })
        })
        .await
        .map_err(|_| Status::unavailable("the events outbox's writer stopped"))?;
        if stored.is_ok() {
            self.stored.notify_one();
        }
        Ok(stored)
    }

    /// Up to `limit` dead letters with ids above `after`, in id order.
    pub async fn dead_letters(&self, after: i64, limit: usize) -> Result<Vec<DeadLetter>, Status> {
        let (outbox, scope) = (self.outbox.clone(), self.scope.clone());
        tokio::task::spawn_blocking(move || outbox.dead_letters(&scope, after, limit))
            .await
            .map_err(|_| Status::unavailable("the events outbox's reader stopped"))?
            .map_err(|e| rules::unavailable(&e))
    }

    /// Puts dead letter `id` (or all of them) back to be delivered, and
    /// wakes the workers. The number put back.
    pub async fn retry_dead(&self, id: Option<i64>) -> Result<u64, Status> {
        let (outbox, scope) = (self.outbox.clone(), self.scope.clone());
        let retried = tokio::task::spawn_blocking(move || outbox.retry_dead(&scope, id))
            .await
            .map_err(|_| Status::unavailable("the events outbox's writer stopped"))?
            .map_err(|e| rules::unavailable(&e))?;
        self.wake_all();
        Ok(retried)
    }

    /// From now on: fan out and deliver to `host`'s plugins, publish its
    /// events, prune the outbox. Warns once per plugin that subscribes to
    /// events without any subscribe grant.
    pub fn serve(self: &Arc<Self>, host: &Host) {
        let handle = host.handle();
        *lock(&self.host) = Some(handle.clone());
        for plugin in handle.plugins() {
            let manifest = plugin.manifest();
            let granted = subscribers::granted(&plugin);
            if let Some(why) = subscribers::missing_grant(&manifest, &granted) {
                tracing::warn!(plugin = plugin.name(), "{why}");
            }
        }
        let mut tasks = vec![
            tokio::spawn(release_the_dead(self.clone())),
            tokio::spawn(fanout::run(self.clone())),
            tokio::spawn(host_events::run(self.clone(), host.events(), handle)),
            tokio::spawn(fanout::prune(self.clone())),
        ];
        tasks.extend(self.start_workers());
        lock(&self.tasks).extend(tasks);
        self.stored.notify_one();
    }

    /// Waits until nothing is due now for this host's plugins (everything
    /// fanned out, delivered, failed into backoff or dead), at most
    /// `within`: `outboard run`'s host lives for one job, and its plugins'
    /// pending deliveries get this chance before it stops. Deliveries in
    /// backoff stay pending for the next host of the scope.
    pub async fn settle(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.idle().await {
                return;
            }
            if tokio::time::timeout_at(deadline, tokio::time::sleep(SETTLE_POLL))
                .await
                .is_err()
            {
                tracing::info!(
                    "event deliveries still pending after {}; they stay for the next host of \
                     this configuration",
                    humantime::format_duration(within)
                );
                return;
            }
        }
    }

    /// True if nothing is undistributed and no delivery to a current plugin
    /// is due now or in flight.
    async fn idle(&self) -> bool {
        let names: Vec<String> = self.host_handle().map_or_else(Vec::new, |h| {
            h.plugins().iter().map(|p| p.name().to_owned()).collect()
        });
        let (outbox, scope) = (self.outbox.clone(), self.scope.clone());
        let now = std::time::SystemTime::now();
        tokio::task::spawn_blocking(move || {
            if !outbox.undistributed(&scope, 1)?.is_empty() {
                return Ok(false);
            }
            for name in &names {
                if outbox.next_due(&scope, name)?.is_some_and(|due| due <= now) {
                    return Ok(false);
                }
            }
            Ok::<_, outboard_state::StateError>(true)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(true)
    }

    /// Stops delivery: the workers finish the delivery in hand within
    /// [`SHUTDOWN_GRACE`], then are stopped; a delivery cut off keeps its
    /// counted attempt and is claimable again at once by the next host.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.tasks));
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            for abort in aborts {
                abort.abort();
            }
        }
        let (outbox, owner) = (self.outbox.clone(), self.owner.clone());
        match tokio::task::spawn_blocking(move || outbox.release(&owner)).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!("{n} event deliveries cut off by the stop stay pending"),
            Ok(Err(e)) => tracing::warn!("could not release event deliveries: {e}"),
        }
    }

    /// The host being served, while it lives.
    fn host_handle(&self) -> Option<HostHandle> {
        lock(&self.host).clone()
    }

    /// A worker for every plugin of the host that has none yet.
    fn start_workers(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let Some(host) = self.host_handle() else {
            return Vec::new();
        };
        let mut workers = lock(&self.workers);
        let mut started = Vec::new();
        for plugin in host.plugins() {
            if workers.contains_key(plugin.name()) {
                continue;
            }
            let wake = Arc::new(Notify::new());
            workers.insert(plugin.name().to_owned(), wake.clone());
            started.push(tokio::spawn(deliver::run(
                self.clone(),
                plugin.name().to_owned(),
                wake,
            )));
        }
        started
    }

    /// Wakes `subscriber`'s worker: it has a new delivery.
    fn wake(&self, subscriber: &str) {
        if let Some(wake) = lock(&self.workers).get(subscriber) {
            wake.notify_one();
        }
    }

    /// Wakes every worker.
    fn wake_all(&self) {
        for wake in lock(&self.workers).values() {
            wake.notify_one();
        }
    }
}

/// Releases the leases of this scope's owners that are gone (a crashed
/// predecessor), then wakes the workers: its deliveries in flight are
/// retried now, not when their leases would have run out.
async fn release_the_dead(events: Arc<Events>) {
    let (outbox, scope) = (events.outbox.clone(), events.scope.clone());
    let released = tokio::task::spawn_blocking(move || {
        let mut released = 0;
        for dead in outbox
            .lease_owners(&scope)?
            .into_iter()
            .filter(|o| owner::is_gone(o))
        {
            released += outbox.release(&dead)?;
        }
        Ok::<_, outboard_state::StateError>(released)
    })
    .await;
    match released {
        Ok(Ok(0)) | Err(_) => {}
        Ok(Ok(n)) => {
            tracing::info!(
                "{n} event deliveries of a host that stopped without finishing them are retried"
            );
            events.wake_all();
        }
        Ok(Err(e)) => tracing::warn!("could not look for a crashed host's event deliveries: {e}"),
    }
}

/// How long [`Events::shutdown`] lets deliveries in hand finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often [`Events::settle`] looks again.
const SETTLE_POLL: Duration = Duration::from_millis(50);

/// Locks `mutex`, carrying on after a panic elsewhere (the data is a map of
/// handles, consistent at every step).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use outboard_state::Database;

    use super::*;

    /// Events over a fresh database in `dir`, no host served.
    fn events(dir: &std::path::Path) -> Arc<Events> {
        let database = Database::open(dir).expect("open the state database");
        Events::new(Arc::new(database), "scope", EventsSpec::default())
    }

    #[tokio::test(start_paused = true)]
    async fn settling_returns_at_once_when_nothing_is_owed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = events(dir.path());
        let began = tokio::time::Instant::now();
        events.settle(Duration::from_secs(5)).await;
        assert_eq!(began.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn settling_gives_up_at_its_bound_and_keeps_what_is_owed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = events(dir.path());
        let id = events
            .emit("deploy.done", &serde_json::json!({"env": "prod"}))
            .await
            .expect("stored");
        let began = tokio::time::Instant::now();
        events.settle(Duration::from_secs(5)).await;
        // Not fanned out (no host): the wait ran to its bound, and the
        // event is still there for the next host.
        assert!(
            began.elapsed() >= Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        let pending = events.outbox.undistributed("scope", 10).expect("read");
        assert_eq!(pending.len(), 1);
        let database = Database::open(dir.path()).expect("reopen");
        assert_eq!(
            database.undistributed("scope", 10).expect("read").len(),
            1,
            "{id}"
        );
    }

    #[tokio::test]
    async fn a_failing_publish_tells_the_plugin_what_but_not_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = Database::open(dir.path()).expect("open");
        let outbox = Arc::new(failing::Failing::publishes(database));
        let events = Events::new(outbox, "scope", EventsSpec::default());
        let granted: Arc<[String]> = Arc::from(vec!["event:publish:*".to_owned()]);
        let manifest = v1::Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            protocol_version: 1,
            ..Default::default()
        };
        let caller = Caller::new(
            "p".into(),
            crate::registry::Described {
                manifest: Arc::new(outboard_host::Manifest::from_proto(manifest, 1).expect("ok")),
                granted,
            },
            Arc::new(tokio::sync::Semaphore::new(1)),
            Arc::default(),
        );
        let request = v1::PublishRequest {
            name: "build.done".into(),
            ..Default::default()
        };
        let status = events.publish(&caller, request).await.expect_err("full");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("full"), "{}", status.message());
        assert!(
            !status.message().contains(failing::PATH),
            "{}",
            status.message()
        );
    }

    #[test]
    fn an_outbox_limit_is_resource_exhausted_naming_it() {
        let status = crate::kv::status(StateError::Limit {
            limit: "event outbox per plugin",
            value: rules::MAX_PLUGIN_OUTBOX_BYTES,
            namespace: "plugin:flood".into(),
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("event outbox per plugin")
                && status.message().contains("for plugin \"flood\""),
            "{}",
            status.message()
        );
    }

    #[tokio::test]
    async fn the_operator_may_not_use_the_hosts_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = events(dir.path());
        let err = events
            .emit("job.finished", &serde_json::Value::Null)
            .await
            .expect_err("reserved");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            events
                .outbox
                .undistributed("scope", 10)
                .expect("read")
                .is_empty()
        );
    }
}
