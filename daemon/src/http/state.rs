//! [`HttpState`]: what the HTTP handlers read. It exists before the host
//! does (the listener is bound before any plugin starts, so that a probe
//! sees "starting" rather than a refused connection); the host is attached
//! once it has started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use outboard_host::Host;
use prometheus_client::registry::Registry;

use super::blocking::Blocking;
use crate::logs::LogBook;
use crate::usage::{GroupUsage, Sampler};

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    shared: Arc<Shared>,
    /// The registry `/metrics` encodes: one collector over `shared`.
    registry: Arc<Registry>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("attached", &self.shared.host.get().is_some())
            .field("closing", &self.shared.closing())
            .finish_non_exhaustive()
    }
}

/// The daemon as the handlers see it.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The running host, once it has started.
    host: OnceLock<Arc<Host>>,
    /// True once the daemon began to stop: not ready any more.
    closing: AtomicBool,
    /// The plugins' log lines, counted.
    logs: LogBook,
    /// The plugins' process groups, sampled at each scrape. A sampler of
    /// its own: the control API's measures CPU% between its own calls.
    sampler: Mutex<Sampler>,
    /// The bound on the handlers' blocking reads.
    blocking: Blocking,
}

impl HttpState {
    /// The state of a daemon still starting, counting log lines in `logs`.
    pub fn new(logs: LogBook) -> HttpState {
        let shared = Arc::new(Shared {
            host: OnceLock::new(),
            closing: AtomicBool::new(false),
            logs,
            sampler: Mutex::new(Sampler::new()),
            blocking: Blocking::default(),
        });
        let registry = Arc::new(super::metrics::live_registry(shared.clone()));
        HttpState { shared, registry }
    }

    /// Attaches the host once every plugin has started; a second call
    /// changes nothing.
    pub fn attach(&self, host: Arc<Host>) {
        let _ = self.shared.host.set(host);
    }

    /// Says the daemon is stopping: `/readyz` answers 503 from now on.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
    }

    /// The shared part.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The registry `/metrics` encodes.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

impl Shared {
    /// The host, once attached.
    pub(crate) fn host(&self) -> Option<Arc<Host>> {
        self.host.get().cloned()
    }

    /// True once the daemon began to stop.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// The bound on the handlers' blocking reads.
    pub(crate) fn blocking(&self) -> &Blocking {
        &self.blocking
    }

    /// The log book.
    pub(crate) fn logs(&self) -> &LogBook {
        &self.logs
    }

    /// `groups`' figures now (blocking reads of `/proc`).
    pub(crate) fn sample(&self, groups: &[u32]) -> std::io::Result<HashMap<u32, GroupUsage>> {
        self.sampler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(groups)
    }
}
