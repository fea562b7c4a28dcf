//! Fan-out: each stored event of the scope becomes one delivery per
//! current subscriber, in the transaction that marks it fanned out (so two
//! hosts of one scope never fan an event out twice). Also the periodic
//! pruning of the outbox.

use std::sync::Arc;
use std::time::Duration;

use outboard_host::HostHandle;
use outboard_state::Undistributed;

use super::{Events, subscribers};

/// Events fanned out per transaction batch.
const BATCH: usize = 64;

/// How often the outbox is looked at without being woken: events written
/// by another process (`outboard emit` without a daemon, another host of
/// the scope) are found within this.
const POLL: Duration = Duration::from_secs(1);

/// How often delivered events and old dead letters are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Fans out until delivery stops.
pub(super) async fn run(events: Arc<Events>) {
    let mut stop = events.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = fan_out_pending(&events).await {
            tracing::warn!("event fan-out failed, retrying: {e}");
        }
        // New plugins (a reload) get their worker.
        let started = events.start_workers();
        super::lock(&events.tasks).extend(started);
        tokio::select! {
            () = events.stored.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Fans out every undistributed event of the scope.
async fn fan_out_pending(events: &Arc<Events>) -> Result<(), String> {
    let Some(host) = events.host_handle() else {
        return Ok(());
    };
    loop {
        let (outbox, scope) = (events.outbox.clone(), events.scope.clone());
        let batch = tokio::task::spawn_blocking(move || outbox.undistributed(&scope, BATCH))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            return Ok(());
        }
        for event in batch {
            let receivers = receivers(&host, &event);
            let (outbox, scope) = (events.outbox.clone(), events.scope.clone());
            let names = receivers.clone();
            tokio::task::spawn_blocking(move || {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                outbox.fan_out(&scope, event.seq, &names)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            for name in &receivers {
                events.wake(name);
            }
        }
    }
}

/// The host's plugins that receive `event` now.
fn receivers(host: &HostHandle, event: &Undistributed) -> Vec<String> {
    host.plugins()
        .iter()
        .filter(|plugin| {
            subscribers::receives(
                &plugin.manifest(),
                &subscribers::granted(plugin),
                &event.name,
            )
        })
        .map(|plugin| plugin.name().to_owned())
        .collect()
}

/// Prunes the outbox now and every [`PRUNE_EVERY`] until delivery stops;
/// deliveries to plugins no longer configured become dead letters once
/// their event is past the retention.
pub(super) async fn prune(events: Arc<Events>) {
    let mut stop = events.stop.subscribe();
    loop {
        abandon(&events).await;
        let (outbox, spec) = (events.outbox.clone(), events.spec);
        let pruned =
            tokio::task::spawn_blocking(move || outbox.prune(spec.retention, spec.dead_retention))
                .await;
        match pruned {
            Ok(Ok(p)) if p.events + p.dead_letters > 0 => tracing::debug!(
                events = p.events,
                dead_letters = p.dead_letters,
                "pruned the events outbox"
            ),
            Ok(Err(e)) => tracing::warn!("pruning the events outbox failed: {e}"),
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Dead-letters the deliveries of this scope to subscribers the host no
/// longer runs, once older than the retention (`Outbox::abandon`).
async fn abandon(events: &Arc<Events>) {
    let Some(host) = events.host_handle() else {
        return;
    };
    let live: Vec<String> = host.plugins().iter().map(|p| p.name().to_owned()).collect();
    let (outbox, scope, retention) = (
        events.outbox.clone(),
        events.scope.clone(),
        events.spec.retention,
    );
    let abandoned =
        tokio::task::spawn_blocking(move || outbox.abandon(&scope, &live, retention)).await;
    match abandoned {
        Ok(Ok(0)) | Err(_) => {}
        Ok(Ok(n)) => tracing::warn!(
            "{n} event deliveries to plugins no longer configured are now dead letters \
             (outboard events --dead)"
        ),
        Ok(Err(e)) => tracing::warn!("dead-lettering deliveries to removed plugins failed: {e}"),
    }
}
