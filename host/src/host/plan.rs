//! A reload's plan: what differs between the running set and a new
//! configuration, plugin by plugin, as a pure function of the two.
//!
//! - **unchanged**: the same spec; the process keeps running.
//! - **added**: new in the config; started.
//! - **removed**: gone from the config (disabled or not); leaves the
//!   routes, drains, stops, and is forgotten.
//! - **changed**: a different spec (see [`PluginChange::fields`]);
//!   replaced blue/green.
//! - **disabled**: stopped by an operator and still configured: kept
//!   stopped, with the new config (changed or not) for when it is enabled.
//! - **phases_changed**: phases whose declaration (`[phases.NAME]`) was
//!   added, removed or changed.
//!
//! Every list is sorted by name. Where a plugin's spec was declared
//! (`source`) is not a difference: moving a plugin between files changes
//! nothing it does.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{HostConfig, PhaseSpec, PluginSpec, Supervision};

/// What a reload does, plugin by plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadPlan {
    /// Keep their processes.
    pub unchanged: Vec<String>,
    /// Start.
    pub added: Vec<String>,
    /// Stop taking new calls, finish those in flight, stop.
    pub removed: Vec<String>,
    /// Replaced blue/green.
    pub changed: Vec<PluginChange>,
    /// Stopped by an operator: their new config is kept, they stay stopped.
    pub disabled: Vec<String>,
    /// Phases whose declaration (mode, timeout, policy) changes.
    pub phases_changed: Vec<String>,
}

/// A plugin whose spec changed, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginChange {
    /// The plugin.
    pub name: String,
    /// What differs, by the config's key names: `command`, `args`, `env`,
    /// `config`, `grant`, `working_dir`, `handshake_timeout`,
    /// `call_timeout`, `stop_grace`, `runtime_base`, `subscriptions`,
    /// `package` (another package installed in its folder), and
    /// the supervision keys (`restart`, `health_interval`, ...).
    pub fields: Vec<String>,
}

impl ReloadPlan {
    /// True if applying the plan would start, stop or replace no plugin
    /// and change no phase's declaration (a disabled plugin's new config
    /// is still kept).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.phases_changed.is_empty()
    }
}

/// One plugin of the running set, as the plan sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Running<'a> {
    /// The spec it runs (or, disabled, would run) from.
    pub(super) spec: &'a PluginSpec,
    /// True if an operator disabled it.
    pub(super) disabled: bool,
}

/// The plan from the running set (with its declared phases) to `config`.
pub(super) fn compute(
    running: &[Running<'_>],
    declared: &BTreeMap<String, PhaseSpec>,
    config: &HostConfig,
) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    let now: BTreeMap<&str, Running<'_>> =
        running.iter().map(|r| (r.spec.name.as_str(), *r)).collect();
    let next: BTreeMap<&str, &PluginSpec> = config
        .plugins
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect();
    for (name, old) in &now {
        let Some(new) = next.get(name) else {
            plan.removed.push((*name).to_owned());
            continue;
        };
        let fields = differences(old.spec, new);
        if old.disabled {
            plan.disabled.push((*name).to_owned());
        } else if fields.is_empty() {
            plan.unchanged.push((*name).to_owned());
        } else {
            plan.changed.push(PluginChange {
                name: (*name).to_owned(),
                fields,
            });
        }
    }
    plan.added = next
        .keys()
        .filter(|name| !now.contains_key(*name))
        .map(|name| (*name).to_owned())
        .collect();
    plan.phases_changed = phases_changed(declared, &config.phases);
    plan
}

/// The phases declared in only one of `old` and `new`, or differently.
fn phases_changed(
    old: &BTreeMap<String, PhaseSpec>,
    new: &BTreeMap<String, PhaseSpec>,
) -> Vec<String> {
    let mut names: Vec<String> = old
        .iter()
        .filter(|(name, spec)| new.get(*name) != Some(spec))
        .map(|(name, _)| name.clone())
        .chain(new.keys().filter(|name| !old.contains_key(*name)).cloned())
        .collect();
    names.sort();
    names
}

/// What differs between two specs of one plugin, by config key names; empty
/// if it would run the same.
pub(super) fn differences(old: &PluginSpec, new: &PluginSpec) -> Vec<String> {
    // Destructured, so that a field added to the spec must be placed here.
    let PluginSpec {
        name: _,
        command,
        args,
        env,
        config,
        handshake_timeout,
        call_timeout,
        stop_grace,
        working_dir,
        source: _,
        runtime_base,
        grant,
        subscriptions,
        supervision,
        // Taken by the running plugin without a restart (see `reload`).
        optional: _,
        sandbox,
        package,
        fastpath,
    } = old;
    let Supervision {
        restart,
        health_interval,
        health_misses,
        backoff_initial,
        backoff_max,
        backoff_reset_after,
        crash_loop_starts,
        crash_loop_window,
    } = supervision;
    let b = &new.supervision;
    let checks = [
        ("command", *command == new.command),
        ("args", *args == new.args),
        ("env", *env == new.env),
        ("config", *config == new.config),
        ("grant", *grant == new.grant),
        ("working_dir", *working_dir == new.working_dir),
        ("sandbox", *sandbox == new.sandbox),
        ("package", *package == new.package),
        ("fastpath", *fastpath == new.fastpath),
        (
            "handshake_timeout",
            *handshake_timeout == new.handshake_timeout,
        ),
        ("call_timeout", *call_timeout == new.call_timeout),
        ("stop_grace", *stop_grace == new.stop_grace),
        ("runtime_base", *runtime_base == new.runtime_base),
        ("subscriptions", *subscriptions == new.subscriptions),
        ("restart", *restart == b.restart),
        ("health_interval", *health_interval == b.health_interval),
        ("health_misses", *health_misses == b.health_misses),
        ("backoff_initial", *backoff_initial == b.backoff_initial),
        ("backoff_max", *backoff_max == b.backoff_max),
        (
            "backoff_reset_after",
            *backoff_reset_after == b.backoff_reset_after,
        ),
        (
            "crash_loop_starts",
            *crash_loop_starts == b.crash_loop_starts,
        ),
        (
            "crash_loop_window",
            *crash_loop_window == b.crash_loop_window,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(field, _)| field.to_owned())
        .collect()
}
