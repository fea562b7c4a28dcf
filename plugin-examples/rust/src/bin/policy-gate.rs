//! `policy-gate`: vetoes a job whose command matches a deny pattern, just
//! before the container starts.
//!
//! In `pre_container` (priority 0, so before `env-injector` at 10) it joins
//! the job's `command` with single spaces and checks it against each `deny`
//! regular expression in order (a pattern matches anywhere unless anchored
//! with `^` / `$`). The first match aborts the job with
//! ``command `<cmd>` matches deny pattern `<pattern>` (policy-gate)``.
//!
//! If `allow_override_env` names a variable and the job's environment sets
//! it to `"1"`, a match is only logged as a warning and recorded, and the
//! job goes on.
//!
//! # Config
//!
//! ```toml
//! [plugin.config]
//! deny = ['^rm -rf /', '\bcurl\b.*\|\s*(ba)?sh\b', '^sudo\b']
//! allow_override_env = "POLICY_GATE_OVERRIDE"   # optional
//! ```
//!
//! Every pattern is compiled at `Configure` (Rust `regex` syntax); one that
//! does not compile is refused, naming its index and the reason.
//!
//! # Patches
//!
//! - `/metadata/policy_gate/checked`: the number of patterns checked.
//! - `/metadata/policy_gate/overridden`: the patterns that matched but were
//!   allowed by the override (only then).

use std::process::ExitCode;
use std::sync::{Arc, PoisonError, RwLock};

use outboard_examples::{command_argv, env_object};
use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

/// The config as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Regular expressions a command may not match.
    deny: Vec<String>,
    /// A variable of the job's environment that, set to `"1"`, turns a
    /// veto into a warning.
    allow_override_env: Option<String>,
}

/// The checked config.
#[derive(Debug)]
struct Gate {
    /// The compiled deny patterns, in config order.
    deny: Vec<Regex>,
    /// The override variable, if any.
    allow_override_env: Option<String>,
}

/// The plugin: the gate from `Configure`.
struct PolicyGate {
    /// `None` until configured; the gate fails closed without a config.
    gate: RwLock<Option<Arc<Gate>>>,
}

impl PolicyGate {
    fn new() -> PolicyGate {
        PolicyGate {
            gate: RwLock::new(None),
        }
    }
}

impl Plugin for PolicyGate {
    fn manifest(&self) -> Manifest {
        Manifest::new("policy-gate", env!("CARGO_PKG_VERSION"))
            .describe("Vetoes jobs whose command matches a deny pattern")
            // A verdict depends only on the config and the context: retrying
            // is harmless.
            .subscribe_idempotent("pre_container", 0)
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "deny": {
                        "description": "Regular expressions (Rust regex syntax) matched against the command joined with spaces",
                        "type": "array",
                        "items": {"type": "string"}
                    },
                    "allow_override_env": {
                        "description": "A job environment variable that, set to \"1\", turns a veto into a warning",
                        "type": "string",
                        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
                    }
                },
                "required": ["deny"],
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let raw: RawConfig = config.deserialize()?;
        let deny = raw
            .deny
            .iter()
            .enumerate()
            .map(|(i, pattern)| {
                Regex::new(pattern).map_err(|e| {
                    PluginError::invalid_config(format!(
                        "deny[{i}]: {pattern:?} is not a valid regular expression: {}",
                        regex_reason(&e)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(name) = &raw.allow_override_env
            && !is_env_name(name)
        {
            return Err(PluginError::invalid_config(format!(
                "allow_override_env: {name:?} is not an environment variable name (letters, \
                 digits and '_', not starting with a digit)"
            )));
        }
        let gate = Gate {
            deny,
            allow_override_env: raw.allow_override_env,
        };
        *self.gate.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(gate));
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let gate = self
            .gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                PluginError::failed("policy-gate was not configured, so it lets nothing through")
            })?;
        let command = command_argv(&invocation)?.join(" ");
        let matched: Vec<&str> = gate
            .deny
            .iter()
            .filter(|re| re.is_match(&command))
            .map(Regex::as_str)
            .collect();
        let checked = gate.deny.len();
        let Some(first) = matched.first() else {
            return Ok(Reply::ok().set("/metadata/policy_gate/checked", checked));
        };

        let overridden_by = match &gate.allow_override_env {
            Some(name) => {
                let set = env_object(&invocation)?
                    .and_then(|env| env.get(name))
                    .and_then(Value::as_str)
                    == Some("1");
                set.then_some(name.as_str())
            }
            None => None,
        };
        match overridden_by {
            None => Ok(Reply::abort(format!(
                "command `{command}` matches deny pattern `{first}` (policy-gate)"
            ))),
            Some(name) => {
                tracing::warn!(
                    command,
                    patterns = ?matched,
                    override_env = name,
                    "command `{command}` matches deny pattern `{first}`; allowed because \
                     {name}=1"
                );
                Ok(Reply::ok()
                    .set("/metadata/policy_gate/checked", checked)
                    .set("/metadata/policy_gate/overridden", json!(matched))
                    .with_message(format!(
                        "warning: command matches deny pattern `{first}`; allowed because {name}=1"
                    )))
            }
        }
    }
}

/// The one-line reason from a regex error (a syntax error's text is a
/// multi-line picture of the pattern ending in `error: <reason>`).
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned()
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn main() -> ExitCode {
    outboard_plugin::run(PolicyGate::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::testing::Harness;
    use outboard_plugin::{Code, Outcome};

    async fn configured(config: Value) -> Harness<PolicyGate> {
        let h = Harness::new(PolicyGate::new());
        h.configure(config).await.unwrap();
        h
    }

    fn job(command: &[&str], env: Value) -> Value {
        json!({
            "job_id": "6f1c2a8e-0b7d-4c11-9a53-2d4e5f607182",
            "command": command,
            "env": env,
            "metadata": {"other": 1},
            "dry_run": false,
        })
    }

    #[tokio::test]
    async fn a_matching_command_is_vetoed_naming_command_and_pattern() {
        let h = configured(json!({"deny": ["^sudo\\b", "rm -rf /"]})).await;
        let ctx = job(&["sh", "-c", "rm -rf / --no-preserve-root"], json!({}));
        let out = h.invoke("pre_container", ctx.clone()).await.unwrap();
        assert_eq!(out.outcome(), Outcome::Abort);
        assert_eq!(
            out.reply.message(),
            "command `sh -c rm -rf / --no-preserve-root` matches deny pattern `rm -rf /` \
             (policy-gate)"
        );
        assert_eq!(out.context, ctx, "a veto changes nothing");
    }

    #[tokio::test]
    async fn a_clean_command_passes_and_records_the_count() {
        let h = configured(json!({"deny": ["^sudo\\b", "rm -rf /"]})).await;
        let out = h
            .invoke("pre_container", job(&["make", "test"], json!({})))
            .await
            .unwrap();
        assert_eq!(out.outcome(), Outcome::Continue);
        assert_eq!(
            out.get("/metadata"),
            Some(&json!({"other": 1, "policy_gate": {"checked": 2}}))
        );
        // "sudoku" is not "sudo" as a word.
        let out = h
            .invoke("pre_container", job(&["sudoku", "--solve"], json!({})))
            .await
            .unwrap();
        assert_eq!(out.outcome(), Outcome::Continue);
    }

    #[tokio::test]
    async fn the_override_variable_turns_a_veto_into_a_warning() {
        let h = configured(json!({
            "deny": ["^sudo\\b", "apt-get"],
            "allow_override_env": "POLICY_OVERRIDE",
        }))
        .await;
        let command = ["sudo", "apt-get", "install", "jq"];

        let out = h
            .invoke(
                "pre_container",
                job(&command, json!({"POLICY_OVERRIDE": "1"})),
            )
            .await
            .unwrap();
        assert_eq!(out.outcome(), Outcome::Continue);
        assert_eq!(
            out.get("/metadata/policy_gate"),
            Some(&json!({"checked": 2, "overridden": ["^sudo\\b", "apt-get"]}))
        );
        assert_eq!(
            out.reply.message(),
            "warning: command matches deny pattern `^sudo\\b`; allowed because POLICY_OVERRIDE=1"
        );

        // Anything but "1" does not override.
        for env in [json!({"POLICY_OVERRIDE": "yes"}), json!({}), json!(null)] {
            let out = h
                .invoke("pre_container", job(&command, env.clone()))
                .await
                .unwrap();
            assert_eq!(out.outcome(), Outcome::Abort, "{env}");
        }
    }

    #[tokio::test]
    async fn an_invalid_regex_is_refused_naming_its_index() {
        let h = Harness::new(PolicyGate::new());
        let err = h
            .configure(json!({"deny": ["^ok$", "(unclosed"]}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "deny[1]: \"(unclosed\" is not a valid regular expression: unclosed group"
        );

        let err = h.configure(json!({})).await.unwrap_err();
        assert!(err.message().contains("missing field `deny`"), "{err}");
        let err = h
            .configure(json!({"deny": [], "allow_override_env": "NOT A NAME"}))
            .await
            .unwrap_err();
        assert!(
            err.message()
                .starts_with("allow_override_env: \"NOT A NAME\" is not an environment"),
            "{err}"
        );
        let err = h
            .configure(json!({"deny": [], "allow": []}))
            .await
            .unwrap_err();
        assert!(err.message().contains("unknown field `allow`"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_context_or_no_config_is_an_error_not_a_pass() {
        let h = Harness::new(PolicyGate::new());
        let err = h
            .invoke("pre_container", job(&["make"], json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(err.message().contains("not configured"), "{err}");

        h.configure(json!({"deny": ["x"]})).await.unwrap();
        for (ctx, want) in [
            (
                json!({"env": {}}),
                "/command is missing, expected the job's argv (an array of strings)",
            ),
            (
                json!({"command": "make test"}),
                "/command is \"make test\", expected the job's argv (an array of strings)",
            ),
            (
                json!({"command": ["make", null]}),
                "/command/1 is null, expected a string",
            ),
        ] {
            let err = h.invoke("pre_container", ctx).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert_eq!(err.message(), want);
        }
    }

    #[test]
    fn manifest_runs_first_in_pre_container_with_a_closed_schema() {
        let h = Harness::new(PolicyGate::new());
        let m = h.manifest();
        assert_eq!((m.name(), m.version()), ("policy-gate", "0.1.0"));
        assert_eq!(m.subscription_for("pre_container").unwrap().priority, 0);
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["required"], json!(["deny"]));
    }
}
