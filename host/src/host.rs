//! The host as a program embedding Outboard uses it: start the configured
//! plugins, dispatch phases to them, stop them.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use outboard_host::{Host, config};
//!
//! let config = config::load("outboard.toml")?;
//! let host = Host::start(&config).await?;
//! let context = serde_json::json!({"env": {}});
//! let report = host.dispatch("pre_container", context.as_object().cloned().unwrap_or_default()).await;
//! println!("{:?}: {}", report.verdict, report.context);
//! host.stop().await;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::config::{self, PhaseSpec};
use crate::config::{HostConfig, PluginSpec};
use crate::depends::{self, Node, StartOrder, Turn};
use crate::dispatch::{self, Report, Route, Subscriber};
use crate::error::Error;
use crate::instance::Plugin;
use crate::supervisor::{Instance, Launcher, PluginLauncher, Supervisor};

/// Running plugins, each under supervision, and the phases they serve.
#[derive(Debug)]
pub struct Host {
    plugins: Vec<Arc<Supervisor>>,
    phases: BTreeMap<String, PhaseSpec>,
    routes: HashMap<String, Route>,
    /// Dispatches under way, and whether new ones are refused.
    gate: Gate,
}

/// Counts dispatches in flight so that shutdown can wait for them.
#[derive(Debug, Default)]
struct Gate {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    drained: Notify,
}

/// Marks one dispatch in flight while it lives.
struct Pass<'g>(&'g Gate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Gate {
    fn enter(&self) -> Option<Pass<'_>> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let pass = Pass(self);
        (!self.closed.load(Ordering::Acquire)).then_some(pass)
    }

    async fn close_and_drain(&self) {
        self.closed.store(true, Ordering::Release);
        loop {
            let drained = self.drained.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            drained.await;
        }
    }
}

/// Plugins that failed to start; the others were stopped again.
#[derive(Debug)]
pub struct StartFailures(pub Vec<Error>);

impl fmt::Display for StartFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StartFailures {}

impl Host {
    /// Starts every plugin of `config` at once, each configured only once
    /// the plugins it depends on are ready. If any fails (a missing,
    /// unsatisfied or cyclic dependency included), the others are stopped
    /// and every failure is returned.
    pub async fn start(config: &HostConfig) -> Result<Host, StartFailures> {
        Host::start_with(config, Arc::new(PluginLauncher)).await
    }

    /// [`Host::start`] with plugins started (and restarted) by `launcher`:
    /// an in-memory one in tests.
    pub async fn start_with(
        config: &HostConfig,
        launcher: Arc<dyn Launcher>,
    ) -> Result<Host, StartFailures> {
        let starter = launcher.clone();
        let (instances, failures) = start_each(config.plugins.clone(), move |spec, turn| {
            let launcher = starter.clone();
            async move { launcher.launch_in_turn(&spec, &turn).await }
        })
        .await;
        if !failures.is_empty() {
            let stops = instances.iter().map(|i| i.terminate());
            futures_util::future::join_all(stops).await;
            return Err(StartFailures(
                failures.into_iter().map(|(_, e)| e).collect(),
            ));
        }
        Ok(Host::supervising(instances, launcher, &config.phases))
    }

    /// A host over plugins already started. `phases` are the declared
    /// phases; the job profile's defaults fill in its phases not declared.
    pub fn new(plugins: Vec<Plugin>, phases: &BTreeMap<String, PhaseSpec>) -> Host {
        let instances = plugins
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn Instance>)
            .collect();
        Host::supervising(instances, Arc::new(PluginLauncher), phases)
    }

    /// A host over instances already started, restarted by `launcher`.
    fn supervising(
        instances: Vec<Arc<dyn Instance>>,
        launcher: Arc<dyn Launcher>,
        phases: &BTreeMap<String, PhaseSpec>,
    ) -> Host {
        let mut all_phases = config::job_profile();
        all_phases.extend(phases.iter().map(|(k, v)| (k.clone(), *v)));
        let plugins: Vec<Arc<Supervisor>> = instances
            .into_iter()
            .map(|i| Supervisor::supervise(i, launcher.clone()))
            .collect();
        let mut routes = HashMap::new();
        let subscribed = plugins
            .iter()
            .flat_map(|p| p.manifest().subscriptions.iter().map(|s| s.phase.clone()));
        for name in all_phases.keys().cloned().chain(subscribed) {
            if let std::collections::hash_map::Entry::Vacant(slot) = routes.entry(name) {
                let spec = all_phases.get(slot.key()).copied().unwrap_or_default();
                let route = route(slot.key(), spec, &plugins);
                slot.insert(route);
            }
        }
        for plugin in &plugins {
            for phase in plugin.spec().subscriptions.keys() {
                if plugin.manifest().subscription(phase).is_none() {
                    tracing::warn!(
                        plugin = plugin.name(),
                        "the config overrides its subscription to phase {phase}, \
                         but its manifest does not subscribe to {phase}; ignored"
                    );
                }
            }
        }
        Host {
            plugins,
            phases: all_phases,
            routes,
            gate: Gate::default(),
        }
    }

    /// Runs `phase` on its subscribers. A phase nobody subscribes to passes
    /// with an empty report.
    pub async fn dispatch(&self, phase: &str, context: Map<String, Value>) -> Report {
        let Some(_pass) = self.gate.enter() else {
            return dispatch::refused(phase, context, "the host is shutting down");
        };
        match self.routes.get(phase) {
            Some(route) => dispatch::run(route, context).await,
            None => {
                let spec = self.phases.get(phase).copied().unwrap_or_default();
                dispatch::run(&route(phase, spec, &[]), context).await
            }
        }
    }

    /// The supervised plugins, by name.
    pub fn plugins(&self) -> &[Arc<Supervisor>] {
        &self.plugins
    }

    /// The supervised plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Arc<Supervisor>> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// Restarts the plugin called `name`: at once if it runs, afresh if it
    /// is quarantined. False if there is no such plugin.
    pub fn restart(&self, name: &str) -> bool {
        self.plugin(name).map(|p| p.restart()).is_some()
    }

    /// The phase's declaration (the default: sequential, fail closed).
    pub fn phase(&self, name: &str) -> PhaseSpec {
        self.phases.get(name).copied().unwrap_or_default()
    }

    /// The phase's subscribers in the order a sequential dispatch runs them.
    pub fn subscribers(&self, phase: &str) -> &[Subscriber] {
        self.routes.get(phase).map_or(&[], |r| &r.subscribers)
    }

    /// Shuts the host down gracefully: new dispatches are refused, those in
    /// flight finish (each is bounded by its calls' deadlines), then every
    /// plugin is stopped, dependents before what they depend on.
    pub async fn shutdown(&self) {
        self.gate.close_and_drain().await;
        for layer in stop_order(&self.plugins) {
            let stops = layer.iter().map(|p| p.stop());
            futures_util::future::join_all(stops).await;
        }
    }

    /// [`Host::shutdown`], for an owned host.
    pub async fn stop(self) {
        self.shutdown().await;
    }
}

/// Layers of plugins to stop one after another: dependents first, as the
/// start's graph has it (`depends::stop_layers`).
fn stop_order(plugins: &[Arc<Supervisor>]) -> Vec<Vec<Arc<Supervisor>>> {
    let manifests: Vec<_> = plugins.iter().map(|p| p.manifest()).collect();
    let nodes: Vec<Node<'_>> = plugins
        .iter()
        .zip(&manifests)
        .map(|(p, m)| Node {
            name: p.name(),
            manifest: Some(m),
        })
        .collect();
    depends::stop_layers(&nodes)
        .into_iter()
        .map(|layer| layer.into_iter().map(|i| plugins[i].clone()).collect())
        .collect()
}

/// Resolves who runs `phase`, in which order, with which timeout and policy.
fn route(phase: &str, spec: PhaseSpec, plugins: &[Arc<Supervisor>]) -> Route {
    let mut subscribers: Vec<Subscriber> = plugins
        .iter()
        .filter_map(|plugin| {
            let wanted = plugin.manifest().subscription(phase)?;
            let config = plugin
                .spec()
                .subscriptions
                .get(phase)
                .copied()
                .unwrap_or_default();
            if !config.enabled {
                return None;
            }
            Some(Subscriber {
                plugin: plugin.clone(),
                name: plugin.name().into(),
                priority: config.priority.unwrap_or(wanted.priority),
                timeout: config
                    .timeout
                    .or(spec.timeout)
                    .unwrap_or(plugin.spec().call_timeout),
                policy: config.failure_policy.unwrap_or(spec.failure_policy),
                retry: match config.retry {
                    Some(retry) if wanted.idempotent => Some(retry),
                    Some(_) => {
                        tracing::warn!(
                            plugin = plugin.name(),
                            "retries configured for phase {phase}, but its manifest does not mark \
                             that subscription idempotent; not retried"
                        );
                        None
                    }
                    None => None,
                },
            })
        })
        .collect();
    subscribers.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
    Route {
        phase: phase.into(),
        spec,
        subscribers,
    }
}

/// Starts every plugin at once, each configured once the plugins it
/// depends on are ready; returns the ready ones (sorted by name) and the
/// failures (sorted by plugin name).
pub async fn start_all(specs: Vec<PluginSpec>) -> (Vec<Plugin>, Vec<(String, Error)>) {
    start_each(specs, |spec, turn| async move {
        Plugin::start_in_turn(&spec, Some(&turn)).await
    })
    .await
}

/// Runs `start` on every spec at once, each with its [`Turn`] in one start
/// order; returns what started, sorted by plugin name, and the failures,
/// sorted by plugin name.
async fn start_each<T, F, S>(specs: Vec<PluginSpec>, start: S) -> (Vec<T>, Vec<(String, Error)>)
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
    S: Fn(PluginSpec, Arc<Turn>) -> F,
{
    let order = StartOrder::new(specs.iter().map(|s| s.name.clone()).collect());
    let mut starting = JoinSet::new();
    for (index, spec) in specs.into_iter().enumerate() {
        let name = spec.name.clone();
        let turn = Arc::new(order.turn(index));
        let started = start(spec, turn.clone());
        starting.spawn(async move {
            let started = started.await;
            if started.is_ok() {
                turn.ready();
            }
            // Dropped unready (failed, panicked): dependents stop waiting.
            drop(turn);
            (name, started)
        });
    }
    let mut plugins = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = starting.join_next().await {
        match joined {
            Ok((name, Ok(plugin))) => plugins.push((name, plugin)),
            Ok((name, Err(err))) => failures.push((name, err)),
            // A start task panicked: a bug, but the host carries on and
            // reports it; its plugin was killed when the task unwound.
            Err(join) => failures.push((
                "(unknown)".to_owned(),
                Error::new(
                    "(unknown)",
                    crate::error::ErrorKind::Unhealthy(format!("start task failed: {join}")),
                ),
            )),
        }
    }
    plugins.sort_by(|a, b| a.0.cmp(&b.0));
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    (plugins.into_iter().map(|(_, p)| p).collect(), failures)
}

/// Stops every plugin at once.
pub async fn stop_all(plugins: Vec<Plugin>) {
    let mut stopping = JoinSet::new();
    for plugin in plugins {
        stopping.spawn(plugin.stop());
    }
    while stopping.join_next().await.is_some() {}
}
