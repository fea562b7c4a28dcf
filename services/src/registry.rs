//! The live tokens: one entry per running plugin instance, from before its
//! spawn until its process exits. A call's token is looked up among all of
//! them, whichever socket it came in on: the token, not the socket path,
//! says who calls (docs/PROTOCOL.md §17.2).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outboard_host::Manifest;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, watch};

use crate::auth::Refusal;
use crate::caller::Caller;
use crate::denials::Denials;

/// What `Describe` told about an instance: known only after it.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    /// Its validated manifest.
    pub(crate) manifest: Arc<Manifest>,
    /// What it asked for and the operator granted.
    pub(crate) granted: Arc<[String]>,
}

/// One running instance's credential.
pub(crate) struct Entry {
    /// Told apart from other entries of the same plugin (restarts).
    id: u64,
    /// Its token, 64 hex digits.
    token: String,
    /// The instance name.
    plugin: Arc<str>,
    /// `None` until `Describe`; dropped with the entry, which wakes every
    /// call still waiting for it.
    described: watch::Sender<Option<Described>>,
    /// Its calls in flight: bounded so that one plugin cannot take every
    /// worker the host has.
    calls: Arc<Semaphore>,
}

impl std::fmt::Debug for Entry {
    /// Without the token: a secret, never in any output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// Every live entry.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// The next entry's id.
    next: AtomicU64,
    /// The entries: a handful, so a list (scanned whole, see [`Registry::find`]).
    live: Mutex<Vec<Arc<Entry>>>,
    /// Where callers log their refusals.
    denials: Arc<Denials>,
}

impl Registry {
    /// Adds an entry for `plugin` with `token`, allowing `max_calls` calls
    /// in flight; returns its id, for [`Registry::revoke`].
    pub(crate) fn insert(&self, plugin: &str, token: String, max_calls: usize) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (described, _) = watch::channel(None);
        let entry = Arc::new(Entry {
            id,
            token,
            plugin: plugin.into(),
            described,
            calls: Arc::new(Semaphore::new(max_calls)),
        });
        self.lock().push(entry);
        id
    }

    /// Records what `Describe` said for entry `id` (nothing if revoked).
    pub(crate) fn describe(&self, id: u64, described: Described) {
        if let Some(entry) = self.lock().iter().find(|e| e.id == id) {
            entry.described.send_replace(Some(described));
        }
    }

    /// Refuses entry `id`'s token from now on, and wakes the calls waiting
    /// for its `Describe` (they fail).
    pub(crate) fn revoke(&self, id: u64) {
        let gone: Vec<Arc<Entry>> = {
            let mut live = self.lock();
            let (gone, kept) = live.drain(..).partition(|e| e.id == id);
            *live = kept;
            gone
        };
        drop(gone);
    }

    /// How many tokens are live (for tests and figures).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The entry whose token is `token`. Every live token is compared, in
    /// constant time each, so that the time taken says nothing of how much
    /// of a guess was right.
    fn find(&self, token: &str) -> Option<Arc<Entry>> {
        let live = self.lock();
        let mut found = None;
        for entry in live.iter() {
            if bool::from(entry.token.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(entry.clone());
            }
        }
        found
    }

    /// The caller holding `token`, once its instance is described; waits
    /// up to `wait` for `Describe`, then `UNAVAILABLE`. On the socket of
    /// instance `socket` (`None`: any, for tests), only that instance's
    /// token is known: a token read from another plugin's environment is
    /// no use on the reader's own socket (and its socket refuses the
    /// reader, `hosted`).
    pub(crate) async fn caller(
        &self,
        token: &str,
        wait: Duration,
        socket: Option<u64>,
    ) -> Result<Caller, tonic::Status> {
        let entry = self
            .find(token)
            .filter(|entry| socket.is_none_or(|id| id == entry.id))
            .ok_or(Refusal::Unknown.status())?;
        let (plugin, calls) = (entry.plugin.clone(), entry.calls.clone());
        let mut described = entry.described.subscribe();
        // Not held while waiting: a revoke must drop the sender to wake us.
        drop(entry);
        let waited = tokio::time::timeout(wait, described.wait_for(Option::is_some)).await;
        let described = match waited {
            Ok(Ok(d)) => d.clone(),
            Ok(Err(_)) => None,
            Err(_) => {
                return Err(tonic::Status::unavailable(format!(
                    "plugin {plugin:?} has not been described within {}s; retry once its start completes",
                    wait.as_secs()
                )));
            }
        };
        let described = described.ok_or(Refusal::Unknown.status())?;
        Ok(Caller::new(plugin, described, calls, self.denials.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Entry>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
