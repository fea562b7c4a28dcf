//! The plugin: counts invocations and commits the configured faults.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use outboard_plugin::{Config, Health, Invocation, Manifest, Plugin, PluginError, Reply};

use crate::NAME;
use crate::faults::{Faults, Step, schema};
use crate::launch::{Launch, Phase};
use crate::side_effects::start_side_effects;

/// The exit status of `crash_after`.
const EXIT_CRASH: i32 = 101;

/// What `Configure` set.
#[derive(Debug, Clone)]
struct State {
    /// The checked config.
    faults: Faults,
    /// The instance name, for the patch path.
    instance: String,
    /// The health handle from `Configure`.
    health: Option<Health>,
}

/// The plugin.
pub(crate) struct Stress {
    /// The subscriptions, from `STRESS_PHASES`.
    phases: Vec<Phase>,
    /// `STRESS_IGNORE_SIGTERM`, for the shutdown hook.
    ignore_sigterm: bool,
    /// The config and what came with it.
    state: RwLock<State>,
    /// Invocations since the process started.
    invocations: AtomicU64,
    /// Set once floods, output and grandchildren have been started.
    side_effects_started: AtomicBool,
    /// Ends the process: `std::process::exit`, a panic in tests.
    exit: fn(i32) -> !,
}

impl Stress {
    /// A plugin for what `launch` asks; `exit` ends the process.
    pub(crate) fn new(launch: &Launch, exit: fn(i32) -> !) -> Stress {
        Stress {
            phases: launch.phases.clone(),
            ignore_sigterm: launch.ignore_sigterm,
            state: RwLock::new(State {
                faults: Faults::default(),
                instance: NAME.to_owned(),
                health: None,
            }),
            invocations: AtomicU64::new(0),
            side_effects_started: AtomicBool::new(false),
            exit,
        }
    }

    /// A copy of what `Configure` set.
    fn state(&self) -> State {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Plugin for Stress {
    fn manifest(&self) -> Manifest {
        let mut manifest = Manifest::new(NAME, env!("CARGO_PKG_VERSION"))
            .describe(
                "Misbehaves on demand (crashes, hangs, floods its output, leaves processes \
                 behind) for the host's supervision tests",
            )
            .config_schema(schema());
        for phase in &self.phases {
            manifest = if phase.idempotent {
                manifest.subscribe_idempotent(&phase.name, phase.priority)
            } else {
                manifest.subscribe(&phase.name, phase.priority)
            };
        }
        manifest
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let faults = Faults::from_config(&config)?;
        if faults.has_side_effects() && !self.side_effects_started.swap(true, Ordering::SeqCst) {
            start_side_effects(&faults)?;
        }
        faults.health.at_configure().apply(&config.health);
        tracing::info!(faults = ?faults, "stress: configured");
        let instance = if config.instance_name.is_empty() {
            NAME.to_owned()
        } else {
            config.instance_name
        };
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = State {
            faults,
            instance,
            health: Some(config.health),
        };
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let count = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
        let state = self.state();
        if let (Some(change), Some(health)) =
            (state.faults.health.after_invocation(count), &state.health)
        {
            change.apply(health);
        }
        let step = state.faults.step(count);
        match step {
            Step::Crash => {
                tracing::error!(
                    invocations = count,
                    "stress: crashing after {count} invocations"
                );
                (self.exit)(EXIT_CRASH)
            }
            Step::Panic => panic!("stress: panicking in Invoke on purpose (invocation {count})"),
            Step::Hang | Step::Answer => {}
        }
        if let Some(delay) = state.faults.invoke_delay {
            tokio::time::sleep(delay).await;
        }
        if step == Step::Hang {
            tracing::warn!(invocations = count, "stress: hanging in Invoke on purpose");
            std::future::pending::<()>().await;
        }
        let reply = Reply::ok().set(&count_pointer(&state.instance), count);
        Ok(crate::files::attempt(&invocation.context, reply))
    }

    async fn shutdown(&self) {
        if !self.state().faults.ignore_shutdown {
            return;
        }
        if self.ignore_sigterm {
            tracing::warn!("stress: answered Shutdown, not exiting on purpose (until SIGKILL)");
            return std::future::pending().await;
        }
        tracing::warn!("stress: answered Shutdown, not exiting on purpose (until SIGTERM)");
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
                tracing::warn!("stress: got SIGTERM, exiting");
            }
            Err(e) => {
                tracing::error!(error = %e, "stress: cannot listen for SIGTERM; hanging");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// `/metadata/stress/<instance>/count`, the instance name escaped as RFC
/// 6901 asks.
fn count_pointer(instance: &str) -> String {
    let token = instance.replace('~', "~0").replace('/', "~1");
    format!("/metadata/stress/{token}/count")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::launch::ENV_PHASES;
    use crate::launch::tests::launch;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// The exit seam in tests: a panic naming the status, instead of the
    /// end of the test binary.
    fn fake_exit(code: i32) -> ! {
        panic!("stress would exit({code})")
    }

    fn harness() -> Harness<Stress> {
        Harness::new(Stress::new(&launch(&[]), fake_exit))
    }

    #[test]
    fn manifest_subscribes_from_the_environment_with_a_closed_schema() {
        let h = Harness::new(Stress::new(
            &launch(&[(ENV_PHASES, "pre_container:10,post_container:-5:idempotent")]),
            fake_exit,
        ));
        let m = h.manifest();
        assert_eq!(m.name(), "stress");
        let subs: Vec<_> = m
            .subscriptions()
            .iter()
            .map(|s| (s.phase.as_str(), s.priority, s.idempotent))
            .collect();
        assert_eq!(
            subs,
            [("pre_container", 10, false), ("post_container", -5, true)]
        );
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["flood_stderr"]["required"],
            json!(["lines_per_sec", "line_bytes"])
        );
        let keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 11, "{keys:?}");
    }

    #[tokio::test]
    async fn bad_config_is_refused_naming_the_key() {
        let h = harness();
        let cases = [
            (
                json!({"crash_after": 0}),
                "crash_after: expected a whole number 1 or more, got 0",
            ),
            (
                json!({"crash_after": "3"}),
                "crash_after: expected a whole number 1 or more, got \"3\"",
            ),
            (
                json!({"invoke_delay_ms": 1.5}),
                "invoke_delay_ms: expected a whole number from 0 to 86400000, got 1.5",
            ),
            (
                json!({"hang_invoke": "yes"}),
                "hang_invoke: expected true or false, got \"yes\"",
            ),
            (
                json!({"health": "sick"}),
                "health: expected \"serving\", \"not_serving\", \"not_serving_after:N\", \
                 \"stop_answering\" or \"stop_answering_after:N\" (N from 1), got \"sick\"",
            ),
            (
                json!({"health": "not_serving_after:0"}),
                "health: expected \"serving\", \"not_serving\", \"not_serving_after:N\", \
                 \"stop_answering\" or \"stop_answering_after:N\" (N from 1), got \
                 \"not_serving_after:0\"",
            ),
            (
                json!({"flood_stderr": 100}),
                "flood_stderr: expected an object {\"lines_per_sec\": N, \"line_bytes\": M}, \
                 got 100",
            ),
            (
                json!({"flood_stdout": {"lines_per_sec": 10}}),
                "flood_stdout.line_bytes: missing (expected a whole number from 1 to 16777216)",
            ),
            (
                json!({"flood_stdout": {"lines_per_sec": 0, "line_bytes": 1}}),
                "flood_stdout.lines_per_sec: expected a whole number from 1 to 1000000, got 0",
            ),
            (
                json!({"flood_stderr": {"lines_per_sec": 1, "line_bytes": 1, "colour": 1}}),
                "flood_stderr.colour: unknown key (expected lines_per_sec and line_bytes)",
            ),
            (
                json!({"fork_grandchildren": 65}),
                "fork_grandchildren: expected a whole number from 0 to 64, got 65",
            ),
            (
                json!({"orphan_grandchildren": -1}),
                "orphan_grandchildren: expected a whole number from 0 to 64, got -1",
            ),
            (
                json!({"newline_free_bytes": 2_000_000_000u64}),
                "newline_free_bytes: expected a whole number from 0 to 1073741824, got \
                 2000000000",
            ),
            (
                json!({"ignore_shutdown": 1}),
                "ignore_shutdown: expected true or false, got 1",
            ),
        ];
        for (config, want) in cases {
            let err = h.configure(config.clone()).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{config}");
            assert_eq!(err.message(), want, "{config}");
        }
        let err = h.configure(json!({"phases": ["x"]})).await.unwrap_err();
        assert!(err.message().contains("unknown field `phases`"), "{err}");
    }

    #[tokio::test]
    async fn invoke_patches_the_count_under_the_instance_name() {
        let h = harness();
        // Before Configure, the manifest name stands in.
        let out = h.invoke("stress", json!({"metadata": {}})).await.unwrap();
        assert_eq!(out.get("/metadata/stress/stress/count"), Some(&json!(1)));

        h.configure_with(Config::new(json!({})).with_instance_name("stress-b"))
            .await
            .unwrap();
        let out = h.invoke("stress", json!({})).await.unwrap();
        assert_eq!(
            out.context,
            json!({"metadata": {"stress": {"stress-b": {"count": 2}}}})
        );
        assert_eq!(count_pointer("a/b~c"), "/metadata/stress/a~1b~0c/count");
    }

    #[tokio::test]
    async fn crash_after_exits_101_in_the_nth_invocation() {
        let h = Arc::new(harness());
        h.configure(json!({"crash_after": 3})).await.unwrap();
        for n in 1..=2 {
            let out = h.invoke("stress", json!({})).await.unwrap();
            assert_eq!(out.get("/metadata/stress/stress/count"), Some(&json!(n)));
        }
        let third = tokio::spawn({
            let h = h.clone();
            async move { h.invoke("stress", json!({})).await }
        });
        let panic = third.await.unwrap_err().into_panic();
        let message = panic.downcast_ref::<String>().unwrap();
        assert_eq!(message, "stress would exit(101)");
    }

    #[tokio::test]
    async fn health_follows_the_mode() {
        let h = harness();
        h.configure(json!({"health": "not_serving"})).await.unwrap();
        assert!(!h.health().is_serving() && !h.health().is_stalled());

        h.configure(json!({"health": "stop_answering"}))
            .await
            .unwrap();
        assert!(h.health().is_serving() && h.health().is_stalled());

        // Configure resets what an earlier mode set.
        h.configure(json!({"health": "serving"})).await.unwrap();
        assert!(h.health().is_serving() && !h.health().is_stalled());

        // Counted since start: the two invocations above were none, so
        // NOT_SERVING comes with the 2nd invocation.
        h.configure(json!({"health": "not_serving_after:2"}))
            .await
            .unwrap();
        h.invoke("stress", json!({})).await.unwrap();
        assert!(h.health().is_serving());
        h.invoke("stress", json!({})).await.unwrap();
        assert!(!h.health().is_serving());
        // Calls are still answered.
        let out = h.invoke("stress", json!({})).await.unwrap();
        assert_eq!(out.get("/metadata/stress/stress/count"), Some(&json!(3)));

        h.configure(json!({"health": "stop_answering_after:4"}))
            .await
            .unwrap();
        assert!(h.health().is_serving() && !h.health().is_stalled());
        h.invoke("stress", json!({})).await.unwrap();
        assert!(h.health().is_stalled());
    }

    #[tokio::test]
    async fn delay_and_hang_hold_the_answer() {
        let h = harness();
        h.configure(json!({"invoke_delay_ms": 100})).await.unwrap();
        let started = Instant::now();
        h.invoke("stress", json!({})).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));

        h.configure(json!({"hang_invoke": true})).await.unwrap();
        let hung =
            tokio::time::timeout(Duration::from_millis(200), h.invoke("stress", json!({}))).await;
        assert!(hung.is_err(), "a hung Invoke answered: {hung:?}");
    }

    #[tokio::test]
    async fn panic_on_invoke_panics_in_the_call() {
        let h = Arc::new(harness());
        h.configure(json!({"panic_on_invoke": true})).await.unwrap();
        let call = tokio::spawn({
            let h = h.clone();
            async move { h.invoke("stress", json!({})).await }
        });
        let panic = call.await.unwrap_err().into_panic();
        assert_eq!(
            panic.downcast_ref::<String>().unwrap(),
            "stress: panicking in Invoke on purpose (invocation 1)"
        );
    }
}
