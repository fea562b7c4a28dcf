//! What a plugin says about itself in `Describe`, checked before the host
//! trusts any of it, and the plugin's config checked against the JSON Schema
//! the manifest declares.
//!
//! Validation reports every problem at once, each naming the manifest field
//! (`subscriptions[1].phase`) and quoting the bad value, so a plugin author
//! fixes them in one round instead of one per restart.

mod secrets;

use std::fmt;
use std::sync::Arc;

use outboard_proto::manifest;
use outboard_proto::v1;
use serde::Serialize;
use serde_json::Value;

use self::secrets::SecretKeys;

pub use outboard_proto::manifest::FieldError;

/// What a plugin is and what it wants, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The plugin's name: 1 to 64 characters of `[a-z0-9_-]`, starting with
    /// a letter or digit.
    pub name: String,
    /// The plugin's own version.
    #[serde(serialize_with = "serialize_display")]
    pub version: semver::Version,
    /// The protocol version the plugin speaks (equal to its handshake's).
    pub protocol_version: u32,
    /// One line for humans.
    pub description: String,
    /// Free-form capability names; unknown ones are kept and ignored.
    pub features: Vec<String>,
    /// The phases the plugin wants to be invoked for, each at most once.
    pub subscriptions: Vec<Subscription>,
    /// What the plugin asks to be allowed to do.
    pub permissions: Vec<Permission>,
    /// Other plugins that must be ready before this one.
    pub dependencies: Vec<Dependency>,
    /// The JSON Schema for the plugin's config; `None` accepts any object.
    pub config_schema: Option<Value>,
    /// The event name patterns the plugin subscribes to (PROTOCOL.md §17.6),
    /// each listed once; `*` matches any run of characters.
    pub event_subscriptions: Vec<String>,
    /// `config_schema`, compiled once at validation.
    #[serde(skip)]
    validator: Option<Arc<jsonschema::Validator>>,
    /// The config keys whose values a violation must not quote.
    #[serde(skip)]
    secret_keys: SecretKeys,
}

/// A plugin's interest in one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// The phase name: 1 to 64 characters of `[a-z0-9_.-]`.
    pub phase: String,
    /// Lower runs first in sequential phases; ties are broken by name.
    pub priority: i32,
    /// `true` if invoking the plugin twice for one invocation is harmless.
    pub idempotent: bool,
}

/// A permission the plugin asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permission {
    /// The permission, e.g. `env:write`; never empty.
    pub name: String,
    /// Why the plugin needs it, for the operator.
    pub reason: String,
}

/// Another plugin this one depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The other plugin's manifest name.
    pub name: String,
    /// Which versions of it will do; `None` means any.
    #[serde(serialize_with = "serialize_opt_display")]
    pub version_req: Option<semver::VersionReq>,
    /// `true` if the plugin works without it.
    pub optional: bool,
}

/// Everything wrong with a manifest, in field order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// One entry per problem found.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, &self.errors)
    }
}

/// One place where a config does not match the plugin's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", display_pointer(instance_path))]
pub struct ConfigViolation {
    /// JSON Pointer to the offending value in the config (`""` for the
    /// config itself, shown as `(root)`).
    pub instance_path: String,
    /// What the schema says is wrong there.
    pub message: String,
}

/// Everything wrong with a plugin's config. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigSchemaError {
    /// One entry per violation, in the validator's order.
    pub violations: Vec<ConfigViolation>,
}

impl fmt::Display for ConfigSchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, &self.violations)
    }
}

impl Manifest {
    /// What is known of a plugin that has not started yet (its first start
    /// failed): its name, version 0.0.0, and no subscriptions,
    /// permissions or dependencies, so nothing is routed to it.
    pub(crate) fn unknown(name: &str) -> Manifest {
        Manifest {
            name: name.to_owned(),
            version: semver::Version::new(0, 0, 0),
            protocol_version: 0,
            description: String::new(),
            features: Vec::new(),
            subscriptions: Vec::new(),
            permissions: Vec::new(),
            dependencies: Vec::new(),
            config_schema: None,
            event_subscriptions: Vec::new(),
            validator: None,
            secret_keys: SecretKeys::default(),
        }
    }

    /// Validates a manifest received in `Describe` from a plugin whose
    /// handshake line said `handshake_version`. Every problem is reported,
    /// not just the first: the structural rules shared with the SDKs
    /// ([`outboard_proto::manifest::check`]), then what only the host can
    /// check (the protocol version against the handshake, the config
    /// schema).
    pub fn from_proto(m: v1::Manifest, handshake_version: u32) -> Result<Manifest, ManifestError> {
        let mut errors = manifest::check(&m);
        errors.extend(check_protocol_version(
            m.protocol_version,
            handshake_version,
        ));
        let config_schema = m
            .config_schema
            .as_ref()
            .map(|s| Value::Object(outboard_proto::json::struct_to_json(s)));
        let validator = match &config_schema {
            Some(schema) => match compile_schema(schema) {
                Ok(v) => Some(Arc::new(v)),
                Err(whys) => {
                    errors.extend(
                        whys.into_iter()
                            .map(|why| FieldError::new("config_schema", why)),
                    );
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            manifest::sort_by_field(&mut errors);
            return Err(ManifestError { errors });
        }
        Manifest::convert(m, config_schema, validator)
            .map_err(|e| ManifestError { errors: vec![e] })
    }

    /// The checked wire manifest as host types. The parses cannot fail
    /// after [`manifest::check`] passed; they return its errors all the same.
    fn convert(
        m: v1::Manifest,
        config_schema: Option<Value>,
        validator: Option<Arc<jsonschema::Validator>>,
    ) -> Result<Manifest, FieldError> {
        let dependencies = m
            .dependencies
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                Ok(Dependency {
                    version_req: manifest::parse_version_req(i, &d.version_req)?,
                    name: d.name,
                    optional: d.optional,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Manifest {
            name: m.name,
            version: manifest::parse_version(&m.version)?,
            protocol_version: m.protocol_version,
            description: m.description,
            features: m.features,
            subscriptions: m
                .subscriptions
                .into_iter()
                .map(|s| Subscription {
                    phase: s.phase,
                    priority: s.priority,
                    idempotent: s.idempotent,
                })
                .collect(),
            permissions: m
                .permissions
                .into_iter()
                .map(|p| Permission {
                    name: p.name,
                    reason: p.reason,
                })
                .collect(),
            dependencies,
            event_subscriptions: m
                .event_subscriptions
                .into_iter()
                .map(|e| e.pattern)
                .collect(),
            secret_keys: SecretKeys::of_schema(config_schema.as_ref()),
            config_schema,
            validator,
        })
    }

    /// The plugin's subscription to `phase`, if it has one.
    pub fn subscription(&self, phase: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| s.phase == phase)
    }

    /// The permissions this manifest asks for that `grant` (a plugin's
    /// config) allows: all of them for `"*"`. What `Configure` passes on.
    pub fn allowed(&self, grant: &[String]) -> Vec<String> {
        let all = grant.iter().any(|g| g == "*");
        self.permissions
            .iter()
            .filter(|p| all || grant.contains(&p.name))
            .map(|p| p.name.clone())
            .collect()
    }

    /// `true` if the plugin declared `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Checks a config against the plugin's schema, listing every violation.
    /// A config is always a JSON object (it travels as a
    /// `google.protobuf.Struct`); without a schema any object will do. A
    /// violation quotes the value it is about unless that value is, or
    /// holds, a secret (see `secrets`): then only its type is named.
    pub fn validate_config(&self, config: &Value) -> Result<(), ConfigSchemaError> {
        if !config.is_object() {
            return Err(ConfigSchemaError {
                violations: vec![ConfigViolation {
                    instance_path: String::new(),
                    message: format!("{config} is not an object (a plugin's config is a table)"),
                }],
            });
        }
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let violations: Vec<ConfigViolation> = validator
            .iter_errors(config)
            .map(|e| {
                let instance_path = e.instance_path().as_str().to_owned();
                let message = if self.secret_keys.covers(&instance_path, e.instance()) {
                    e.masked_with(secrets::placeholder(e.instance()))
                        .to_string()
                } else {
                    e.to_string()
                };
                ConfigViolation {
                    instance_path,
                    message,
                }
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ConfigSchemaError { violations })
        }
    }
}

/// The manifest must speak the protocol version its handshake line named.
fn check_protocol_version(declared: u32, handshake_version: u32) -> Option<FieldError> {
    (declared != handshake_version).then(|| {
        FieldError::new(
            "protocol_version",
            format!(
                "{declared} does not match the protocol version {handshake_version} of the plugin's handshake line"
            ),
        )
    })
}

/// Refuses every external `$ref`: a plugin's schema must be self-contained,
/// and loading it must not make the host read files or reach the network.
struct NoRemoteRefs;

impl jsonschema::Retrieve for NoRemoteRefs {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!(
            "external reference {uri} is not allowed: a config schema must be self-contained"
        )
        .into())
    }
}

/// Checks `schema` against its meta-schema (every problem) and compiles it.
fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, Vec<String>> {
    let meta = jsonschema::meta::validator_for(schema)
        .map_err(|e| vec![format!("not a usable JSON Schema: {e}")])?;
    let problems: Vec<String> = meta
        .iter_errors(schema)
        .map(|e| {
            format!(
                "not a valid JSON Schema: at {}: {e}",
                display_pointer(e.instance_path().as_str())
            )
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    jsonschema::options()
        .with_retriever(NoRemoteRefs)
        .build(schema)
        .map_err(|e| vec![format!("not a usable JSON Schema: {e}")])
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(root)"
    } else {
        pointer
    }
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn serialize_opt_display<T: fmt::Display, S: serde::Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outboard_proto::names::{is_valid_phase_name, is_valid_plugin_name};
    use serde_json::json;

    fn schema(v: Value) -> prost_types::Struct {
        let Value::Object(map) = v else {
            panic!("schema must be an object")
        };
        outboard_proto::json::json_to_struct(&map)
    }

    fn good() -> v1::Manifest {
        v1::Manifest {
            name: "env-injector".into(),
            version: "1.4.0".into(),
            protocol_version: 1,
            description: "sets build variables".into(),
            features: vec!["concurrent-invoke".into(), "from-the-future".into()],
            subscriptions: vec![
                v1::Subscription {
                    phase: "pre_container".into(),
                    priority: -5,
                    idempotent: true,
                },
                v1::Subscription {
                    phase: "job.cleanup-2".into(),
                    priority: 0,
                    idempotent: false,
                },
            ],
            permissions: vec![v1::Permission {
                name: "env:write".into(),
                reason: "injects BUILD_ID".into(),
            }],
            dependencies: vec![
                v1::Dependency {
                    name: "secrets".into(),
                    version_req: ">=1.2, <2".into(),
                    optional: false,
                },
                v1::Dependency {
                    name: "0cache".into(),
                    version_req: String::new(),
                    optional: true,
                },
            ],
            config_schema: Some(schema(json!({
                "type": "object",
                "properties": {
                    "memory": {"type": "string"},
                    "retries": {"type": "integer", "minimum": 0}
                },
                "required": ["memory"],
                "additionalProperties": false
            }))),
            event_subscriptions: Vec::new(),
        }
    }

    fn errors_of(m: v1::Manifest) -> Vec<String> {
        Manifest::from_proto(m, 1)
            .expect_err("manifest should be rejected")
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn good_manifest_passes() {
        let m = Manifest::from_proto(good(), 1).expect("valid manifest");
        assert_eq!(m.name, "env-injector");
        assert_eq!(m.version, semver::Version::new(1, 4, 0));
        assert_eq!(
            m.subscription("pre_container").map(|s| s.priority),
            Some(-5)
        );
        assert!(m.subscription("post_container").is_none());
        assert!(m.has_feature("from-the-future"));
        assert_eq!(
            m.dependencies[0]
                .version_req
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(">=1.2, <2")
        );
        assert_eq!(m.dependencies[1].version_req, None);
        assert!(m.config_schema.is_some());
    }

    #[test]
    fn minimal_manifest_passes() {
        let m = v1::Manifest {
            name: "x".into(),
            version: "0.0.1-alpha.1+build".into(),
            protocol_version: 2,
            ..Default::default()
        };
        let m = Manifest::from_proto(m, 2).expect("valid manifest");
        assert!(m.config_schema.is_none() && m.subscriptions.is_empty());
    }

    #[test]
    fn serializes_versions_as_strings_and_skips_the_validator() {
        let m = Manifest::from_proto(good(), 1).expect("valid manifest");
        let v = serde_json::to_value(&m).expect("serializes");
        assert_eq!(v["version"], "1.4.0");
        assert_eq!(v["dependencies"][0]["version_req"], ">=1.2, <2");
        assert_eq!(v["dependencies"][1]["version_req"], Value::Null);
        assert_eq!(v["subscriptions"][0]["phase"], "pre_container");
        assert_eq!(v["config_schema"]["required"], json!(["memory"]));
        assert!(v.get("validator").is_none());
    }

    #[test]
    fn bad_names() {
        for name in [
            "",
            "Env",
            "-lead",
            "_lead",
            "has space",
            "dot.ted",
            "é",
            &"a".repeat(65),
        ] {
            let mut m = good();
            m.name = name.into();
            assert_eq!(
                errors_of(m),
                [format!(
                    "field name: {name:?} is not a valid plugin name (1 to 64 characters of a-z, 0-9, '_', '-', starting with a letter or digit)"
                )],
            );
        }
        for name in ["a", "0", "a-b_c9", &"z".repeat(64)] {
            assert!(is_valid_plugin_name(name), "{name}");
        }
    }

    #[test]
    fn bad_version() {
        let mut m = good();
        m.version = "banana".into();
        let errs = errors_of(m);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("field version: \"banana\" is not a semver version: "),
            "{errs:?}"
        );
        let mut m = good();
        m.version = "1.4".into();
        assert!(errors_of(m)[0].starts_with("field version: \"1.4\" is not a semver version: "));
    }

    #[test]
    fn protocol_version_must_match_handshake() {
        let mut m = good();
        m.protocol_version = 2;
        assert_eq!(
            errors_of(m),
            [
                "field protocol_version: 2 does not match the protocol version 1 of the plugin's handshake line"
            ]
        );
    }

    #[test]
    fn bad_phase_names() {
        let mut m = good();
        m.subscriptions[1].phase = "Pre Container".into();
        assert_eq!(
            errors_of(m),
            [
                r#"field subscriptions[1].phase: "Pre Container" is not a valid phase name (1 to 64 characters of a-z, 0-9, '_', '.', '-')"#
            ]
        );
        for phase in ["", "pre/container", &"p".repeat(65)] {
            assert!(!is_valid_phase_name(phase), "{phase}");
        }
        assert!(is_valid_phase_name(".-_"));
    }

    #[test]
    fn phase_subscribed_twice() {
        let mut m = good();
        let first = m.subscriptions[0].clone();
        m.subscriptions.push(first.clone());
        m.subscriptions.push(first);
        assert_eq!(
            errors_of(m),
            [
                r#"field subscriptions[2].phase: "pre_container" is subscribed to twice (also subscriptions[0])"#,
                r#"field subscriptions[3].phase: "pre_container" is subscribed to twice (also subscriptions[0])"#,
            ]
        );
    }

    #[test]
    fn blank_permission_name() {
        let mut m = good();
        m.permissions.push(v1::Permission {
            name: " ".into(),
            reason: "why not".into(),
        });
        assert_eq!(
            errors_of(m),
            [
                r#"field permissions[1].name: " " is not a permission name (it must not be blank or hold control characters)"#
            ]
        );
    }

    #[test]
    fn bad_dependencies() {
        let mut m = good();
        m.dependencies[0].name = "Secrets".into();
        m.dependencies[1].version_req = ">=banana".into();
        m.dependencies.push(v1::Dependency {
            name: "env-injector".into(),
            ..Default::default()
        });
        m.dependencies.push(v1::Dependency {
            name: "0cache".into(),
            ..Default::default()
        });
        let errs = errors_of(m);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0]
                .starts_with(r#"field dependencies[0].name: "Secrets" is not a valid plugin name"#)
        );
        assert!(
            errs[1].starts_with(
                r#"field dependencies[1].version_req: ">=banana" is not a semver requirement: "#
            ),
            "{errs:?}"
        );
        assert_eq!(
            errs[2],
            r#"field dependencies[2].name: "env-injector" is the plugin itself"#
        );
        assert_eq!(
            errs[3],
            r#"field dependencies[3].name: "0cache" is listed twice (also dependencies[1])"#
        );
    }

    #[test]
    fn invalid_config_schema() {
        let mut m = good();
        m.config_schema = Some(schema(json!({
            "type": "strin",
            "properties": {"memory": {"minLength": "five"}}
        })));
        let errs = errors_of(m);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs.iter()
                .all(|e| e.starts_with("field config_schema: not a valid JSON Schema: at /")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("/properties/memory/minLength")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.contains("at /type")), "{errs:?}");
    }

    #[test]
    fn remote_refs_are_refused() {
        let mut m = good();
        m.config_schema = Some(schema(json!({
            "$ref": "https://example.com/schemas/config.json"
        })));
        let errs = errors_of(m);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("field config_schema: not a usable JSON Schema: "),
            "{errs:?}"
        );
        assert!(
            errs[0].contains("https://example.com/schemas/config.json"),
            "{errs:?}"
        );
    }

    #[test]
    fn local_refs_work() {
        let mut m = good();
        m.config_schema = Some(schema(json!({
            "$defs": {"size": {"type": "string", "pattern": "^[0-9]+[kMG]$"}},
            "properties": {"memory": {"$ref": "#/$defs/size"}}
        })));
        let m = Manifest::from_proto(m, 1).expect("valid manifest");
        m.validate_config(&json!({"memory": "512M"}))
            .expect("valid config");
        let err = m
            .validate_config(&json!({"memory": "lots"}))
            .expect_err("pattern");
        assert_eq!(err.violations[0].instance_path, "/memory");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut m = good();
        m.name = "Bad Name".into();
        m.version = "banana".into();
        m.protocol_version = 7;
        m.subscriptions[1].phase = "Pre Container".into();
        m.permissions[0].name = String::new();
        m.dependencies[0].version_req = "~~1".into();
        let err = Manifest::from_proto(m, 1).expect_err("six problems");
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "version",
                "protocol_version",
                "subscriptions[1].phase",
                "permissions[0].name",
                "dependencies[0].version_req"
            ]
        );
        let text = err.to_string();
        assert_eq!(text.matches("; field ").count(), 5, "{text}");
        assert!(
            text.starts_with("field name: \"Bad Name\" is not"),
            "{text}"
        );
    }

    #[test]
    fn config_valid_and_invalid() {
        let m = Manifest::from_proto(good(), 1).expect("valid manifest");
        m.validate_config(&json!({"memory": "1G", "retries": 3}))
            .expect("valid config");
        let err = m
            .validate_config(&json!({"memory": 12, "retries": -1, "extra": true}))
            .expect_err("three violations");
        let text: Vec<String> = err.violations.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(&r#"/memory: 12 is not of type "string""#.to_owned()),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("/retries: -1 is less than the minimum")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("(root): ") && t.contains("extra")),
            "{text:?}"
        );
        assert_eq!(err.to_string(), text.join("; "));

        let err = m
            .validate_config(&json!({}))
            .expect_err("memory is required");
        assert_eq!(
            err.to_string(),
            r#"(root): "memory" is a required property"#
        );
    }

    #[test]
    fn violations_do_not_quote_secret_values() {
        let mut m = good();
        m.config_schema = Some(schema(json!({
            "properties": {
                "secret": {"type": "string"},
                "webhook": {"type": "string", "format": "uri", "minLength": 40, "writeOnly": true},
                "db": {"$ref": "#/$defs/dsn"},
                "memory": {"type": "string"}
            },
            "$defs": {"dsn": {"type": "integer", "x-secret": true}},
            "not": {"required": ["forbidden"]}
        })));
        let m = Manifest::from_proto(m, 1).expect("valid manifest");
        let config = json!({
            "secret": ["hunter2-in-an-array"],
            "webhook": "https://hooks.example/T0/hunter2",
            "db": "postgres://u:hunter2@db",
            "memory": 12,
            "forbidden": true,
            "api_token": "hunter2-token"
        });
        let err = m.validate_config(&config).expect_err("violations");
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        let lines: Vec<String> = err.violations.iter().map(ToString::to_string).collect();
        assert!(
            lines.contains(&r#"/secret: the secret array is not of type "string""#.to_owned()),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("/webhook: the secret string ")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&r#"/db: the secret string is not of type "integer""#.to_owned()),
            "{lines:?}"
        );
        // Values that are not secret are still quoted, to help the operator.
        assert!(
            lines.contains(&r#"/memory: 12 is not of type "string""#.to_owned()),
            "{lines:?}"
        );
        // The whole config holds secrets: a violation at the root names it
        // by type only.
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("(root): ") && l.ends_with(" the secret object")),
            "{lines:?}"
        );
    }

    #[test]
    fn config_without_schema() {
        let m = v1::Manifest {
            name: "free".into(),
            version: "1.0.0".into(),
            protocol_version: 1,
            ..Default::default()
        };
        let m = Manifest::from_proto(m, 1).expect("valid manifest");
        m.validate_config(&json!({"anything": [1, {"goes": null}]}))
            .expect("any object");
        let err = m
            .validate_config(&json!([1, 2]))
            .expect_err("not an object");
        assert_eq!(
            err.to_string(),
            "(root): [1,2] is not an object (a plugin's config is a table)"
        );
    }
}
