//! Starting plugins together in dependency order, and stopping them
//! dependents first: shared by [`Host::start`](super::Host::start), reloads
//! and the free functions [`start_all`] and [`stop_all`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::config::PluginSpec;
use crate::depends::{self, Node, StartOrder, Turn};
use crate::error::{Error, ErrorKind};
use crate::instance::Plugin;
use crate::manifest::Manifest;
use crate::supervisor::{Instance, Supervisor};

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

/// Starts every plugin at once, each configured once the plugins it
/// depends on are ready; returns the ready ones (sorted by name) and the
/// failures (sorted by plugin name).
pub async fn start_all(specs: Vec<PluginSpec>) -> (Vec<Plugin>, Vec<(String, Error)>) {
    start_each(specs, Vec::new(), |spec, turn| async move {
        Plugin::start_in_turn(&spec, Some(&turn)).await
    })
    .await
}

/// Stops every plugin at once.
pub async fn stop_all(plugins: Vec<Plugin>) {
    let mut stopping = JoinSet::new();
    for plugin in plugins {
        stopping.spawn(plugin.stop());
    }
    while stopping.join_next().await.is_some() {}
}

/// Runs `start` on every spec at once, each with its [`Turn`] in one start
/// order beside the `running` plugins (ready already); returns what
/// started, sorted by plugin name, and the failures, sorted by plugin name.
pub(super) async fn start_each<T, F, S>(
    specs: Vec<PluginSpec>,
    running: Vec<(String, Manifest)>,
    start: S,
) -> (Vec<T>, Vec<(String, Error)>)
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
    S: Fn(PluginSpec, Arc<Turn>) -> F,
{
    let names = specs.iter().map(|s| s.name.clone()).collect();
    let order = StartOrder::joining(names, running);
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
                    ErrorKind::Unhealthy(format!("start task failed: {join}")),
                ),
            )),
        }
    }
    plugins.sort_by(|a, b| a.0.cmp(&b.0));
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    (plugins.into_iter().map(|(_, p)| p).collect(), failures)
}

/// Terminates instances that were started but will not be supervised.
pub(super) async fn terminate_all(instances: &[Arc<dyn Instance>]) {
    futures_util::future::join_all(instances.iter().map(|i| i.terminate())).await;
}

/// Stops `plugins`, dependents before what they depend on, one layer after
/// another, each layer at once.
pub(super) async fn stop_in_order(plugins: &[Arc<Supervisor>]) {
    for layer in stop_order(plugins) {
        let stops = layer.iter().map(|p| p.stop());
        futures_util::future::join_all(stops).await;
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

/// The dependency problems of a whole set of plugins, each as an error
/// naming the plugin: what a reload checks before it installs a new set.
pub(super) fn graph_problems(plugins: &[(String, Arc<Manifest>)]) -> Vec<Error> {
    let nodes: Vec<Node<'_>> = plugins
        .iter()
        .map(|(name, manifest)| Node {
            name,
            manifest: Some(manifest),
        })
        .collect();
    depends::plan(&nodes)
        .into_iter()
        .zip(plugins)
        .filter_map(|(planned, (name, _))| {
            planned
                .err()
                .map(|errors| Error::new(name, ErrorKind::Dependencies(errors)))
        })
        .collect()
}
