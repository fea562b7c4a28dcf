//! `GetSecret`: the secrets of `[secrets.NAME]`, read from their sources
//! when first asked for and kept for the secret's `cache` time.
//!
//! The rules (docs/PROTOCOL.md §17.4): a name that no secret could have
//! is `INVALID_ARGUMENT`; a name the caller is not granted
//! (`secret:NAME`) is `PERMISSION_DENIED` whether or not it is configured,
//! so a plugin cannot probe which secrets exist; granted but not configured
//! is `NOT_FOUND`; a source that fails is `UNAVAILABLE`, naming the secret
//! and the kind of source, never what it read.
//!
//! Requests for one secret queue behind one another: the first reads the
//! source and the ones that waited meanwhile share its outcome (success or
//! failure), so a burst of first requests runs a command once; a failure
//! is answered again for [`FAILURE_HOLD`] before the source is retried. The cache
//! holds at most one value per configured secret; a reload that changes or
//! removes a secret's definition drops its value (wiped: see [`Secret`]).
//!
//! # Layout
//!
//! - `secret`: [`Secret`], the value that never prints itself.
//! - `source`: reading an `env` or `file` source, the size limit, the
//!   trailing newline.
//! - `command`: running a `command` source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outboard_host::SecretSpecs;
use outboard_host::config::{MAX_SECRET_NAME_LEN, SecretSource, SecretSpec, is_valid_secret_name};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Status;

use outboard_proto::v1;

use crate::Caller;
use crate::permissions::SECRET;
use crate::services::Shared;

mod command;
mod secret;
mod source;
#[cfg(test)]
mod tests;

pub use secret::{REDACTED, Secret};
pub use source::MAX_SECRET_BYTES;
use source::SourceError;

/// How long a failed read is answered again without reading the source
/// (at most the secret's `cache` time): a plugin retrying in a loop runs a
/// failing command at most once a second, yet a fixed source is seen soon.
pub const FAILURE_HOLD: Duration = Duration::from_secs(1);

/// The configured secrets and the values read so far.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The definitions and, per secret, the last outcome of its source.
    table: Mutex<Table>,
}

/// The current definitions and their slots.
#[derive(Debug, Default)]
struct Table {
    /// The `[secrets]` of the configuration in force.
    specs: SecretSpecs,
    /// One per secret asked for since its definition last changed.
    slots: HashMap<String, Arc<Slot>>,
}

/// One secret's last outcome; its lock queues the requests for it.
#[derive(Debug)]
struct Slot {
    /// The definition the outcome was read with.
    spec: SecretSpec,
    /// Reads of the source so far, counted while `last` is held: a request
    /// that sees it grow while it waits shares that read's outcome.
    reads: AtomicU64,
    /// The last read's outcome and when it ended; a value is dropped once
    /// `spec.cache` has passed.
    last: tokio::sync::Mutex<Option<(Instant, Outcome)>>,
}

/// What reading a source gave.
type Outcome = Result<Secret, SourceError>;

impl Slot {
    /// The value kept, or the outcome of a read that ended while this
    /// request waited, or a new read's.
    async fn outcome(self: &Arc<Self>) -> Outcome {
        let seen = self.reads.load(Ordering::Acquire);
        let mut last = self.last.lock().await;
        let waited = self.reads.load(Ordering::Acquire) != seen;
        match &*last {
            Some((_, outcome)) if waited => return outcome.clone(),
            Some((at, Ok(value))) if at.elapsed() < self.spec.cache => return Ok(value.clone()),
            Some((at, Err(e))) if at.elapsed() < FAILURE_HOLD.min(self.spec.cache) => {
                return Err(e.clone());
            }
            _ => {}
        }
        let outcome = read(&self.spec).await;
        *last = Some((Instant::now(), outcome.clone()));
        let reads = self.reads.fetch_add(1, Ordering::AcqRel) + 1;
        drop(last);
        self.forget_after_cache(reads);
        outcome
    }

    /// Drops read number `reads`'s outcome once the cache time has passed
    /// (unless a later read replaced it): an unused value does not stay in
    /// memory.
    fn forget_after_cache(self: &Arc<Self>, reads: u64) {
        let slot = Arc::downgrade(self);
        let cache = self.spec.cache;
        tokio::spawn(async move {
            tokio::time::sleep(cache).await;
            let Some(slot) = slot.upgrade() else { return };
            let mut last = slot.last.lock().await;
            if slot.reads.load(Ordering::Acquire) == reads {
                *last = None;
            }
        });
    }
}

impl Secrets {
    /// Secrets defined by `specs`, none read yet.
    pub fn new(specs: SecretSpecs) -> Secrets {
        Secrets {
            table: Mutex::new(Table {
                specs,
                slots: HashMap::new(),
            }),
        }
    }

    /// Puts `specs` in force: the values of secrets whose definition
    /// changed or went are dropped, the others kept.
    pub fn configure(&self, specs: SecretSpecs) {
        let mut table = self.table();
        let changed: Vec<&str> = table
            .specs
            .iter()
            .filter(|(name, spec)| specs.get(*name) != Some(spec))
            .chain(
                specs
                    .iter()
                    .filter(|(name, _)| !table.specs.contains_key(*name)),
            )
            .map(|(name, _)| name.as_str())
            .collect();
        if !changed.is_empty() {
            // Names only: the definitions are the operator's to read in the
            // file, and no value is ever logged.
            tracing::info!(
                "secrets changed, added or removed: {} (their kept values dropped)",
                changed.join(", ")
            );
        }
        table
            .slots
            .retain(|name, slot| specs.get(name) == Some(&slot.spec));
        table.specs = specs;
    }

    /// Follows `specs` (the host's, see `Host::secrets`) until it closes:
    /// every reload's secrets are put in force.
    pub fn follow(self: &Arc<Self>, mut specs: watch::Receiver<SecretSpecs>) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            while specs.changed().await.is_ok() {
                let Some(this) = this.upgrade() else { return };
                let current = specs.borrow_and_update().clone();
                this.configure(current);
            }
        });
    }

    /// The secret `name` for `caller`, read from its source if no value
    /// is kept; see the module docs for the statuses.
    pub async fn get(&self, caller: &Caller, name: &str) -> Result<Secret, Status> {
        if !is_valid_secret_name(name) {
            // Not quoted: a hostile plugin could make it megabytes long.
            // Which names are valid is public, so this tells nothing.
            return Err(Status::invalid_argument(format!(
                "name is not a valid secret name: 1 to {MAX_SECRET_NAME_LEN} characters of \
                 a-z, A-Z, 0-9, '_', '.' and '-'"
            )));
        }
        caller.require(&format!("{SECRET}{name}"))?;
        let Some(slot) = self.slot(name) else {
            return Err(Status::not_found(format!(
                "secret {name:?} is not configured: add a [secrets.{name}] section to the host's \
                 configuration"
            )));
        };
        let outcome = slot.outcome().await;
        outcome.map_err(|SourceError(why)| {
            let message = format!(
                "secret {name:?} is unavailable: its {} source failed: {why}",
                slot.spec.source.kind()
            );
            // The operator's log also names the file (never the value).
            match &slot.spec.source {
                SecretSource::File(path) => tracing::warn!(
                    plugin = &*caller.plugin,
                    file = %path.display(),
                    "{message}"
                ),
                _ => tracing::warn!(plugin = &*caller.plugin, "{message}"),
            }
            Status::unavailable(message)
        })
    }

    /// The slot of the configured secret `name`, made on first use.
    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        let mut table = self.table();
        let spec = table.specs.get(name)?.clone();
        let slot = table.slots.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Slot {
                spec,
                reads: AtomicU64::new(0),
                last: tokio::sync::Mutex::new(None),
            })
        });
        Some(slot.clone())
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // Every update of the table is complete before anything that can
        // panic: a poisoned lock still holds a consistent table.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `GetSecret` handler.
pub(crate) async fn get_secret(
    shared: Arc<Shared>,
    caller: Caller,
    request: v1::GetSecretRequest,
) -> Result<v1::GetSecretResponse, Status> {
    let secret = shared.secrets.get(&caller, &request.name).await?;
    // The response's copy is the one the value cannot be wiped from: it
    // belongs to tonic once sent.
    Ok(v1::GetSecretResponse {
        value: secret.expose().to_vec(),
    })
}

/// Reads `spec`'s source in a task of its own: a request that hangs up
/// does not cut a command short (it still ends, or is killed at its
/// timeout, and is waited for).
async fn read(spec: &SecretSpec) -> Outcome {
    let spec = spec.clone();
    tokio::spawn(async move { source::read(&spec).await })
        .await
        .unwrap_or_else(|e| Err(SourceError(format!("the reading task failed: {e}"))))
}
