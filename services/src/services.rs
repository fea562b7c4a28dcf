//! [`Services`]: host services for one host process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outboard_host::{Attach, Host, Launcher, PluginLauncher};
use outboard_state::{Database, KvStore};

use crate::error::ServicesError;
use crate::events::Events;
use crate::hosted::HostAttach;
use crate::options::ServicesOptions;
use crate::registry::Registry;

/// Host services for one host process: shared by every plugin instance it
/// launches, restarts and reloads included.
#[derive(Debug)]
pub struct Services {
    /// What every handler needs.
    pub(crate) shared: Arc<Shared>,
}

/// What every handler and every launch's server needs.
pub(crate) struct Shared {
    /// How the services were set up.
    pub(crate) options: ServicesOptions,
    /// The state database (the key-value store, the events' outbox).
    pub(crate) database: Arc<Database>,
    /// The key-value store: the database, seen through the trait a shared
    /// backend may implement later.
    pub(crate) kv: Arc<dyn KvStore>,
    /// Events: the outbox, fan-out and delivery.
    pub(crate) events: Arc<Events>,
    /// The live tokens.
    pub(crate) registry: Registry,
    /// Set by [`Services::shutdown`]: calls are refused from then on.
    pub(crate) stopping: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .field("database", &self.database)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Opens the state database in `options.state_dir` and readies secrets
    /// and events.
    pub fn open(options: ServicesOptions) -> Result<Arc<Services>, ServicesError> {
        let database =
            Arc::new(
                Database::open(&options.state_dir).map_err(|e| ServicesError::State {
                    dir: options.state_dir.clone(),
                    reason: e.to_string(),
                })?,
            );
        let events = Events::new(database.clone(), &options.scope, options.events);
        Ok(Arc::new(Services {
            shared: Arc::new(Shared {
                events,
                kv: database.clone(),
                database,
                options,
                registry: Registry::default(),
                stopping: AtomicBool::new(false),
            }),
        }))
    }

    /// The launcher that gives every launch its host socket and token (the
    /// host seam).
    pub fn launcher(self: &Arc<Self>) -> Arc<dyn Launcher> {
        Arc::new(PluginLauncher::attaching(self.attacher()))
    }

    /// The seam itself, for a launcher of one's own: each `attach` binds a
    /// host socket and a fresh token in the runtime directory it is given.
    pub fn attacher(&self) -> Arc<dyn Attach> {
        Arc::new(HostAttach::new(self.shared.clone()))
    }

    /// Called once the host has started: what needs the running host
    /// (delivering events to `host`'s plugins, publishing the host's own)
    /// starts here. The key-value calls need nothing of it: they are served
    /// from each launch on.
    pub fn serve(self: &Arc<Self>, host: &Host) {
        self.shared.events.serve(host);
    }

    /// Stops serving: calls arriving from now on fail `UNAVAILABLE`; event
    /// deliveries in hand finish within [`crate::events::SHUTDOWN_GRACE`]
    /// or stay pending for the next host (never lost).
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.events.shutdown().await;
    }

    /// Events: publish the host's own, emit an operator's, list and retry
    /// dead letters, let pending deliveries settle.
    pub fn events(&self) -> &Arc<Events> {
        &self.shared.events
    }

    /// How many plugin instances hold a live token: one per running
    /// instance (a token dies with its process).
    pub fn live_tokens(&self) -> usize {
        self.shared.registry.len()
    }

    /// The state database, shared by the key-value store and the events'
    /// outbox.
    pub fn database(&self) -> &Arc<Database> {
        &self.shared.database
    }

    /// The state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.shared.options.state_dir
    }
}
