//! One worker per subscriber: claims its due deliveries one at a time
//! (under a lease, the attempt counted), delivers each as an `Invoke` of
//! phase `event:<name>` to that plugin alone, and records the outcome
//! (§17.6): `OK` is delivered (an `ABORT` is logged, not retried); an error,
//! a timeout, a crash or a plugin not ready is retried after a backoff,
//! and after `[events] max_attempts` becomes a dead letter. Workers are
//! independent, so one subscriber's failures delay no other.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outboard_host::Reply;
use outboard_proto::json::json_to_struct;
use outboard_state::{Claimed, Outcome};
use serde_json::json;
use tokio::sync::Notify;

use super::{Events, backoff, subscribers};
use crate::permissions::EVENT_SUBSCRIBE;

/// How long a worker sleeps at most without being woken: a delivery made
/// due by another process (a retried dead letter, an expired lease) is
/// found within this.
const POLL: Duration = Duration::from_secs(5);

/// How long a worker waits before claiming again after a claim failed (a
/// full disk, a broken database): the failure would otherwise repeat at
/// once, in a busy loop that also floods the log.
const CLAIM_FAILED_PAUSE: Duration = POLL;

/// Added to a delivery's own bound (waiting for the plugin, then its call)
/// to make its lease: a lease must outlast the attempt it covers.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Delivers to `subscriber` until delivery stops or the plugin is gone.
pub(super) async fn run(events: Arc<Events>, subscriber: String, wake: Arc<Notify>) {
    let mut stop = events.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(plugin) = events.host_handle().and_then(|h| h.plugin(&subscriber)) else {
            // Removed by a reload: its deliveries wait for a plugin of
            // that name (they are the scope's, not this process's).
            super::lock(&events.workers).remove(&subscriber);
            return;
        };
        let call_timeout = plugin.spec().call_timeout;
        let lease = call_timeout * 2 + LEASE_MARGIN;
        let (outbox, scope, owner) = (
            events.outbox.clone(),
            events.scope.clone(),
            events.owner.clone(),
        );
        let name = subscriber.clone();
        let claimed =
            tokio::task::spawn_blocking(move || outbox.claim(&scope, &name, &owner, lease))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(
                    plugin = subscriber,
                    "claiming an event delivery failed, trying again in {}s: {e}",
                    CLAIM_FAILED_PAUSE.as_secs()
                );
                tokio::select! {
                    () = tokio::time::sleep(CLAIM_FAILED_PAUSE) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Some(claimed) = claimed {
            let outcome = attempt(&events, &plugin, &claimed, call_timeout).await;
            record(&events, &subscriber, &claimed, outcome).await;
            continue;
        }
        let wait = next_wait(&events, &subscriber).await;
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How long to sleep before looking again: until the next delivery is
/// due, at most [`POLL`].
async fn next_wait(events: &Events, subscriber: &str) -> Duration {
    let (outbox, scope, name) = (
        events.outbox.clone(),
        events.scope.clone(),
        subscriber.to_owned(),
    );
    let due = tokio::task::spawn_blocking(move || outbox.next_due(&scope, &name))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    due.map_or(POLL, |due| {
        due.duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(POLL)
    })
}

/// Why a delivery failed: an attempt that may succeed later, or the
/// plugin no longer receiving the event at all (never attempted).
enum Failure {
    /// The attempt failed; retried after a backoff.
    Attempt(String),
    /// The plugin's current manifest or grants exclude the event.
    Refused(String),
}
use Failure::Refused;

impl From<String> for Failure {
    fn from(error: String) -> Failure {
        Failure::Attempt(error)
    }
}

/// Why `plugin`'s ready `instance` may not receive the claimed event under
/// its manifest and the grants of the plugin's current config; `None` if it
/// may.
fn refused(
    plugin: &outboard_host::Supervisor,
    instance: &dyn outboard_host::Instance,
    claimed: &Claimed,
) -> Option<String> {
    let manifest = instance.manifest();
    let granted = manifest.allowed(&plugin.spec().grant);
    let name = &claimed.event.name;
    (!subscribers::receives(manifest, &granted, name)).then(|| {
        format!(
            "not delivered: plugin {:?} no longer receives {name:?} (its event_subscriptions \
             or its {EVENT_SUBSCRIBE}GLOB grants changed since the event was fanned out)",
            plugin.name()
        )
    })
}

/// One attempt: `Ok` if the plugin answered `OK`, else why not.
async fn attempt(
    events: &Events,
    plugin: &outboard_host::Supervisor,
    claimed: &Claimed,
    call_timeout: Duration,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + call_timeout;
    let instance = plugin.ready(deadline).await.map_err(|e| e.to_string())?;
    // Fanned out under the grants of its time: a reload (or a restart with
    // another config) may have taken them away since. Checked once the
    // plugin is ready, so against the manifest of the instance invoked.
    if let Some(why) = refused(plugin, &*instance, claimed) {
        return Err(Refused(why));
    }
    let context = outboard_host::SentContext::proto(context(claimed)?);
    let phase = format!("event:{}", claimed.event.name);
    let reply = instance
        .invoke(
            &phase,
            &claimed.event.id,
            claimed.attempt,
            &context,
            call_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Reply::Abort { message } = reply {
        tracing::warn!(
            plugin = plugin.name(),
            event = %claimed.event.name,
            id = %claimed.event.id,
            scope = %events.scope,
            "the plugin aborted an event delivery (not retried): {}",
            outboard_host::Escaped::line(&message)
        );
    }
    Ok(())
}

/// The delivery's context (§17.6): `{"event": {id, name, source, time,
/// payload}}`.
fn context(claimed: &Claimed) -> Result<prost_types::Struct, String> {
    let event = &claimed.event;
    let payload: serde_json::Value = serde_json::from_str(&event.payload)
        .map_err(|e| format!("the stored payload is not JSON ({e})"))?;
    let context = json!({
        "event": {
            "id": event.id,
            "name": event.name,
            "source": event.source,
            "time": humantime::format_rfc3339_millis(event.time).to_string(),
            "payload": payload,
        }
    });
    let serde_json::Value::Object(map) = context else {
        return Err("an event's context is an object".to_owned());
    };
    Ok(json_to_struct(&map))
}

/// Records `result` for the claimed delivery: delivered, retried after a
/// backoff, or dead after the last attempt.
async fn record(events: &Events, subscriber: &str, claimed: &Claimed, result: Result<(), Failure>) {
    let spec = events.spec;
    let outcome = match result {
        Ok(()) => Outcome::Delivered,
        Err(Refused(error)) => {
            tracing::warn!(
                plugin = subscriber,
                event = %claimed.event.name,
                id = %claimed.event.id,
                "{error}; it is in the dead-letter list"
            );
            Outcome::Dead { error }
        }
        Err(Failure::Attempt(error)) if claimed.attempt >= spec.max_attempts => {
            tracing::warn!(
                plugin = subscriber,
                event = %claimed.event.name,
                id = %claimed.event.id,
                attempts = claimed.attempt,
                "event delivery failed for the last time; it is in the dead-letter list \
                 (`outboard events --dead`, retry with `outboard events --retry`): {error}"
            );
            Outcome::Dead { error }
        }
        Err(Failure::Attempt(error)) => {
            let wait = backoff::random_after_attempt(
                claimed.attempt,
                spec.backoff_initial,
                spec.backoff_max,
            );
            tracing::info!(
                plugin = subscriber,
                event = %claimed.event.name,
                attempt = claimed.attempt,
                "event delivery failed, retrying in {}: {error}",
                humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
            );
            Outcome::Retry {
                at: SystemTime::now() + wait,
                error,
            }
        }
    };
    let (outbox, owner, delivery) = (
        events.outbox.clone(),
        events.owner.clone(),
        claimed.delivery,
    );
    match tokio::task::spawn_blocking(move || outbox.settle(delivery, &owner, &outcome)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => tracing::warn!(
            plugin = subscriber,
            id = %claimed.event.id,
            "an event delivery outlived its lease; another host took it over"
        ),
        Ok(Err(e)) => tracing::warn!("recording an event delivery failed: {e}"),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use outboard_host::testing::FakeLauncher;
    use outboard_host::{EventsSpec, Host, HostConfig, PluginSpec};
    use outboard_state::{Database, NewEvent, Outbox};

    use super::super::failing::Failing;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failing_claim_is_tried_again_after_a_pause_not_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = Database::open(dir.path()).expect("open");
        // One delivery due for `sub`.
        database
            .publish(&NewEvent {
                id: "e1",
                scope: "scope",
                name: "deploy.done",
                source: "operator",
                payload: "null",
                idempotency_key: None,
                quota: None,
            })
            .expect("publish");
        let seq = database.undistributed("scope", 1).expect("read")[0].seq;
        assert!(database.fan_out("scope", seq, &["sub"]).expect("fan out"));
        let outbox = Arc::new(Failing::claims(database));
        let launcher = FakeLauncher::new();
        launcher.plugin("sub", &[("p", 0, false)]);
        let config = HostConfig {
            plugins: vec![PluginSpec::new("sub", "/fake/sub")],
            ..HostConfig::default()
        };
        let host = Host::start_with(&config, launcher.clone())
            .await
            .expect("start");
        let events = Events::new(outbox.clone(), "scope", EventsSpec::default());
        events.serve(&host);
        tokio::time::sleep(Duration::from_secs(60)).await;
        events.shutdown().await;
        // The delivery stayed due all along: without a pause the worker
        // would claim in a busy loop, logging each failure.
        let claims = outbox.claims.load(Ordering::SeqCst) as u64;
        let most = 60 / CLAIM_FAILED_PAUSE.as_secs() + 2;
        assert!((1..=most).contains(&claims), "{claims} claims in 60 s");
    }
}
