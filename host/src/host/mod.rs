//! The host as a program embedding Outboard uses it: start the configured
//! plugins, dispatch phases to them, change them while they run (reload,
//! disable, enable), stop them.
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
//! let plan = host.reload(&config::load("outboard.toml")?).await?;
//! println!("reloaded: {plan:?}");
//! host.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Routing
//!
//! Dispatches run on a routing snapshot, a *generation* (see
//! `generation`): the routed plugins, the phases' declarations and each
//! phase's subscribers, built together and swapped whole. A dispatch takes
//! the current one when it starts and keeps it to the end, so it sees the
//! routing before a change or after it, never a mix. Routes are rebuilt
//! when a reload is applied, when a plugin is disabled or enabled, and when
//! a plugin restarts with a manifest whose subscriptions differ (its
//! binary was upgraded in place).
//!
//! # Reload
//!
//! [`Host::plan`] says what a new configuration changes (see `plan`);
//! [`Host::reload`] applies it blue/green: the added plugins and the new
//! instances of the changed ones start (in dependency order, beside the
//! running ones), and only once all are ready is the new generation
//! swapped in; then the host waits for every dispatch still running on an
//! older generation (woken by the generation's drop, no polling), and only
//! then stops the removed plugins and the old instances, dependents first.
//! If anything fails before the swap, the new instances are stopped and the
//! running set and its routing are as they were. Reloads, disables and
//! enables run one at a time. A reload stuck waiting for old dispatches is
//! bounded by their calls' timeouts.
//!
//! # Disable and enable
//!
//! An operator's [`Host::disable`] takes the plugin out of every route (a
//! new generation), lets the dispatches under way finish, then stops it;
//! its state is [`State::Disabled`] until [`Host::enable`] starts it again
//! and, once its start has come to something, routes it again. A disabled
//! plugin stays disabled across reloads (with its new config if that
//! changed); a reload that removes it forgets it. While disabled, a plugin
//! is routed as if it were not configured: a phase whose only subscriber it
//! is has no subscribers, and passes with the context unchanged. A restart
//! does not enable it.
//!
//! # Layout
//!
//! - this file: [`Host`] and the state its methods share.
//! - `generation`: the routing snapshot, and the wait for retired ones.
//! - `plan`: [`ReloadPlan`], computed from the running set and a config.
//! - `reload`: applying a plan; disable and enable.
//! - `events`: [`HostEvent`] and the forwarding of plugin status changes.
//! - `start`: starting in dependency order, stopping dependents first.
//! - `gate`: dispatches in flight, for a draining shutdown.

mod events;
mod gate;
mod generation;
mod plan;
mod reload;
mod start;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};

use crate::config::{HostConfig, PhaseSpec, PluginSpec, SecretSpec};
use crate::dispatch::{self, Report, Route, Subscriber};
use crate::figures::{Figures, JobResult, Ledger};
use crate::instance::Plugin;
use crate::supervisor::{Instance, Launcher, PluginLauncher, Supervisor};

pub use events::HostEvent;
pub use plan::{PluginChange, ReloadPlan};
pub use reload::{NoSuchPlugin, ReloadError};
pub use start::{StartFailures, start_all, stop_all};

use gate::Gate;
use generation::{Generation, Retired};

/// Running plugins, each under supervision, and the phases they serve.
#[derive(Debug)]
pub struct Host {
    shared: Arc<Shared>,
}

/// A weak handle on a [`Host`] ([`Host::handle`]): sees its plugins while
/// it lives, nothing once it is gone.
#[derive(Debug, Clone)]
pub struct HostHandle(std::sync::Weak<Shared>);

impl HostHandle {
    /// The configured plugins, disabled ones included; none once the host
    /// is gone.
    pub fn plugins(&self) -> Vec<Arc<Supervisor>> {
        let Some(shared) = self.0.upgrade() else {
            return Vec::new();
        };
        let roster = shared.roster();
        roster.members.values().map(|m| m.plugin.clone()).collect()
    }

    /// The configured plugin called `name`, while the host lives.
    pub fn plugin(&self, name: &str) -> Option<Arc<Supervisor>> {
        let shared = self.0.upgrade()?;
        let roster = shared.roster();
        roster.members.get(name).map(|m| m.plugin.clone())
    }
}

/// What the host's methods, and the tasks following its plugins, share.
#[derive(Debug)]
struct Shared {
    /// The current routing; held only to clone or replace it.
    routing: RwLock<Arc<Generation>>,
    /// Who is configured; the lock also orders route rebuilds.
    roster: Mutex<Roster>,
    /// Replaced generations, until no dispatch runs on them.
    retired: Retired,
    /// Held by a reload, a disable or an enable, so they run one at a time.
    changing: tokio::sync::Mutex<()>,
    /// Dispatches in flight, and whether new ones are refused.
    gate: Gate,
    /// Status changes, dispatches and reloads, for [`Host::events`].
    events: broadcast::Sender<HostEvent>,
    /// How plugins are started: a process, or in memory in tests.
    launcher: Arc<dyn Launcher>,
    /// Every figure, by plugin and phase name, for the host's life.
    figures: Ledger,
    /// The `[secrets]` of the configuration last started or reloaded.
    secrets: watch::Sender<SecretSpecs>,
}

/// The configured secrets by name: their sources, never a value.
pub type SecretSpecs = Arc<BTreeMap<String, SecretSpec>>;

/// The configured plugins and phases.
#[derive(Debug, Default)]
struct Roster {
    /// Every configured plugin by name, disabled ones included.
    members: BTreeMap<String, Member>,
    /// The config's `[phases.NAME]` declarations.
    declared: BTreeMap<String, PhaseSpec>,
}

impl Roster {
    /// Adds `plugin`, enabled, under its name.
    fn enlist(&mut self, plugin: Arc<Supervisor>) {
        let member = Member {
            plugin,
            disabled: false,
        };
        self.members.insert(member.plugin.name().to_owned(), member);
    }
}

/// One configured plugin.
#[derive(Debug)]
struct Member {
    /// Its supervisor.
    plugin: Arc<Supervisor>,
    /// True while an operator has it disabled (it is then not routed).
    disabled: bool,
}

impl Host {
    /// Starts every plugin of `config` at once, each configured only once
    /// the plugins it depends on are ready. If any but an optional one
    /// fails (a missing, unsatisfied or cyclic dependency included), the
    /// others are stopped and every failure is returned; an optional one
    /// that fails is supervised from its failure (restarting as its policy
    /// says) and the host starts without it.
    pub async fn start(config: &HostConfig) -> Result<Host, StartFailures> {
        Host::start_with(config, Arc::new(PluginLauncher::default())).await
    }

    /// [`Host::start`] with plugins started (and restarted) by `launcher`:
    /// an in-memory one in tests.
    pub async fn start_with(
        config: &HostConfig,
        launcher: Arc<dyn Launcher>,
    ) -> Result<Host, StartFailures> {
        let sandboxes = config.plugins.iter().map(|p| (p.name.as_str(), &p.sandbox));
        for (uid, names) in crate::sandbox::shared_users(sandboxes, crate::sandbox::offers()) {
            tracing::warn!(
                "plugins {} all run as uid {uid} (sandbox.user): they can reach each other's \
                 runtime directories, signal and trace each other; give each its own user",
                names.join(", ")
            );
        }
        let starter = launcher.clone();
        let (instances, failures) =
            start::start_each(config.plugins.clone(), Vec::new(), move |spec, turn| {
                let launcher = starter.clone();
                async move { launcher.launch_in_turn(&spec, &turn).await }
            })
            .await;
        // An optional plugin that failed does not keep the others from
        // running: it is supervised from its failure, started again as its
        // policy says. Any other failure fails the start.
        let optional = |name: &str| config.plugins.iter().find(|s| s.name == name && s.optional);
        if failures.iter().any(|(name, _)| optional(name).is_none()) {
            start::terminate_all(&instances).await;
            return Err(StartFailures(
                failures.into_iter().map(|(_, e)| e).collect(),
            ));
        }
        let host = Host::supervising(instances, launcher, &config.phases);
        host.shared
            .secrets
            .send_replace(Arc::new(config.secrets.clone()));
        host.shared.supervise_unstarted(
            failures
                .into_iter()
                .filter_map(|(name, err)| Some((optional(&name)?.clone(), err.to_string()))),
        );
        Ok(host)
    }

    /// A host over plugins already started. `phases` are the declared
    /// phases; the job profile's defaults fill in its phases not declared.
    pub fn new(plugins: Vec<Plugin>, phases: &BTreeMap<String, PhaseSpec>) -> Host {
        let instances = plugins
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn Instance>)
            .collect();
        Host::supervising(instances, Arc::new(PluginLauncher::default()), phases)
    }

    /// A host over instances already started, restarted by `launcher`.
    fn supervising(
        instances: Vec<Arc<dyn Instance>>,
        launcher: Arc<dyn Launcher>,
        phases: &BTreeMap<String, PhaseSpec>,
    ) -> Host {
        let shared = Arc::new(Shared {
            routing: RwLock::new(Arc::new(Generation::empty())),
            roster: Mutex::new(Roster {
                members: BTreeMap::new(),
                declared: phases.clone(),
            }),
            retired: Retired::default(),
            changing: tokio::sync::Mutex::new(()),
            gate: Gate::default(),
            events: events::channel(),
            launcher,
            figures: Ledger::default(),
            secrets: watch::Sender::new(SecretSpecs::default()),
        });
        {
            let mut roster = shared.roster();
            for instance in instances {
                roster.enlist(shared.supervise(instance));
            }
            shared.reroute(&roster);
        }
        Host { shared }
    }

    /// Runs `phase` on its subscribers, as routed when it starts. A phase
    /// nobody subscribes to passes with an empty report.
    pub async fn dispatch(&self, phase: &str, context: Map<String, Value>) -> Report {
        let Some(_pass) = self.shared.gate.enter() else {
            if let Some(route) = self.shared.routing().route(phase) {
                route.refused();
            }
            let report = dispatch::refused(phase, context, "the host is shutting down");
            events::dispatched(&self.shared.events, &report);
            return report;
        };
        // Held to the end: the routing this dispatch runs on stays alive
        // (and its plugins running) until it is done.
        let routing = self.shared.routing();
        let report = match routing.route(phase) {
            Some(route) => dispatch::run(route, context).await,
            // Not routed: no figures, so that a caller naming phases at
            // will cannot grow them.
            None => {
                let route = Route::resolve(phase, routing.phase(phase), &[], None);
                dispatch::run(&route, context).await
            }
        };
        drop(routing);
        events::dispatched(&self.shared.events, &report);
        report
    }

    /// The configured plugins, by name, disabled ones included: a snapshot.
    pub fn plugins(&self) -> Vec<Arc<Supervisor>> {
        let roster = self.shared.roster();
        roster.members.values().map(|m| m.plugin.clone()).collect()
    }

    /// The configured plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<Arc<Supervisor>> {
        let roster = self.shared.roster();
        roster.members.get(name).map(|m| m.plugin.clone())
    }

    /// A handle on the host's plugins that does not keep the host alive:
    /// for a service that follows the host from its own tasks.
    pub fn handle(&self) -> HostHandle {
        HostHandle(Arc::downgrade(&self.shared))
    }

    /// Restarts the plugin called `name`: at once if it runs, afresh if it
    /// is quarantined (a disabled plugin stays disabled: see
    /// [`Host::enable`]). False if there is no such plugin.
    pub fn restart(&self, name: &str) -> bool {
        self.plugin(name).map(|p| p.restart()).is_some()
    }

    /// The phase's declaration (the default: sequential, fail closed).
    pub fn phase(&self, name: &str) -> PhaseSpec {
        self.shared.routing().phase(name)
    }

    /// The phase's subscribers in the order a sequential dispatch runs them,
    /// as routed now.
    pub fn subscribers(&self, phase: &str) -> Vec<Subscriber> {
        self.shared.routing().subscribers(phase).to_vec()
    }

    /// Every figure the host keeps, at one moment: per plugin, per plugin ×
    /// phase, per phase, jobs. Kept by name from the host's start, across
    /// restarts and reloads of a plugin, so a count never goes backwards
    /// while the host lives.
    pub fn figures(&self) -> Figures {
        self.shared.figures.figures()
    }

    /// Counts a job that ended with `result` in [`Host::figures`]: jobs run
    /// on this host's phases (`job::run` calls it through
    /// [`Phases`](crate::job::Phases)), or reported by a client that ran
    /// one through a daemon.
    pub fn job_ended(&self, result: JobResult) {
        self.shared.figures.job_ended(result);
    }

    /// The configured secrets (sources only), updated by every reload
    /// applied: what a host-services implementation reads them from.
    pub fn secrets(&self) -> watch::Receiver<SecretSpecs> {
        self.shared.secrets.subscribe()
    }

    /// Status changes of every plugin, completed dispatches and reloads,
    /// from now on (see `events`).
    pub fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.shared.events.subscribe()
    }

    /// Dispatches under way now.
    pub fn in_flight(&self) -> usize {
        self.shared.gate.in_flight()
    }

    /// Shuts the host down gracefully: new dispatches are refused, those in
    /// flight finish (each is bounded by its calls' deadlines), then every
    /// plugin is stopped, dependents before what they depend on.
    pub async fn shutdown(&self) {
        self.close();
        self.shared.gate.drained().await;
        self.stop_plugins().await;
    }

    /// [`Host::shutdown`], waiting at most `drain` for the dispatches in
    /// flight: those still running then fail as their plugins stop. A
    /// reload, disable or enable under way is let finish first (each is
    /// bounded by start and call timeouts), so that nothing it starts
    /// outlives the host.
    pub async fn shutdown_within(&self, drain: Duration) {
        self.close();
        if tokio::time::timeout(drain, self.shared.gate.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.in_flight(),
                "dispatches still in flight after {}; stopping the plugins anyway",
                humantime::format_duration(drain)
            );
        }
        self.stop_plugins().await;
    }

    /// Refuses new dispatches, and tells every supervisor that its stop is
    /// coming: a plugin process lost from now on (a caller may kill every
    /// process group on a second signal) is not restarted.
    fn close(&self) {
        self.shared.gate.close();
        for plugin in self.plugins() {
            plugin.expect_stop();
        }
    }

    /// [`Host::shutdown`], for an owned host.
    pub async fn stop(self) {
        self.shutdown().await;
    }

    /// Stops every plugin, dependents first, once no reload, disable or
    /// enable is under way (a reload sees the closed gate and gives up).
    async fn stop_plugins(&self) {
        let _one_at_a_time = self.shared.changing.lock().await;
        // A reload let finish may have added plugins since `close`.
        self.close();
        let plugins = self.plugins();
        start::stop_in_order(&plugins).await;
    }
}

impl Shared {
    /// The roster, locked.
    fn roster(&self) -> MutexGuard<'_, Roster> {
        // Every update of the roster is complete before anything that can
        // panic: a poisoned lock still holds a consistent roster.
        self.roster.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current routing.
    fn routing(&self) -> Arc<Generation> {
        self.routing
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Builds the routes of `roster` (the caller holds its lock, which
    /// orders rebuilds) and swaps them in.
    fn reroute(&self, roster: &Roster) {
        let routed: Vec<Arc<Supervisor>> = roster
            .members
            .values()
            .filter(|m| !m.disabled)
            .map(|m| m.plugin.clone())
            .collect();
        let next = Arc::new(Generation::build(&routed, &roster.declared, &self.figures));
        let previous = std::mem::replace(
            &mut *self.routing.write().unwrap_or_else(PoisonError::into_inner),
            next,
        );
        self.retired.add(&previous);
    }

    /// Rebuilds the routes if `plugin` is routed by an older manifest than
    /// its latest.
    fn reroute_if_outdated(&self, plugin: &Supervisor) {
        let roster = self.roster();
        if self.routing().outdated_for(plugin) {
            tracing::info!(
                plugin = plugin.name(),
                "restarted with a manifest whose subscriptions differ; routes rebuilt"
            );
            self.reroute(&roster);
        }
    }

    /// True if the supervisor `me` speaks for the plugin `name`: it is the
    /// configured one, or the plugin was removed (its stop is news); false
    /// once another supervisor replaced it.
    fn speaks_for(&self, name: &str, me: &std::sync::Weak<Supervisor>) -> bool {
        match self.roster().members.get(name) {
            Some(member) => std::ptr::eq(Arc::as_ptr(&member.plugin), me.as_ptr()),
            None => true,
        }
    }

    /// Supervises `instance`, forwarding its status changes to the events,
    /// and warns about the config's overrides its manifest ignores.
    fn supervise(self: &Arc<Self>, instance: Arc<dyn Instance>) -> Arc<Supervisor> {
        let stats = self.figures.plugin(instance.name());
        let plugin = Supervisor::counted(instance, self.launcher.clone(), stats);
        self.watch(&plugin);
        plugin
    }

    /// Supervises each optional plugin whose first start failed (its spec
    /// and why), beside the running ones, and reroutes.
    fn supervise_unstarted(self: &Arc<Self>, failed: impl Iterator<Item = (PluginSpec, String)>) {
        let mut roster = self.roster();
        for (spec, why) in failed {
            let stats = self.figures.plugin(&spec.name);
            let plugin = Supervisor::unstarted(spec, why, self.launcher.clone(), stats);
            // No manifest yet, so no subscription to check against the
            // config's; its status changes are followed all the same.
            events::follow(self, &plugin);
            roster.enlist(plugin);
        }
        self.reroute(&roster);
    }

    /// Forwards `plugin`'s status changes, and warns about the config's
    /// subscription overrides its manifest ignores.
    fn watch(self: &Arc<Self>, plugin: &Arc<Supervisor>) {
        events::follow(self, plugin);
        let manifest = plugin.manifest();
        for phase in plugin.spec().subscriptions.keys() {
            if manifest.subscription(phase).is_none() {
                tracing::warn!(
                    plugin = plugin.name(),
                    "the config overrides its subscription to phase {phase}, \
                     but its manifest does not subscribe to {phase}; ignored"
                );
            }
        }
    }
}
