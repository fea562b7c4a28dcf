//! What `Configure` hands a plugin.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::host::{Events, HostServices, Kv, Secrets};
use crate::{Health, PluginError};

/// The plugin's configuration and what the host granted it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Config {
    /// The config object from the host's config file, already checked
    /// against the manifest's schema.
    pub values: Map<String, Value>,
    /// The permissions the host granted, a subset of those asked for.
    pub granted_permissions: Vec<String>,
    /// The name the host knows this instance by (may differ from the
    /// manifest name when one plugin runs twice).
    pub instance_name: String,
    /// The protocol version in use.
    pub protocol_version: u32,
    /// The plugin's health service: keep a clone to report `NOT_SERVING`
    /// later (see [`Health`]). [`Config::new`] makes a detached one.
    pub health: Health,
    /// The host's services (PROTOCOL.md §17): keep a clone to call them
    /// outside an invocation. [`Config::new`] makes one that offers none.
    pub host: HostServices,
}

/// Compares the values, permissions, instance name and protocol version;
/// the [`Health`] and [`HostServices`] handles are capabilities, not part of
/// the value.
impl PartialEq for Config {
    fn eq(&self, other: &Config) -> bool {
        self.values == other.values
            && self.granted_permissions == other.granted_permissions
            && self.instance_name == other.instance_name
            && self.protocol_version == other.protocol_version
    }
}

impl Config {
    /// A config holding `values` (a JSON object; anything else counts as
    /// empty), nothing granted and a [`Health`] handle attached to no
    /// server.
    pub fn new(values: Value) -> Config {
        Config {
            values: match values {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            ..Config::default()
        }
    }

    /// Sets the granted permissions.
    pub fn with_permissions<I, S>(mut self, permissions: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.granted_permissions = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the host services the plugin may call.
    pub fn with_host(mut self, host: HostServices) -> Config {
        self.host = host;
        self
    }

    /// The key-value store, in the plugin's own namespace.
    pub fn kv(&self) -> Kv {
        self.host.kv()
    }

    /// The secrets granted to the plugin.
    pub fn secrets(&self) -> Secrets {
        self.host.secrets()
    }

    /// Publishing events.
    pub fn events(&self) -> Events {
        self.host.events()
    }

    /// Sets the instance name.
    pub fn with_instance_name(mut self, name: impl Into<String>) -> Config {
        self.instance_name = name.into();
        self
    }

    /// The value at top-level key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// `true` if the host granted `permission`.
    pub fn is_granted(&self, permission: &str) -> bool {
        self.granted_permissions.iter().any(|p| p == permission)
    }

    /// `Ok` if the host granted `permission`, else the
    /// [`PluginError::FailedPrecondition`] naming it that PROTOCOL.md §8.3
    /// asks a plugin to fail `configure` with when it cannot work without it.
    pub fn require(&self, permission: &str) -> Result<(), PluginError> {
        if self.is_granted(permission) {
            return Ok(());
        }
        Err(PluginError::failed_precondition(format!(
            "the permission {permission:?} was not granted; the plugin cannot work without it \
             (add {permission:?} to the plugin's `grant` list in the host's configuration)"
        )))
    }

    /// The config as a serde type; a mismatch is an
    /// [`PluginError::InvalidConfig`] quoting serde's reason, so returning
    /// it from `configure` gives the host a clear `INVALID_ARGUMENT`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_value(Value::Object(self.values.clone()))
            .map_err(|e| PluginError::invalid_config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Wanted {
        prefix: String,
        #[serde(default)]
        overwrite: bool,
    }

    #[test]
    fn deserializes_into_a_serde_type() {
        let c = Config::new(json!({"prefix": "ci"}))
            .with_permissions(["env:write"])
            .with_instance_name("envy");
        assert_eq!(
            c.deserialize::<Wanted>(),
            Ok(Wanted {
                prefix: "ci".into(),
                overwrite: false
            })
        );
        assert!(c.is_granted("env:write") && !c.is_granted("net"));
        assert_eq!(c.get("prefix"), Some(&json!("ci")));
        assert_eq!(c.instance_name, "envy");
    }

    #[test]
    fn equality_ignores_the_health_handle() {
        let a = Config::new(json!({"prefix": "ci"}));
        let b = Config::new(json!({"prefix": "ci"}));
        b.health.set_serving(false);
        assert_eq!(a, b);
        assert_ne!(a, b.with_instance_name("other"));
    }

    #[test]
    fn require_names_the_missing_permission() {
        let config = Config::new(json!({})).with_permissions(["env:write"]);
        assert_eq!(config.require("env:write"), Ok(()));
        let err = config.require("net:connect").expect_err("not granted");
        assert_eq!(err.code(), crate::Code::FailedPrecondition);
        assert!(
            err.message()
                .starts_with("the permission \"net:connect\" was not granted"),
            "{err}"
        );
    }

    #[test]
    fn mismatch_is_invalid_config_with_serdes_reason() {
        let err = Config::new(json!({"prefix": "ci", "extra": 1}))
            .deserialize::<Wanted>()
            .expect_err("unknown field");
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert!(err.message().contains("unknown field `extra`"), "{err}");
    }
}
