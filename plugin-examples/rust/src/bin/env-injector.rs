//! `env-injector`: before the container starts, sets `BUILD_ID` and
//! `BUILD_TIMESTAMP` in the job's environment.
//!
//! `BUILD_ID` is the config's `build_id` if given, else
//! `<prefix>-<first 12 characters of the invocation id>` (`prefix` defaults
//! to `build`). A `BUILD_ID` already in the environment is kept unless the
//! config says `overwrite = true`. `BUILD_TIMESTAMP` is the time of the
//! phase, RFC 3339 in UTC.

use std::process::ExitCode;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use outboard_examples::{Clock, env_object, rfc3339};
use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::Deserialize;
use serde_json::{Value, json};

/// The prefix of a derived `BUILD_ID` when the config names none.
const DEFAULT_PREFIX: &str = "build";

/// How many characters of the invocation id a derived `BUILD_ID` takes.
const ID_CHARS: usize = 12;

/// The plugin's config, as its schema describes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// A fixed `BUILD_ID`.
    build_id: Option<String>,
    /// The prefix of a derived `BUILD_ID`.
    prefix: Option<String>,
    /// `true` to replace a `BUILD_ID` already in the environment.
    #[serde(default)]
    overwrite: bool,
}

/// The plugin: its config and its clock.
struct EnvInjector {
    /// The config from `Configure` (the defaults until then).
    settings: RwLock<Settings>,
    /// Where `BUILD_TIMESTAMP` comes from.
    clock: Clock,
}

impl EnvInjector {
    fn new(clock: Clock) -> EnvInjector {
        EnvInjector {
            settings: RwLock::new(Settings::default()),
            clock,
        }
    }
}

impl Plugin for EnvInjector {
    fn manifest(&self) -> Manifest {
        Manifest::new("env-injector", env!("CARGO_PKG_VERSION"))
            .describe("Sets BUILD_ID and BUILD_TIMESTAMP in the job's environment")
            // Retrying is harmless: the id derives from the invocation id,
            // which a retry keeps.
            .subscribe_idempotent("pre_container", 10)
            .permission("env:write", "to set BUILD_ID and BUILD_TIMESTAMP")
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "build_id": {
                        "description": "A fixed BUILD_ID; derived from the invocation id when absent",
                        "type": "string",
                        "minLength": 1
                    },
                    "prefix": {
                        "description": "Prefix of a derived BUILD_ID",
                        "type": "string",
                        "pattern": "^[A-Za-z0-9._-]+$",
                        "default": DEFAULT_PREFIX
                    },
                    "overwrite": {
                        "description": "Replace a BUILD_ID already in the environment",
                        "type": "boolean",
                        "default": false
                    }
                },
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let settings: Settings = config.deserialize()?;
        // The host checks the schema too; these keep a bad config from
        // producing an odd BUILD_ID if the plugin is driven some other way.
        if settings.build_id.as_deref() == Some("") {
            return Err(PluginError::invalid_config("build_id: must not be empty"));
        }
        if let Some(prefix) = &settings.prefix
            && (prefix.is_empty()
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(PluginError::invalid_config(format!(
                "prefix: {prefix:?} must be letters, digits, '.', '_' or '-'"
            )));
        }
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let existing = env_object(&invocation)?
            .and_then(|env| env.get("BUILD_ID"))
            .and_then(Value::as_str);

        let mut reply = Reply::ok();
        match existing {
            Some(id) if !settings.overwrite => {
                reply = reply.with_message(format!("kept BUILD_ID={id}"));
            }
            _ => {
                let id = build_id(&settings, &invocation.invocation_id)?;
                reply = reply
                    .with_message(format!("set BUILD_ID={id}"))
                    .set("/env/BUILD_ID", id);
            }
        }
        Ok(reply.set("/env/BUILD_TIMESTAMP", rfc3339((self.clock)())))
    }
}

/// The configured id, or one derived from the invocation id.
fn build_id(settings: &Settings, invocation_id: &str) -> Result<String, PluginError> {
    if let Some(id) = &settings.build_id {
        return Ok(id.clone());
    }
    if invocation_id.is_empty() {
        return Err(PluginError::failed(
            "the host sent no invocation id to derive BUILD_ID from; set `build_id` in the config",
        ));
    }
    let prefix = settings.prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
    let short: String = invocation_id.chars().take(ID_CHARS).collect();
    Ok(format!("{prefix}-{short}"))
}

fn main() -> ExitCode {
    outboard_plugin::run(EnvInjector::new(SystemTime::now))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2024-05-01T12:00:00Z.
    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    fn harness() -> Harness<EnvInjector> {
        Harness::new(EnvInjector::new(fixed))
    }

    fn invocation(id: &str, context: Value) -> Invocation {
        Invocation::new("pre_container", context).with_invocation_id(id)
    }

    const ID: &str = "3f2b9c4e-8a71-4d2e-9b0c-5e6f7a8b9c0d";

    #[tokio::test]
    async fn derives_build_id_from_the_invocation_id() {
        let h = harness();
        h.configure(json!({})).await.unwrap();
        let out = h
            .invoke_with(invocation(
                ID,
                json!({"command": ["make"], "env": {"PATH": "/bin"}}),
            ))
            .await
            .unwrap();
        assert_eq!(
            out.context,
            json!({
                "command": ["make"],
                "env": {
                    "PATH": "/bin",
                    "BUILD_ID": "build-3f2b9c4e-8a7",
                    "BUILD_TIMESTAMP": "2024-05-01T12:00:00Z",
                },
            })
        );
        assert_eq!(out.reply.message(), "set BUILD_ID=build-3f2b9c4e-8a7");
    }

    #[tokio::test]
    async fn prefix_and_fixed_id_come_from_the_config() {
        let h = harness();
        h.configure(json!({"prefix": "ci"})).await.unwrap();
        let out = h.invoke_with(invocation("abc", json!({}))).await.unwrap();
        assert_eq!(out.get("/env/BUILD_ID"), Some(&json!("ci-abc")));

        h.configure(json!({"build_id": "release-7", "prefix": "ci"}))
            .await
            .unwrap();
        let out = h.invoke_with(invocation(ID, json!({}))).await.unwrap();
        assert_eq!(out.get("/env/BUILD_ID"), Some(&json!("release-7")));
    }

    #[tokio::test]
    async fn existing_build_id_is_kept_unless_overwrite() {
        let h = harness();
        h.configure(json!({})).await.unwrap();
        let ctx = json!({"env": {"BUILD_ID": "from-ci"}});
        let out = h.invoke_with(invocation(ID, ctx.clone())).await.unwrap();
        assert_eq!(
            out.context,
            json!({"env": {"BUILD_ID": "from-ci", "BUILD_TIMESTAMP": "2024-05-01T12:00:00Z"}})
        );
        assert_eq!(out.reply.message(), "kept BUILD_ID=from-ci");

        h.configure(json!({"overwrite": true})).await.unwrap();
        let out = h.invoke_with(invocation(ID, ctx)).await.unwrap();
        assert_eq!(out.get("/env/BUILD_ID"), Some(&json!("build-3f2b9c4e-8a7")));
    }

    #[tokio::test]
    async fn bad_config_and_context_are_invalid_argument() {
        let h = harness();
        let err = h.configure(json!({"overwrite": "yes"})).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("invalid type"), "{err}");
        let err = h.configure(json!({"colour": "red"})).await.unwrap_err();
        assert!(err.message().contains("unknown field `colour`"), "{err}");
        let err = h.configure(json!({"prefix": "a b"})).await.unwrap_err();
        assert_eq!(
            err.message(),
            "prefix: \"a b\" must be letters, digits, '.', '_' or '-'"
        );

        let err = h
            .invoke_with(invocation(ID, json!({"env": "PATH=/bin"})))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    #[tokio::test]
    async fn no_invocation_id_and_no_build_id_fails() {
        let h = harness();
        let err = h.invoke_with(invocation("", json!({}))).await.unwrap_err();
        assert!(err.message().contains("set `build_id`"), "{err}");
    }

    #[test]
    fn manifest_declares_a_closed_config_schema() {
        let h = harness();
        let m = h.manifest();
        assert_eq!(m.name(), "env-injector");
        let sub = m.subscription_for("pre_container").unwrap();
        assert_eq!((sub.priority, sub.idempotent), (10, true));
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["properties"]["overwrite"]["type"], json!("boolean"));
    }
}
