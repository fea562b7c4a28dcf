//! The plugin's manifest: what `Describe` answers, built with a small
//! builder and checked with the host's own rules
//! ([`outboard_proto::manifest::check`]).

use std::fmt;

use outboard_proto::{json, v1};
use serde_json::Value;

pub use outboard_proto::manifest::FieldError;
pub use outboard_proto::names::MAX_NAME_LEN;

/// What a plugin is and what it wants: its name, version, the phases it
/// subscribes to, the permissions it asks for, and its config schema.
///
/// ```
/// use outboard_plugin::Manifest;
/// use serde_json::json;
///
/// let manifest = Manifest::new("env-injector", "1.0.0")
///     .describe("Sets BUILD_ID in the job's environment")
///     .subscribe("pre_container", 10)
///     .permission("env:write", "to set BUILD_ID")
///     .config_schema(json!({"type": "object"}));
/// assert_eq!(manifest.subscriptions()[0].phase, "pre_container");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    name: String,
    version: String,
    description: String,
    features: Vec<String>,
    subscriptions: Vec<Subscription>,
    permissions: Vec<Permission>,
    dependencies: Vec<Dependency>,
    config_schema: Option<Value>,
    event_subscriptions: Vec<String>,
}

/// A plugin's interest in one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The phase name, e.g. `pre_container`.
    pub phase: String,
    /// Lower runs first in sequential phases; ties are broken by plugin name.
    pub priority: i32,
    /// `true` if invoking the plugin twice for one invocation is harmless.
    pub idempotent: bool,
}

/// A permission the plugin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The permission, e.g. `env:write`.
    pub name: String,
    /// Why the plugin needs it, shown to the operator.
    pub reason: String,
}

/// Another plugin this one needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The other plugin's manifest name.
    pub name: String,
    /// A semver requirement on its version, e.g. `>=1.2, <2`; empty for any.
    pub version_req: String,
    /// `true` if the plugin works without it.
    pub optional: bool,
}

/// Everything wrong with a manifest, one entry per problem, each naming the
/// field. Shown as `name: "Env" is not a valid plugin name (...); ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// One entry per problem, in field order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.why)?;
        }
        Ok(())
    }
}

impl Manifest {
    /// A manifest with a name (`[a-z0-9_-]`, 1 to 64 characters) and a
    /// semver version, and nothing else yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Manifest {
        Manifest {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            features: Vec::new(),
            subscriptions: Vec::new(),
            permissions: Vec::new(),
            dependencies: Vec::new(),
            config_schema: None,
            event_subscriptions: Vec::new(),
        }
    }

    /// Sets the one-line description shown to humans.
    pub fn describe(mut self, description: impl Into<String>) -> Manifest {
        self.description = description.into();
        self
    }

    /// Subscribes to `phase`; lower `priority` runs first.
    pub fn subscribe(self, phase: impl Into<String>, priority: i32) -> Manifest {
        self.subscription(phase.into(), priority, false)
    }

    /// Subscribes to `phase` and tells the host a retry is harmless.
    pub fn subscribe_idempotent(self, phase: impl Into<String>, priority: i32) -> Manifest {
        self.subscription(phase.into(), priority, true)
    }

    fn subscription(mut self, phase: String, priority: i32, idempotent: bool) -> Manifest {
        self.subscriptions.push(Subscription {
            phase,
            priority,
            idempotent,
        });
        self
    }

    /// Subscribes to the events matching `pattern` (an event name, or a
    /// glob where `*` matches any run of characters: `job.finished`,
    /// `job.*`), delivered to [`Plugin::on_event`](crate::Plugin::on_event).
    /// The host delivers them only if the operator grants
    /// `event:subscribe:<pattern>` (PROTOCOL.md §17.6), so this also asks
    /// for that permission.
    pub fn subscribe_event(mut self, pattern: impl Into<String>) -> Manifest {
        let pattern = pattern.into();
        let permission = format!("event:subscribe:{pattern}");
        if !self.permissions.iter().any(|p| p.name == permission) {
            self = self.permission(permission, format!("to receive {pattern} events"));
        }
        self.event_subscriptions.push(pattern);
        self
    }

    /// Declares an optional capability by name (e.g. `concurrent-invoke`).
    pub fn feature(mut self, feature: impl Into<String>) -> Manifest {
        self.features.push(feature.into());
        self
    }

    /// Asks for a permission, saying why.
    pub fn permission(mut self, name: impl Into<String>, reason: impl Into<String>) -> Manifest {
        self.permissions.push(Permission {
            name: name.into(),
            reason: reason.into(),
        });
        self
    }

    /// Requires another plugin, at versions matching `version_req` (empty
    /// for any).
    pub fn depends_on(self, name: impl Into<String>, version_req: impl Into<String>) -> Manifest {
        self.dependency(name.into(), version_req.into(), false)
    }

    /// Like [`Manifest::depends_on`], but the plugin also works without it.
    pub fn depends_on_optional(
        self,
        name: impl Into<String>,
        version_req: impl Into<String>,
    ) -> Manifest {
        self.dependency(name.into(), version_req.into(), true)
    }

    fn dependency(mut self, name: String, version_req: String, optional: bool) -> Manifest {
        self.dependencies.push(Dependency {
            name,
            version_req,
            optional,
        });
        self
    }

    /// Sets the JSON Schema (draft 2020-12) the host checks the config
    /// against before `Configure`. It must be a JSON object.
    pub fn config_schema(mut self, schema: Value) -> Manifest {
        self.config_schema = Some(schema);
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version, as given.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The one-line description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The declared features.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// The phases subscribed to, in declaration order.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// The subscription for `phase`, if any.
    pub fn subscription_for(&self, phase: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| s.phase == phase)
    }

    /// The event patterns subscribed to, in declaration order.
    pub fn event_subscriptions(&self) -> &[String] {
        &self.event_subscriptions
    }

    /// The permissions asked for.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// The plugins this one depends on.
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// The config schema, if one was declared.
    pub fn schema(&self) -> Option<&Value> {
        self.config_schema.as_ref()
    }

    /// Checks the manifest with the rules the host applies
    /// ([`outboard_proto::manifest::check`]) and that its config schema is
    /// a JSON object, and reports every problem at once.
    pub fn validate(&self) -> Result<(), ManifestError> {
        // The protocol version is the handshake's business, not checked here.
        let mut errors = outboard_proto::manifest::check(&self.to_proto(0));
        if let Some(schema) = &self.config_schema
            && !schema.is_object()
        {
            errors.push(FieldError::new(
                "config_schema",
                format!("a JSON Schema here must be an object, got {schema}"),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ManifestError { errors })
        }
    }

    /// The manifest's wire form, speaking `protocol_version`.
    pub fn to_proto(&self, protocol_version: u32) -> v1::Manifest {
        v1::Manifest {
            name: self.name.clone(),
            version: self.version.clone(),
            protocol_version,
            description: self.description.clone(),
            features: self.features.clone(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|s| v1::Subscription {
                    phase: s.phase.clone(),
                    priority: s.priority,
                    idempotent: s.idempotent,
                })
                .collect(),
            permissions: self
                .permissions
                .iter()
                .map(|p| v1::Permission {
                    name: p.name.clone(),
                    reason: p.reason.clone(),
                })
                .collect(),
            dependencies: self
                .dependencies
                .iter()
                .map(|d| v1::Dependency {
                    name: d.name.clone(),
                    version_req: d.version_req.clone(),
                    optional: d.optional,
                })
                .collect(),
            // validate() refuses a non-object schema; were one to get here it
            // is sent as absent (accept anything) rather than mangled.
            config_schema: match &self.config_schema {
                Some(Value::Object(map)) => Some(json::json_to_struct(map)),
                _ => None,
            },
            event_subscriptions: self
                .event_subscriptions
                .iter()
                .map(|pattern| v1::EventSubscription {
                    pattern: pattern.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Manifest {
        Manifest::new("env-injector", "1.2.3")
            .describe("sets things")
            .subscribe("pre_container", 10)
            .subscribe_idempotent("post_container", -5)
            .feature("concurrent-invoke")
            .permission("env:write", "to set BUILD_ID")
            .depends_on("vault", ">=1.2, <2")
            .depends_on_optional("cache", "")
            .config_schema(json!({"type": "object", "additionalProperties": false}))
            .subscribe_event("job.*")
    }

    #[test]
    fn builder_fills_every_wire_field() {
        let m = full();
        assert_eq!(m.validate(), Ok(()));
        let wire = m.to_proto(1);
        assert_eq!(wire.name, "env-injector");
        assert_eq!(wire.version, "1.2.3");
        assert_eq!(wire.protocol_version, 1);
        assert_eq!(wire.description, "sets things");
        assert_eq!(wire.features, ["concurrent-invoke"]);
        assert_eq!(
            wire.subscriptions,
            [
                v1::Subscription {
                    phase: "pre_container".into(),
                    priority: 10,
                    idempotent: false
                },
                v1::Subscription {
                    phase: "post_container".into(),
                    priority: -5,
                    idempotent: true
                },
            ]
        );
        assert_eq!(wire.permissions[0].reason, "to set BUILD_ID");
        assert_eq!(
            wire.event_subscriptions,
            [v1::EventSubscription {
                pattern: "job.*".into()
            }]
        );
        assert_eq!(wire.permissions[1].name, "event:subscribe:job.*");
        assert_eq!(wire.dependencies[0].version_req, ">=1.2, <2");
        assert!(wire.dependencies[1].optional);
        let schema = json::struct_to_json(&wire.config_schema.expect("schema"));
        assert_eq!(
            Value::Object(schema),
            json!({"type": "object", "additionalProperties": false})
        );
    }

    #[test]
    fn validation_reports_every_problem_with_its_field() {
        let m = Manifest::new("Env Injector", "1.0")
            .subscribe("pre container", 1)
            .subscribe("x", 1)
            .subscribe("x", 2)
            .permission(" ", "why")
            .depends_on("vault", "not a req")
            .config_schema(json!(true));
        let err = m.validate().expect_err("invalid");
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "version",
                "subscriptions[0].phase",
                "subscriptions[2].phase",
                "permissions[0].name",
                "dependencies[0].version_req",
                "config_schema",
            ]
        );
        assert!(err.errors[0].why.contains("\"Env Injector\""), "{err}");
        assert!(err.errors[3].why.contains("also subscriptions[1]"), "{err}");
        assert!(
            err.to_string().starts_with("name: \"Env Injector\" is not"),
            "{err}"
        );
    }

    #[test]
    fn refuses_what_the_host_refuses() {
        let m = Manifest::new("env-injector", "1.0.0")
            .depends_on("env-injector", "")
            .depends_on("vault", "")
            .depends_on_optional("vault", "^1");
        let err = m.validate().expect_err("self and duplicate dependencies");
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["dependencies[0].name", "dependencies[2].name"]);
        assert_eq!(
            err.to_string(),
            "dependencies[0].name: \"env-injector\" is the plugin itself; \
             dependencies[2].name: \"vault\" is listed twice (also dependencies[1])"
        );
    }

    #[test]
    fn names_are_bounded_and_start_with_alnum() {
        assert!(Manifest::new("-x", "1.0.0").validate().is_err());
        assert!(Manifest::new("", "1.0.0").validate().is_err());
        assert!(Manifest::new("a".repeat(65), "1.0.0").validate().is_err());
        assert!(Manifest::new("a".repeat(64), "1.0.0").validate().is_ok());
        assert!(
            Manifest::new("9_lives-2", "0.1.0-rc.1+b7")
                .validate()
                .is_ok()
        );
    }
}
