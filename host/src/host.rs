//! The host as a program embedding Outboard uses it: start the configured
//! plugins, dispatch phases to them, stop them.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use outboard_host::{Host, registry};
//!
//! let config = registry::load("outboard.toml")?;
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
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::dispatch::{self, Report, Route, Subscriber};
use crate::error::Error;
use crate::phase::{self, PhaseSpec};
use crate::plugin::Plugin;
use crate::registry::{HostConfig, PluginSpec};

/// Running plugins and the phases they serve.
#[derive(Debug)]
pub struct Host {
    plugins: Vec<Arc<Plugin>>,
    phases: BTreeMap<String, PhaseSpec>,
    routes: HashMap<String, Route>,
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
    /// Starts every plugin of `config` at once. If any fails, the others are
    /// stopped and every failure is returned.
    pub async fn start(config: &HostConfig) -> Result<Host, StartFailures> {
        let (plugins, failures) = start_all(config.plugins.clone()).await;
        if !failures.is_empty() {
            stop_all(plugins).await;
            return Err(StartFailures(
                failures.into_iter().map(|(_, e)| e).collect(),
            ));
        }
        Ok(Host::new(plugins, &config.phases))
    }

    /// A host over plugins already started. `phases` are the declared
    /// phases; the job profile's defaults fill in its phases not declared.
    pub fn new(plugins: Vec<Plugin>, phases: &BTreeMap<String, PhaseSpec>) -> Host {
        let mut all_phases = phase::job_profile();
        all_phases.extend(phases.iter().map(|(k, v)| (k.clone(), *v)));
        let plugins: Vec<Arc<Plugin>> = plugins.into_iter().map(Arc::new).collect();
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
        }
    }

    /// Runs `phase` on its subscribers. A phase nobody subscribes to passes
    /// with an empty report.
    pub async fn dispatch(&self, phase: &str, context: Map<String, Value>) -> Report {
        match self.routes.get(phase) {
            Some(route) => dispatch::run(route, context).await,
            None => {
                let spec = self.phases.get(phase).copied().unwrap_or_default();
                dispatch::run(&route(phase, spec, &[]), context).await
            }
        }
    }

    /// The running plugins, by name.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The phase's declaration (the default: sequential, fail closed).
    pub fn phase(&self, name: &str) -> PhaseSpec {
        self.phases.get(name).copied().unwrap_or_default()
    }

    /// The phase's subscribers in the order a sequential dispatch runs them.
    pub fn subscribers(&self, phase: &str) -> &[Subscriber] {
        self.routes.get(phase).map_or(&[], |r| &r.subscribers)
    }

    /// Stops every plugin at once, each with its full stop sequence.
    pub async fn stop(self) {
        // The routes hold the other references to the plugins.
        drop(self.routes);
        let plugins = self
            .plugins
            .into_iter()
            .filter_map(|p| match Arc::try_unwrap(p) {
                Ok(plugin) => Some(plugin),
                // Still referenced elsewhere: the last holder's drop kills
                // its process group and removes its directory.
                Err(shared) => {
                    tracing::warn!(
                        plugin = shared.name(),
                        "still in use at stop; killed when released"
                    );
                    None
                }
            })
            .collect();
        stop_all(plugins).await;
    }
}

/// Resolves who runs `phase`, in which order, with which timeout and policy.
fn route(phase: &str, spec: PhaseSpec, plugins: &[Arc<Plugin>]) -> Route {
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

/// Starts every plugin at once; returns the ready ones (sorted by name) and
/// the failures (sorted by plugin name).
pub async fn start_all(specs: Vec<PluginSpec>) -> (Vec<Plugin>, Vec<(String, Error)>) {
    let mut starting = JoinSet::new();
    for spec in specs {
        starting.spawn(async move { (spec.name.clone(), Plugin::start(&spec).await) });
    }
    let mut plugins = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = starting.join_next().await {
        match joined {
            Ok((_, Ok(plugin))) => plugins.push(plugin),
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
    plugins.sort_by(|a, b| a.name().cmp(b.name()));
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    (plugins, failures)
}

/// Stops every plugin at once.
pub async fn stop_all(plugins: Vec<Plugin>) {
    let mut stopping = JoinSet::new();
    for plugin in plugins {
        stopping.spawn(plugin.stop());
    }
    while stopping.join_next().await.is_some() {}
}
