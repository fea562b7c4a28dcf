//! `Configure` (§8.3): a config the schema accepts is accepted, one it
//! refuses is refused with INVALID_ARGUMENT.

use outboard_host::launch::Configuration;
use outboard_host::{CallError, Manifest};
use serde_json::{Map, Value};

use crate::check::{Check, CheckName};
use crate::subject::Subject;
use crate::{Options, Setting};

/// The key sent in a config the plugin should reject.
const UNKNOWN_CONFIG_KEY: &str = "outboard_conformance_unknown_key";

/// Configures the plugin with its config (the one given, else `{}`, for a
/// command line; the configured one otherwise), which its schema must
/// accept; the config, if the plugin took it, is for the checks that
/// follow.
pub(crate) async fn valid(
    subject: &Subject<'_>,
    manifest: &Manifest,
    options: &Options,
) -> (Check, Option<Map<String, Value>>) {
    const NAME: CheckName = CheckName::ConfigureValid;
    let (config, origin) = match &options.setting {
        Setting::Command {
            config: Some(given),
        } => (given.clone(), Origin::Given),
        Setting::Command { config: None } => (Map::new(), Origin::Empty),
        Setting::Configured => (
            options.spec.config.clone(),
            Origin::Configured(options.spec.source.display().to_string()),
        ),
    };
    if let Err(violations) = manifest.validate_config(&Value::Object(config.clone())) {
        let why = match origin {
            Origin::Given => {
                format!("the config given with --config-json violates the schema: {violations}")
            }
            Origin::Empty => {
                format!("the schema requires keys; give --config-json JSON ({violations})")
            }
            Origin::Configured(file) => {
                format!("the plugin's config in {file} violates the schema: {violations}")
            }
        };
        return (Check::blocked(NAME, &why), None);
    }
    let grants = Grants::of(manifest, options);
    match configure(subject, &grants.given, &config).await {
        Ok(()) => {
            // Values stay out of the detail: a config may hold secrets.
            let keys: Vec<&str> = config.keys().map(String::as_str).collect();
            let detail = format!("accepted {{{}}}{}", keys.join(", "), grants.note());
            (Check::pass(NAME, detail), Some(config))
        }
        Err(e) => (Check::fail(NAME, e.to_string()), None),
    }
}

/// Where the config under test comes from.
enum Origin {
    /// `--config-json`.
    Given,
    /// Nothing given: `{}`.
    Empty,
    /// The operator's file, named.
    Configured(String),
}

/// Configures the plugin with a key its schema refuses, when there is one,
/// then again with `valid` so that the checks that follow have a usable
/// plugin.
pub(crate) async fn invalid(
    subject: &Subject<'_>,
    manifest: &Manifest,
    options: &Options,
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
    let grants = Grants::of(manifest, options);
    let rejected = match configure(subject, &grants.given, &config).await {
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
    match (rejected, configure(subject, &grants.given, valid).await) {
        (Ok(detail), Ok(())) => Check::pass(NAME, detail),
        (Err(e), _) => Check::fail(NAME, e),
        (Ok(_), Err(e)) => Check::fail(
            NAME,
            format!("refused the invalid config, then the valid one again: {e}"),
        ),
    }
}

/// `Configure` with `config` and the permissions `granted`, under the
/// name the launch gave in `OUTBOARD_PLUGIN_NAME` (PROTOCOL.md §2.1: the
/// same value).
async fn configure(
    subject: &Subject<'_>,
    granted: &[String],
    config: &Map<String, Value>,
) -> Result<(), CallError> {
    let configuration = Configuration {
        config,
        granted,
        instance_name: subject.launched.name(),
    };
    subject
        .launched
        .configure(&subject.clients, configuration, subject.timeout)
        .await
}

/// The permissions the plugin asks for, split into those granted and those
/// withheld: every one for a command line, those in its `grant` list (or
/// `*`) as configured.
struct Grants {
    /// Granted, in the manifest's order.
    given: Vec<String>,
    /// Asked for but not granted by the config.
    withheld: Vec<String>,
    /// `true` when every permission asked for is granted unasked.
    all: bool,
}

impl Grants {
    fn of(manifest: &Manifest, options: &Options) -> Grants {
        let all = match options.setting {
            Setting::Command { .. } => true,
            Setting::Configured => options.spec.grant.iter().any(|g| g == "*"),
        };
        let (given, withheld) = manifest
            .permissions
            .iter()
            .map(|p| p.name.clone())
            .partition(|name| all || options.spec.grant.contains(name));
        Grants {
            given,
            withheld,
            all: matches!(options.setting, Setting::Command { .. }),
        }
    }

    /// What the check's detail says of them.
    fn note(&self) -> String {
        let mut note = String::new();
        if !self.given.is_empty() {
            let what = if self.all {
                "granted every permission asked"
            } else {
                "granted"
            };
            note.push_str(&format!(" ({what}: {})", self.given.join(", ")));
        }
        if !self.withheld.is_empty() {
            note.push_str(&format!(
                " (not granted by its config: {})",
                self.withheld.join(", ")
            ));
        }
        note
    }
}
