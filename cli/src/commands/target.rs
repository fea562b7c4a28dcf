//! The plugin `describe` and `conformance` work on: one plugin of the
//! operator's config or plugin directories (`--plugin NAME`), as
//! configured; or a command line (`-- CMD`), with a config given as JSON.

use std::time::Duration;

use anyhow::{Context as _, bail};
use outboard_host::PluginSpec;
use outboard_host::config::spec_for_command;
use serde_json::{Map, Value};

use super::load_config;
use crate::args::TargetArgs;

/// How long a plugin given as a command line may take to shake hands.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin to describe or certify.
#[derive(Debug)]
pub(crate) enum Target {
    /// As the operator configured it: name, env, args, config, grants.
    Configured(PluginSpec),
    /// A command line, with the config to give it, if any.
    Command {
        /// Named after the executable until its manifest says better.
        spec: PluginSpec,
        /// `--config-json`, parsed.
        config: Option<Map<String, Value>>,
    },
}

impl Target {
    /// The plugin's spec, to change before it is launched.
    pub(crate) fn spec_mut(&mut self) -> &mut PluginSpec {
        match self {
            Target::Configured(spec) | Target::Command { spec, .. } => spec,
        }
    }

    /// The plugin `flags` name; an error names what is missing or wrong.
    pub(crate) fn from_args(flags: &TargetArgs) -> anyhow::Result<Target> {
        if let Some(file) = &flags.source.config
            && file.to_string_lossy().trim_start().starts_with('{')
        {
            bail!(
                "--config names the host's config file (outboard.toml); \
                 give a plugin's config as JSON with --config-json"
            );
        }
        let Some(name) = flags.plugin.as_deref() else {
            let mut spec = spec_for_command(&flags.command)?;
            spec.handshake_timeout = flags.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
            let config = flags
                .config_json
                .as_deref()
                .map(parse_config_json)
                .transpose()?;
            return Ok(Target::Command { spec, config });
        };
        let config = load_config(&flags.source)?;
        let Some(spec) = config.plugin(name) else {
            let names: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "no plugin named {name:?} is configured (configured: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            );
        };
        let mut spec = spec.clone();
        if let Some(timeout) = flags.handshake_timeout {
            spec.handshake_timeout = timeout;
        }
        Ok(Target::Configured(spec))
    }
}

/// `--config-json`: a JSON object.
fn parse_config_json(text: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str(text).context("--config-json is not JSON")? {
        Value::Object(map) => Ok(map),
        _ => bail!("--config-json must be a JSON object"),
    }
}
