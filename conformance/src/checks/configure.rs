//! `Configure` (§8.3): a config the schema accepts is accepted, one it
//! refuses is refused with INVALID_ARGUMENT.

use outboard_host::launch::Configuration;
use outboard_host::{CallError, Manifest};
use serde_json::{Map, Value};

use crate::check::{Check, CheckName};
use crate::subject::Subject;

/// The key sent in a config the plugin should reject.
const UNKNOWN_CONFIG_KEY: &str = "outboard_conformance_unknown_key";

/// Configures the plugin with `given` (`{}` if none), which its schema must
/// accept; the config, if the plugin took it, is for the checks that follow.
pub(crate) async fn valid(
    subject: &Subject<'_>,
    manifest: &Manifest,
    given: Option<&Map<String, Value>>,
) -> (Check, Option<Map<String, Value>>) {
    const NAME: CheckName = CheckName::ConfigureValid;
    let config = given.cloned().unwrap_or_default();
    if let Err(violations) = manifest.validate_config(&Value::Object(config.clone())) {
        let why = if given.is_some() {
            format!("the config given with --config violates the schema: {violations}")
        } else {
            format!("the schema requires keys; give --config JSON ({violations})")
        };
        return (Check::blocked(NAME, &why), None);
    }
    match configure(subject, manifest, &config).await {
        Ok(()) => {
            let detail = format!(
                "accepted {}{}",
                Value::Object(config.clone()),
                granted_note(manifest)
            );
            (Check::pass(NAME, detail), Some(config))
        }
        Err(e) => (Check::fail(NAME, e.to_string()), None),
    }
}

/// Configures the plugin with a key its schema refuses, when there is one,
/// then again with `valid` so that the checks that follow have a usable
/// plugin.
pub(crate) async fn invalid(
    subject: &Subject<'_>,
    manifest: &Manifest,
    valid: &Map<String, Value>,
) -> Check {
    const NAME: CheckName = CheckName::ConfigureInvalid;
    let config = Map::from_iter([(UNKNOWN_CONFIG_KEY.to_owned(), Value::Bool(true))]);
    let invalid = Value::Object(config.clone());
    if manifest.config_schema.is_none() {
        return Check::not_applicable(NAME, "no config schema declared");
    }
    if manifest.validate_config(&invalid).is_ok() {
        return Check::not_applicable(NAME, &format!("the schema accepts {invalid}"));
    }
    let rejected = match configure(subject, manifest, &config).await {
        Err(CallError::Status {
            code: tonic::Code::InvalidArgument,
            message,
        }) => Ok(format!("refused: InvalidArgument: {message}")),
        Err(e) => Err(format!(
            "{invalid} violates the schema; expected INVALID_ARGUMENT, got {e}"
        )),
        Ok(()) => Err(format!(
            "accepted {invalid}, which violates its own schema (expected INVALID_ARGUMENT)"
        )),
    };
    match (rejected, configure(subject, manifest, valid).await) {
        (Ok(detail), Ok(())) => Check::pass(NAME, detail),
        (Err(e), _) => Check::fail(NAME, e),
        (Ok(_), Err(e)) => Check::fail(
            NAME,
            format!("refused the invalid config, then the valid one again: {e}"),
        ),
    }
}

/// `Configure` with `config`, granting every permission the manifest asks
/// for.
async fn configure(
    subject: &Subject<'_>,
    manifest: &Manifest,
    config: &Map<String, Value>,
) -> Result<(), CallError> {
    let granted: Vec<String> = manifest
        .permissions
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let configuration = Configuration {
        config,
        granted: &granted,
        instance_name: &manifest.name,
    };
    subject
        .launched
        .configure(&subject.clients, configuration, subject.timeout)
        .await
}

fn granted_note(manifest: &Manifest) -> String {
    if manifest.permissions.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = manifest
        .permissions
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    format!(" (granted every permission asked: {})", names.join(", "))
}
