//! Applying a plan blue/green, and an operator's disable and enable: each
//! changes who is routed, swaps a new generation in, and stops what left
//! the routes only once no dispatch runs on an older generation.

use std::sync::Arc;

use super::events::HostEvent;
use super::plan::{self, ReloadPlan, Running};
use super::start::{self, StartFailures};
use super::{Host, Member, Roster, Shared};
use crate::config::{HostConfig, PluginSpec};
use crate::error::Error;
use crate::figures::RestartReason;
use crate::manifest::Manifest;
use crate::supervisor::{Instance, Supervisor};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// New instances failed to start, or the new set's dependencies do not
    /// hold; each error names its plugin. The running set is untouched.
    #[error("reload failed, nothing changed: {0}")]
    Start(StartFailures),
    /// The host is shutting down.
    #[error("reload refused: the host is shutting down")]
    ShuttingDown,
}

impl ReloadError {
    /// Why, without saying again that the reload failed (for an event that
    /// says so itself).
    pub fn cause(&self) -> String {
        match self {
            ReloadError::Start(failures) => failures.to_string(),
            ReloadError::ShuttingDown => self.to_string(),
        }
    }
}

/// No plugin of that name is configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no plugin named {0} is configured")]
pub struct NoSuchPlugin(pub String);

impl Host {
    /// What [`Host::reload`] would do with `config`.
    pub fn plan(&self, config: &HostConfig) -> ReloadPlan {
        let roster = self.shared.roster();
        let running: Vec<Running<'_>> = roster
            .members
            .values()
            .map(|m| Running {
                spec: m.plugin.spec(),
                disabled: m.disabled,
            })
            .collect();
        plan::compute(&running, &roster.declared, config)
    }

    /// Applies `config` blue/green (see the module docs): returns the plan
    /// once the new routing is in and what it replaced is stopped; on an
    /// error nothing changed. Either way a [`HostEvent::Reload`] says so.
    pub async fn reload(&self, config: &HostConfig) -> Result<ReloadPlan, ReloadError> {
        let _one_at_a_time = self.shared.changing.lock().await;
        let plan = self.plan(config);
        let applied = if self.shared.gate.is_closed() {
            Err(ReloadError::ShuttingDown)
        } else {
            self.shared.apply(&plan, config).await
        };
        match &applied {
            Ok(()) => {
                tracing::info!("reload applied: {plan:?}");
                let secrets = Arc::new(config.secrets.clone());
                self.shared.secrets.send_replace(secrets);
            }
            Err(err) => tracing::warn!("{err}"),
        }
        let _ = self.shared.events.send(HostEvent::Reload {
            plan: plan.clone(),
            error: applied.as_ref().err().map(ReloadError::cause),
        });
        applied.map(|()| plan)
    }

    /// An operator's stop: the plugin leaves every route, the dispatches
    /// under way finish, then it stops, and stays stopped (across reloads
    /// too) until [`Host::enable`]. Nothing for a plugin already disabled.
    pub async fn disable(&self, name: &str) -> Result<(), NoSuchPlugin> {
        let _one_at_a_time = self.shared.changing.lock().await;
        let plugin = {
            let mut roster = self.shared.roster();
            let member = roster
                .members
                .get_mut(name)
                .ok_or_else(|| NoSuchPlugin(name.to_owned()))?;
            if member.disabled {
                return Ok(());
            }
            member.disabled = true;
            let plugin = member.plugin.clone();
            self.shared.reroute(&roster);
            plugin
        };
        self.shared.retired.drained().await;
        plugin.disable().await;
        tracing::info!(plugin = name, "disabled");
        Ok(())
    }

    /// Undoes [`Host::disable`]: starts the plugin, and routes it again once
    /// its start has come to something (ready, or failed and in its
    /// supervisor's hands like any configured plugin's). Nothing for a
    /// plugin that is not disabled.
    pub async fn enable(&self, name: &str) -> Result<(), NoSuchPlugin> {
        let _one_at_a_time = self.shared.changing.lock().await;
        let plugin = {
            let roster = self.shared.roster();
            let member = roster
                .members
                .get(name)
                .ok_or_else(|| NoSuchPlugin(name.to_owned()))?;
            if !member.disabled {
                return Ok(());
            }
            member.plugin.clone()
        };
        plugin.enable();
        plugin.settled().await;
        let mut roster = self.shared.roster();
        // Held `changing` since: still the member it was, still disabled.
        if let Some(member) = roster.members.get_mut(name) {
            member.disabled = false;
        }
        self.shared.reroute(&roster);
        tracing::info!(plugin = name, state = ?plugin.state(), "enabled");
        Ok(())
    }
}

impl Shared {
    /// Applies `plan` (of `config`): starts the new instances, checks the
    /// whole new set, swaps the routing, waits out the old routing, stops
    /// what it replaced.
    async fn apply(
        self: &Arc<Self>,
        plan: &ReloadPlan,
        config: &HostConfig,
    ) -> Result<(), ReloadError> {
        let starting: Vec<PluginSpec> = plan
            .added
            .iter()
            .chain(plan.changed.iter().map(|c| &c.name))
            .filter_map(|name| config.plugin(name).cloned())
            .collect();
        let running = self.staying(plan);
        let beside: Vec<(String, Manifest)> = running
            .iter()
            .filter(|(_, _, disabled)| !disabled)
            .map(|(name, manifest, _)| (name.clone(), Manifest::clone(manifest)))
            .collect();
        let launcher = self.launcher.clone();
        let (instances, failures) = start::start_each(starting, beside, move |spec, turn| {
            let launcher = launcher.clone();
            async move { launcher.launch_in_turn(&spec, &turn).await }
        })
        .await;
        let mut problems: Vec<Error> = failures.into_iter().map(|(_, e)| e).collect();
        if problems.is_empty() {
            let mut whole: Vec<(String, Arc<Manifest>)> = running
                .into_iter()
                .map(|(name, manifest, _)| (name, manifest))
                .collect();
            whole.extend(
                instances
                    .iter()
                    .map(|i| (i.name().to_owned(), Arc::new(i.manifest().clone()))),
            );
            problems = start::graph_problems(&whole);
        }
        if !problems.is_empty() || self.gate.is_closed() {
            start::terminate_all(&instances).await;
            return Err(if problems.is_empty() {
                ReloadError::ShuttingDown
            } else {
                ReloadError::Start(StartFailures(problems))
            });
        }
        let replaced = self.install(plan, config, instances);
        self.retired.drained().await;
        start::stop_in_order(&replaced).await;
        Ok(())
    }

    /// The plugins the plan keeps (unchanged and disabled ones): name, last
    /// manifest, disabled.
    fn staying(&self, plan: &ReloadPlan) -> Vec<(String, Arc<Manifest>, bool)> {
        let roster = self.roster();
        plan.unchanged
            .iter()
            .chain(&plan.disabled)
            .filter_map(|name| roster.members.get(name).map(|m| (name, m)))
            .map(|(name, m)| (name.clone(), m.plugin.manifest(), m.disabled))
            .collect()
    }

    /// Puts the new instances and the config's phases in the roster and
    /// swaps the routing; returns the supervisors they replaced or that
    /// were removed, to stop once the old routing is gone.
    fn install(
        self: &Arc<Self>,
        plan: &ReloadPlan,
        config: &HostConfig,
        instances: Vec<Arc<dyn Instance>>,
    ) -> Vec<Arc<Supervisor>> {
        let mut roster = self.roster();
        let mut replaced = Vec::new();
        for name in &plan.removed {
            replaced.extend(roster.members.remove(name).map(|m| m.plugin));
        }
        let mut added = Vec::new();
        for instance in instances {
            let plugin = self.supervise(instance);
            added.push(plugin.clone());
            let member = Member {
                plugin,
                disabled: false,
            };
            let name = member.plugin.name().to_owned();
            if let Some(old) = roster.members.insert(name, member) {
                // A changed plugin: its new instance is a restart.
                old.plugin.stats().restarted(RestartReason::Reload);
                replaced.push(old.plugin);
            }
        }
        for name in &plan.disabled {
            replaced.extend(self.respec_disabled(&mut roster, name, config));
        }
        // `optional` is no reason to restart: the plugins kept take it.
        for name in plan.unchanged.iter().chain(&plan.disabled) {
            if let (Some(member), Some(spec)) = (roster.members.get(name), config.plugin(name)) {
                member.plugin.set_optional(spec.optional);
            }
        }
        roster.declared = config.phases.clone();
        self.reroute(&roster);
        drop(roster);
        for plugin in added {
            let _ = self.events.send(HostEvent::Plugin {
                name: plugin.name().into(),
                status: plugin.status(),
            });
        }
        replaced
    }

    /// Gives the disabled plugin `name` its spec from `config`, if that
    /// changed: a new disabled supervisor, to start from it when enabled.
    /// Returns the one it replaced.
    fn respec_disabled(
        self: &Arc<Self>,
        roster: &mut Roster,
        name: &str,
        config: &HostConfig,
    ) -> Option<Arc<Supervisor>> {
        let spec = config.plugin(name)?;
        let member = roster.members.get_mut(name)?;
        if plan::differences(member.plugin.spec(), spec).is_empty() {
            return None;
        }
        let plugin = Supervisor::disabled(
            spec.clone(),
            member.plugin.manifest(),
            self.launcher.clone(),
            self.figures.plugin(name),
        );
        self.watch(&plugin);
        Some(std::mem::replace(&mut member.plugin, plugin))
    }
}
