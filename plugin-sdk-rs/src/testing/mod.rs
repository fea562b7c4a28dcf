//! Unit-testing a plugin without a host.
//!
//! [`Harness`] drives a plugin the way the SDK's server does, minus the
//! socket: the manifest is checked when the harness is made, the context
//! makes the same round trip through `google.protobuf.Struct` it makes on
//! the wire (numbers become doubles and back), and the reply's patch goes
//! through its wire form and is applied with the host's rules.
//!
//! ```
//! use outboard_plugin::testing::Harness;
//! use outboard_plugin::{Invocation, Manifest, Plugin, PluginError, Reply};
//! use serde_json::json;
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     fn manifest(&self) -> Manifest {
//!         Manifest::new("greeter", "0.1.0").subscribe("pre_container", 0)
//!     }
//!     async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
//!         Ok(Reply::ok().set("/env/GREETING", "hello"))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(async {
//! let harness = Harness::new(Greeter);
//! harness.configure(json!({})).await.expect("accepted");
//! let out = harness.invoke("pre_container", json!({"env": {}})).await.expect("ok");
//! assert_eq!(out.context, json!({"env": {"GREETING": "hello"}}));
//! # });
//! ```
//!
//! Host services (PROTOCOL.md §17) come from a [`FakeHost`]: give it to the
//! harness with [`Harness::with_host`], and the plugin's `config.kv()`,
//! `invocation.kv()` and `event.kv()` reach it; deliver events with
//! [`Harness::deliver`].

mod fake_host;
mod fake_kv;
mod rules;

use std::sync::atomic::{AtomicU64, Ordering};

use outboard_proto::json::{json_to_struct, struct_to_json};
use outboard_proto::patch;
use serde_json::{Map, Value};

pub use fake_host::{FakeHost, Published};

use crate::host::HostServices;
use crate::{
    Config, Event, FieldError, Health, Invocation, Manifest, ManifestError, Outcome, Plugin,
    PluginError, Reply,
};

/// Drives one plugin in-process, as the host would over gRPC.
pub struct Harness<P> {
    /// The plugin under test.
    plugin: P,
    /// Its manifest, read once and checked.
    manifest: Manifest,
    /// The number of the next invocation, for its id.
    next: AtomicU64,
    /// The health handle every `configure` passes on.
    health: Health,
    /// The host services every call gets (none unless
    /// [`Harness::with_host`]).
    host: HostServices,
}

impl<P> std::fmt::Debug for Harness<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

/// The result of one invocation: the plugin's reply and the context as the
/// host would pass it on.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    /// What the plugin answered.
    pub reply: Reply,
    /// The context after applying the reply's patch (unchanged on abort).
    pub context: Value,
}

impl Invoked {
    /// Continue or abort.
    pub fn outcome(&self) -> Outcome {
        self.reply.outcome()
    }

    /// The value at a JSON Pointer into the patched context.
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.context.pointer(pointer)
    }
}

impl<P: Plugin> Harness<P> {
    /// A harness for `plugin`.
    ///
    /// # Panics
    ///
    /// If the manifest is invalid (see [`Manifest::validate`]) or subscribes
    /// to no phase, with every problem in the message.
    pub fn new(plugin: P) -> Harness<P> {
        match Harness::try_new(plugin) {
            Ok(h) => h,
            Err(e) => panic!("the plugin's manifest is not one a host would accept: {e}"),
        }
    }

    /// A harness for `plugin`, or what is wrong with its manifest.
    pub fn try_new(plugin: P) -> Result<Harness<P>, ManifestError> {
        let manifest = plugin.manifest();
        let mut errors = match manifest.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.errors,
        };
        if manifest.subscriptions().is_empty() && manifest.event_subscriptions().is_empty() {
            errors.push(FieldError::new(
                "subscriptions",
                "none (and no event subscriptions), so the plugin would never be invoked",
            ));
        }
        if !errors.is_empty() {
            return Err(ManifestError { errors });
        }
        Ok(Harness {
            plugin,
            manifest,
            next: AtomicU64::new(1),
            health: Health::new(),
            host: HostServices::default(),
        })
    }

    /// Gives the plugin `host`'s services in every configure, invocation
    /// and event.
    pub fn with_host(mut self, host: &FakeHost) -> Harness<P> {
        self.host = host.services();
        self
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The plugin under test.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// The health handle the plugin receives in every `configure`: what the
    /// plugin's health service would answer over gRPC.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Configures the plugin with `values` (a JSON object), granting every
    /// permission the manifest asks for. The JSON Schema is not checked here
    /// (the host does that); the plugin's own checks are.
    pub async fn configure(&self, values: Value) -> Result<(), PluginError> {
        let config = Config::new(values)
            .with_permissions(self.manifest.permissions().iter().map(|p| p.name.clone()))
            .with_instance_name(self.manifest.name());
        self.configure_with(config).await
    }

    /// Configures the plugin with a config built by the test. Its health
    /// handle is replaced by the harness's ([`Harness::health`]).
    pub async fn configure_with(&self, mut config: Config) -> Result<(), PluginError> {
        config.values = wire_round_trip(config.values);
        config.health = self.health.clone();
        if !config.host.is_offered() {
            config.host = self.host.clone();
        }
        if config.protocol_version == 0 {
            config.protocol_version = outboard_proto::handshake::PROTOCOL_VERSION;
        }
        self.plugin.configure(config).await
    }

    /// Invokes `phase` with `context` (a JSON object), attempt 1 and an id
    /// `harness-0001`, `harness-0002`, ...
    ///
    /// # Panics
    ///
    /// If the plugin does not subscribe to `phase`: the host would never
    /// make that call, so the test has a typo.
    pub async fn invoke(&self, phase: &str, context: Value) -> Result<Invoked, PluginError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let invocation =
            Invocation::new(phase, context).with_invocation_id(format!("harness-{n:04}"));
        self.invoke_with(invocation).await
    }

    /// Invokes the plugin with an invocation built by the test (to set the
    /// id, attempt or deadline).
    ///
    /// # Panics
    ///
    /// As [`Harness::invoke`].
    pub async fn invoke_with(&self, mut invocation: Invocation) -> Result<Invoked, PluginError> {
        // Events are checked against the event patterns by `dispatch`,
        // which answers UNIMPLEMENTED as the server does.
        let is_event = invocation
            .phase
            .starts_with(crate::host::event::PHASE_PREFIX);
        assert!(
            is_event || self.manifest.subscription_for(&invocation.phase).is_some(),
            "{} does not subscribe to phase {:?} (it subscribes to {:?})",
            self.manifest.name(),
            invocation.phase,
            self.manifest
                .subscriptions()
                .iter()
                .map(|s| s.phase.as_str())
                .collect::<Vec<_>>()
        );
        invocation.context = wire_round_trip(invocation.context);
        let mut context = Value::Object(invocation.context.clone());
        if !invocation.host().is_offered() {
            invocation = invocation.with_host(self.host.clone());
        }

        let patterns = self.manifest.event_subscriptions();
        let reply = crate::plugin::dispatch(&self.plugin, patterns, invocation).await?;
        // What the server would send, read back as the host reads it.
        let wire = reply.to_proto()?;
        if reply.outcome() == Outcome::Continue {
            let ops = patch::from_proto(&wire.patch).map_err(|e| {
                PluginError::internal(format!("the host cannot read the patch: {e}"))
            })?;
            patch::apply(&mut context, &ops).map_err(|e| {
                PluginError::internal(format!("the host cannot apply the patch: {e}"))
            })?;
        }
        Ok(Invoked { reply, context })
    }

    /// Delivers `event` as the host does: an `event:<name>` invocation
    /// whose context is the event, answered by [`Plugin::on_event`] if the
    /// manifest subscribes to it, else `UNIMPLEMENTED`.
    pub async fn deliver(&self, event: Event) -> Result<(), PluginError> {
        let invocation = Invocation::new(format!("event:{}", event.name), event.to_context())
            .with_invocation_id(event.id.clone())
            .with_attempt(event.attempt);
        self.invoke_with(invocation).await.map(|_| ())
    }

    /// Tells the plugin to release its resources.
    pub async fn shutdown(&self) {
        self.plugin.shutdown().await;
    }
}

/// The object as the plugin would receive it over gRPC.
fn wire_round_trip(values: Map<String, Value>) -> Map<String, Value> {
    struct_to_json(&json_to_struct(&values))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    struct Echo;

    impl Plugin for Echo {
        fn manifest(&self) -> Manifest {
            Manifest::new("echo", "1.0.0").subscribe("pre_container", 0)
        }

        async fn invoke(&self, inv: Invocation) -> Result<Reply, PluginError> {
            match inv.phase.as_str() {
                "pre_container" => match inv.get("/metadata/mode").and_then(Value::as_str) {
                    Some("abort") => Ok(Reply::abort("told to").set("/ignored", 1)),
                    Some("bad-pointer") => Ok(Reply::ok().set("nope", 1)),
                    Some("into-string") => Ok(Reply::ok().set("/env/X/Y", 1)),
                    _ => Ok(Reply::ok()
                        .set("/env/ID", inv.invocation_id.clone())
                        .set(
                            "/metadata/n",
                            inv.get("/metadata/n").cloned().unwrap_or_default(),
                        )
                        .remove("/env/DROP")),
                },
                other => Err(PluginError::failed(format!("unexpected {other}"))),
            }
        }
    }

    #[tokio::test]
    async fn applies_the_patch_like_the_host() {
        let h = Harness::new(Echo);
        let out = h
            .invoke(
                "pre_container",
                json!({"env": {"DROP": "x", "KEEP": "y"}, "metadata": {"n": 3}}),
            )
            .await
            .unwrap();
        assert_eq!(out.outcome(), Outcome::Continue);
        assert_eq!(
            out.context,
            json!({"env": {"KEEP": "y", "ID": "harness-0001"}, "metadata": {"n": 3}})
        );
        let second = h.invoke("pre_container", json!({})).await.unwrap();
        assert_eq!(second.get("/env/ID"), Some(&json!("harness-0002")));
    }

    #[tokio::test]
    async fn abort_leaves_the_context_alone() {
        let h = Harness::new(Echo);
        let ctx = json!({"metadata": {"mode": "abort"}});
        let out = h.invoke("pre_container", ctx.clone()).await.unwrap();
        assert_eq!(out.outcome(), Outcome::Abort);
        assert_eq!(out.reply.message(), "told to");
        assert_eq!(out.context, ctx);
    }

    #[tokio::test]
    async fn bad_patches_are_errors_the_host_would_raise() {
        let h = Harness::new(Echo);
        let err = h
            .invoke(
                "pre_container",
                json!({"metadata": {"mode": "bad-pointer"}}),
            )
            .await
            .unwrap_err();
        assert!(
            err.message()
                .contains("\"nope\" is not a valid JSON Pointer"),
            "{err}"
        );
        let err = h
            .invoke(
                "pre_container",
                json!({"env": {"X": "s"}, "metadata": {"mode": "into-string"}}),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.message(),
            "the host cannot apply the patch: cannot set /env/X/Y: /env/X is a string, not an object or array"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "echo does not subscribe to phase \"post_container\"")]
    async fn unsubscribed_phase_is_a_test_bug() {
        let _ = Harness::new(Echo).invoke("post_container", json!({})).await;
    }

    #[tokio::test]
    async fn configure_hands_the_plugin_the_harness_health_handle() {
        struct Sick;
        impl Plugin for Sick {
            fn manifest(&self) -> Manifest {
                Manifest::new("sick", "1.0.0").subscribe("pre_container", 0)
            }
            async fn configure(&self, config: Config) -> Result<(), PluginError> {
                config
                    .health
                    .set_serving(config.get("healthy") == Some(&json!(true)));
                Ok(())
            }
            async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
                Ok(Reply::ok())
            }
        }
        let h = Harness::new(Sick);
        assert!(h.health().is_serving(), "SERVING before Configure");
        h.configure(json!({})).await.unwrap();
        assert!(!h.health().is_serving());
        // Even a config built by the test gets the harness's handle.
        h.configure_with(Config::new(json!({"healthy": true})))
            .await
            .unwrap();
        assert!(h.health().is_serving());
    }

    #[test]
    fn bad_manifests_are_refused_with_reasons() {
        struct Nameless;
        impl Plugin for Nameless {
            fn manifest(&self) -> Manifest {
                Manifest::new("No Name", "one")
            }
            async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
                Ok(Reply::ok())
            }
        }
        let err = Harness::try_new(Nameless).unwrap_err();
        assert_eq!(err.errors.len(), 3, "{err}");
        assert!(
            err.to_string()
                .ends_with("so the plugin would never be invoked"),
            "{err}"
        );
    }
}
