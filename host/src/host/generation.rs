//! The routing snapshot ("generation"): which plugins are routed, every
//! phase's declaration, and each phase's [`Route`], built together and
//! never changed afterwards.
//!
//! The host holds the current generation behind one lock and swaps in a
//! whole new one when its routes change (a reload, a disable or enable, a
//! restarted plugin whose manifest changed). A dispatch clones the `Arc` of
//! the current one (the lock is held only for that) and runs entirely on
//! it, so it sees the old routing or the new one, never a mix.
//!
//! A replaced generation lives as long as dispatches still run on it; when
//! the last one finishes, it is dropped, and its drop is what [`Retired`]
//! waits for (no polling) before plugins that left the routes are stopped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::config::{self, PhaseSpec};
use crate::dispatch::{Route, Subscriber};
use crate::figures::Ledger;
use crate::manifest::Manifest;
use crate::supervisor::Supervisor;

/// One immutable routing: what every dispatch started while it is current
/// runs on.
#[derive(Debug)]
pub(super) struct Generation {
    /// Every phase's declaration: the job profile's defaults, then the
    /// config's.
    phases: BTreeMap<String, PhaseSpec>,
    /// Each phase declared or subscribed to, with its subscribers.
    routes: HashMap<String, Route>,
    /// The manifest each routed plugin's subscriptions were read from.
    manifests: HashMap<String, Arc<Manifest>>,
    /// Dropped with the generation: tells [`Retired`] that no dispatch runs
    /// on it any more.
    alive: watch::Sender<()>,
}

impl Generation {
    /// No routes at all: what a host holds until its first build.
    pub(super) fn empty() -> Generation {
        Generation {
            phases: BTreeMap::new(),
            routes: HashMap::new(),
            manifests: HashMap::new(),
            alive: watch::Sender::new(()),
        }
    }

    /// The routes of `plugins` (each by its latest manifest) for the
    /// phases `declared` (the config's) and the job profile's, each with
    /// its counters from `figures`.
    pub(super) fn build(
        plugins: &[Arc<Supervisor>],
        declared: &BTreeMap<String, PhaseSpec>,
        figures: &Ledger,
    ) -> Generation {
        let mut phases = config::job_profile();
        phases.extend(declared.iter().map(|(k, v)| (k.clone(), *v)));
        // Read once: a restart between two reads must not split a plugin's
        // routes over two manifests.
        let manifests: HashMap<String, Arc<Manifest>> = plugins
            .iter()
            .map(|p| (p.name().to_owned(), p.manifest()))
            .collect();
        let mut routes = HashMap::new();
        let subscribed = manifests
            .values()
            .flat_map(|m| m.subscriptions.iter().map(|s| s.phase.as_str()));
        for name in phases.keys().map(String::as_str).chain(subscribed) {
            if !routes.contains_key(name) {
                let spec = phases.get(name).copied().unwrap_or_default();
                let counters = Some(figures.phase(name));
                let route = Route::resolve(name, spec, plugins, counters);
                routes.insert(name.to_owned(), route);
            }
        }
        Generation {
            phases,
            routes,
            manifests,
            alive: watch::Sender::new(()),
        }
    }

    /// The route of `phase`, if it is declared or subscribed to.
    pub(super) fn route(&self, phase: &str) -> Option<&Route> {
        self.routes.get(phase)
    }

    /// The phase's declaration (the default: sequential, fail closed).
    pub(super) fn phase(&self, name: &str) -> PhaseSpec {
        self.phases.get(name).copied().unwrap_or_default()
    }

    /// The phase's subscribers in the order a sequential dispatch runs them.
    pub(super) fn subscribers(&self, phase: &str) -> &[Subscriber] {
        self.routes.get(phase).map_or(&[], |r| &r.subscribers)
    }

    /// True if `plugin` is routed here by a manifest whose routes differ
    /// from its latest one (its binary was upgraded and it restarted).
    pub(super) fn outdated_for(&self, plugin: &Supervisor) -> bool {
        self.manifests
            .get(plugin.name())
            .is_some_and(|routed| !same_routes(routed, &plugin.manifest()))
    }

    /// A handle that resolves once this generation is dropped.
    fn retirement(&self) -> watch::Receiver<()> {
        self.alive.subscribe()
    }
}

/// True if routes built from `a` and from `b` are the same: the same
/// subscriptions (and, for the status, the same version).
fn same_routes(a: &Manifest, b: &Manifest) -> bool {
    a.subscriptions == b.subscriptions && a.version == b.version
}

/// Generations replaced but perhaps still running dispatches.
#[derive(Debug, Default)]
pub(super) struct Retired {
    /// One handle per replaced generation not known to be gone.
    pending: Mutex<Vec<watch::Receiver<()>>>,
}

impl Retired {
    /// Records `generation`, just replaced.
    pub(super) fn add(&self, generation: &Generation) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget those already gone, so the list stays short.
        pending.retain(|r| r.has_changed().is_ok());
        pending.push(generation.retirement());
    }

    /// Waits until every generation replaced so far is gone: no dispatch
    /// runs on an old routing any more.
    pub(super) async fn drained(&self) {
        let pending: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for mut retirement in pending {
            // Nothing is ever sent: this resolves (with an error) when the
            // generation, and with it the sender, is dropped.
            while retirement.changed().await.is_ok() {}
        }
    }
}
