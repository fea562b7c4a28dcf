//! A `[[plugin]]` table (or a whole `plugin.toml`) resolved into a
//! [`PluginSpec`], one named step per concern. The steps run in a fixed
//! order, so a table with several mistakes always reports the same one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outboard_proto::handshake;
use outboard_proto::names::{
    invalid_phase_name, invalid_plugin_name, is_valid_phase_name, is_valid_plugin_name,
};
use serde_json::Value;
use toml::Spanned;

use super::file::{PLUGIN_FILE_NAME, timeouts};
use super::source::{Scope, Source};
use super::{PluginToml, SubscriptionToml};
use crate::config::command::resolve_command;
use crate::config::error::{ConfigError, Subject};
use crate::config::limits;
use crate::config::spec::{Defaults, PluginSpec};
use crate::config::subscription::{Retry, SubscriptionOverride};
use crate::config::supervision::Supervision;
use crate::config::value::toml_table_to_json;

/// Host-set variables a plugin's `env` may not override.
const RESERVED_ENV: &[&str] = &[
    handshake::ENV_MAGIC_COOKIE,
    handshake::ENV_PROTOCOL_VERSIONS,
    handshake::ENV_SOCKET,
    handshake::ENV_TOKEN,
    handshake::ENV_PLUGIN_NAME,
    handshake::ENV_HOST_SOCKET,
    handshake::ENV_HOST_TOKEN,
    handshake::ENV_FASTPATH_SOCKET,
];

/// The wait before a retry's second attempt when `retry_backoff` is left
/// out.
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(50);

impl PluginToml {
    /// The spec for this table, or `None` if it is disabled. `folder` is set
    /// for a plugin directory's `plugin.toml`.
    pub(super) fn resolve(
        self,
        name: String,
        src: &Source<'_>,
        defaults: &Defaults,
        folder: Option<&Path>,
    ) -> Result<Option<PluginSpec>, ConfigError> {
        let scope = src.scope(Subject::Plugin(name.clone()));
        self.check_name(&name, folder.is_some(), &scope)?;
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let base = src.base_dir();
        let command = self.command(&base, folder.is_some(), &scope)?;
        let args = self.args(&scope)?;
        let env = self.env(&scope)?;
        let config = self.config(&scope)?;
        let timeouts = timeouts(
            [
                &self.handshake_timeout,
                &self.call_timeout,
                &self.stop_grace,
            ],
            defaults,
            &scope,
        )?;
        let working_dir = self.working_dir(&base, folder.is_some(), &scope)?;
        let supervision = self.supervision(&scope)?;
        let subscriptions = self.subscriptions(&scope)?;
        let sandbox = match &self.sandbox {
            Some(table) => table.resolve(&defaults.sandbox, &base, &scope)?,
            None => defaults.sandbox.clone(),
        };
        Ok(Some(PluginSpec {
            name,
            command,
            args,
            env,
            config,
            handshake_timeout: timeouts.handshake_timeout,
            call_timeout: timeouts.call_timeout,
            stop_grace: timeouts.stop_grace,
            working_dir,
            grant: self.grant,
            subscriptions,
            supervision,
            source: src.path.to_owned(),
            runtime_base: None,
            optional: self.optional,
            sandbox,
            // Set by `load_plugin_file` for a folder a package installed.
            package: None,
            fastpath: self.fastpath.unwrap_or(true),
        }))
    }

    /// `name` is a valid plugin name; in a plugin directory it may have come
    /// from the folder, and the error says so.
    fn check_name(
        &self,
        name: &str,
        in_folder: bool,
        scope: &Scope<'_>,
    ) -> Result<(), ConfigError> {
        if is_valid_plugin_name(name) {
            return Ok(());
        }
        let why = if in_folder && self.name.is_none() {
            format!(
                "defaults to the folder's name, but {}; set name in {PLUGIN_FILE_NAME}",
                invalid_plugin_name(name)
            )
        } else {
            invalid_plugin_name(name)
        };
        Err(scope.invalid(self.name_span(), "name", why))
    }

    fn name_span(&self) -> Option<std::ops::Range<usize>> {
        self.name.as_ref().map(Spanned::span)
    }

    /// The executable, as an absolute path; in a plugin directory a bare
    /// name may be a file in the folder.
    fn command(
        &self,
        base: &Path,
        in_folder: bool,
        scope: &Scope<'_>,
    ) -> Result<PathBuf, ConfigError> {
        let Some(command) = &self.command else {
            return Err(scope.invalid(
                self.name_span(),
                "command",
                "is missing (the plugin's executable, e.g. command = \"bin/my-plugin\")".into(),
            ));
        };
        resolve_command(command.get_ref(), base, in_folder).map_err(|why| {
            scope.invalid(
                Some(command.span()),
                "command",
                format!("{:?} {why}", command.get_ref()),
            )
        })
    }

    /// Its arguments: none may hold a NUL byte, which no argument passed to
    /// a program can.
    fn args(&self, scope: &Scope<'_>) -> Result<Vec<String>, ConfigError> {
        let Some(args) = &self.args else {
            return Ok(Vec::new());
        };
        if let Some(i) = args.get_ref().iter().position(|a| a.contains('\0')) {
            return Err(scope.invalid(
                Some(args.span()),
                &format!("args[{i}]"),
                "contains a NUL byte".into(),
            ));
        }
        Ok(args.get_ref().clone())
    }

    /// The environment it adds: no empty or malformed names, none the host
    /// sets for the handshake, no NUL in a value.
    fn env(&self, scope: &Scope<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut env = BTreeMap::new();
        for (key, value) in &self.env {
            let name = key.get_ref();
            let bad = if name.is_empty() || name.contains(['=', '\0']) {
                Some("is not a valid variable name (empty, or contains '=' or NUL)".to_owned())
            } else if RESERVED_ENV.contains(&name.as_str()) {
                Some("is set by the host for the handshake and cannot be configured".to_owned())
            } else if value.contains('\0') {
                // Not quoted: env is where secrets are passed.
                Some("has a value that contains a NUL byte".to_owned())
            } else {
                None
            };
            if let Some(why) = bad {
                // Escaped: the name may hold a newline or a NUL.
                let field = format!("env.{}", name.escape_debug());
                return Err(scope.invalid(Some(key.span()), &field, why));
            }
            env.insert(name.clone(), value.clone());
        }
        Ok(env)
    }

    /// Its config table as the JSON object sent in `Configure`.
    fn config(&self, scope: &Scope<'_>) -> Result<serde_json::Map<String, Value>, ConfigError> {
        match &self.config {
            Some(table) => toml_table_to_json(table.get_ref().clone(), "config")
                .map_err(|(field, why)| scope.invalid(Some(table.span()), &field, why)),
            None => Ok(serde_json::Map::new()),
        }
    }

    /// The directory to run it in: as written, or a plugin directory's
    /// folder; `None` inherits the host's.
    fn working_dir(
        &self,
        base: &Path,
        in_folder: bool,
        scope: &Scope<'_>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(dir) = &self.working_dir else {
            return Ok(in_folder.then(|| base.to_owned()));
        };
        let resolved = base.join(dir.get_ref());
        if !resolved.is_dir() {
            return Err(scope.invalid(
                Some(dir.span()),
                "working_dir",
                format!(
                    "{:?} is not a directory (resolved to {})",
                    dir.get_ref(),
                    resolved.display()
                ),
            ));
        }
        Ok(Some(resolved))
    }

    /// Restarts, health checks and crash loops, the built-in values where
    /// the table is silent.
    fn supervision(&self, scope: &Scope<'_>) -> Result<Supervision, ConfigError> {
        let builtin = Supervision::default();
        Ok(Supervision {
            restart: self.restart.unwrap_or(builtin.restart),
            health_interval: scope.duration(
                "health_interval",
                &self.health_interval,
                builtin.health_interval,
                limits::HEALTH_INTERVAL,
            )?,
            health_misses: scope.count(
                "health_misses",
                &self.health_misses,
                builtin.health_misses,
                limits::HEALTH_MISSES,
            )?,
            backoff_initial: scope.duration(
                "backoff_initial",
                &self.backoff_initial,
                builtin.backoff_initial,
                limits::BACKOFF,
            )?,
            backoff_max: scope.duration(
                "backoff_max",
                &self.backoff_max,
                builtin.backoff_max,
                limits::BACKOFF,
            )?,
            backoff_reset_after: scope.duration(
                "backoff_reset_after",
                &self.backoff_reset_after,
                builtin.backoff_reset_after,
                limits::WINDOW,
            )?,
            crash_loop_starts: scope.count(
                "crash_loop_starts",
                &self.crash_loop_starts,
                builtin.crash_loop_starts,
                limits::CRASH_LOOP_STARTS,
            )?,
            crash_loop_window: scope.duration(
                "crash_loop_window",
                &self.crash_loop_window,
                builtin.crash_loop_window,
                limits::WINDOW,
            )?,
        })
    }

    /// The host's overrides of its subscriptions, by phase.
    fn subscriptions(
        &self,
        scope: &Scope<'_>,
    ) -> Result<BTreeMap<String, SubscriptionOverride>, ConfigError> {
        let mut subscriptions = BTreeMap::new();
        for (phase, sub) in &self.subscriptions {
            let field = format!("subscriptions.{}", phase.get_ref().escape_debug());
            if !is_valid_phase_name(phase.get_ref()) {
                return Err(scope.invalid(
                    Some(phase.span()),
                    &field,
                    invalid_phase_name(phase.get_ref()),
                ));
            }
            subscriptions.insert(phase.get_ref().clone(), sub.resolve(&field, scope)?);
        }
        Ok(subscriptions)
    }
}

impl SubscriptionToml {
    /// The override; `field` is `subscriptions.PHASE`.
    fn resolve(&self, field: &str, scope: &Scope<'_>) -> Result<SubscriptionOverride, ConfigError> {
        Ok(SubscriptionOverride {
            priority: self.priority,
            timeout: scope.optional_duration(
                &format!("{field}.timeout"),
                &self.timeout,
                limits::TIMEOUT,
            )?,
            failure_policy: self.failure_policy,
            enabled: self.enabled.unwrap_or(true),
            retry: self.retry(field, scope)?,
        })
    }

    /// Retries, if `retry_attempts` asks for them; a `retry_backoff` alone
    /// is a mistake.
    fn retry(&self, field: &str, scope: &Scope<'_>) -> Result<Option<Retry>, ConfigError> {
        let backoff_field = format!("{field}.retry_backoff");
        match &self.retry_attempts {
            None if self.retry_backoff.is_some() => Err(scope.invalid(
                self.retry_backoff.as_ref().map(Spanned::span),
                &backoff_field,
                "has no effect without retry_attempts".into(),
            )),
            None => Ok(None),
            Some(_) => Ok(Some(Retry {
                attempts: scope.count(
                    &format!("{field}.retry_attempts"),
                    &self.retry_attempts,
                    1,
                    limits::RETRY_ATTEMPTS,
                )?,
                backoff: scope.duration(
                    &backoff_field,
                    &self.retry_backoff,
                    DEFAULT_RETRY_BACKOFF,
                    limits::RETRY_BACKOFF,
                )?,
            })),
        }
    }
}
