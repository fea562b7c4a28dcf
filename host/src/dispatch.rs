//! Invoking a phase on the plugins subscribed to it.
//!
//! Subscribers run one after another, lowest priority number first, ties by
//! name; each sees the context as patched by those before it. An `ABORT`
//! (a veto) or a failure stops the chain, and the plugins after it are
//! reported as skipped. The [`Report`] always lists every subscriber.

use std::time::{Duration, Instant};

use outboard_proto::json::json_to_struct;
use outboard_proto::patch::{self, PatchOp};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::plugin::{Plugin, Reply};

/// What one dispatch of a phase did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The phase.
    pub phase: String,
    /// The id sent to every plugin with this dispatch.
    pub invocation_id: String,
    /// The phase's result.
    pub verdict: Verdict,
    /// Every subscribed plugin, in the order they ran (or would have).
    pub entries: Vec<Entry>,
    /// The context after every applied patch.
    pub context: Value,
    /// Wall time of the whole dispatch.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

/// The phase's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Verdict {
    /// Every subscriber continued.
    Passed,
    /// A plugin vetoed the phase.
    Vetoed { plugin: String, message: String },
    /// A plugin failed.
    Failed { plugin: String, error: String },
}

/// One plugin's part in a dispatch.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The plugin's name.
    pub plugin: String,
    /// Its priority for this phase.
    pub priority: i32,
    /// What happened.
    pub outcome: Outcome,
    /// How long its call took (zero if skipped).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// The patch it returned, as applied.
    #[serde(serialize_with = "patch_json")]
    pub patch: Vec<PatchOp>,
    /// Its message, or the error.
    pub message: String,
}

/// What happened to one plugin in a dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It continued; its patch was applied.
    Ok,
    /// It vetoed the phase.
    Vetoed,
    /// Its call failed, or its patch did not apply.
    Failed,
    /// It was not called because the phase had already stopped.
    Skipped,
}

/// Runs `phase` on every plugin in `plugins` that subscribes to it.
pub async fn run(plugins: &[Plugin], phase: &str, context: Map<String, Value>) -> Report {
    let started = Instant::now();
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let mut subscribers: Vec<(i32, &Plugin)> = plugins
        .iter()
        .filter_map(|p| {
            p.manifest()
                .subscriptions
                .iter()
                .find(|s| s.phase == phase)
                .map(|s| (s.priority, p))
        })
        .collect();
    subscribers.sort_by(|(pa, a), (pb, b)| pa.cmp(pb).then_with(|| a.name().cmp(b.name())));

    let mut context = Value::Object(context);
    let mut verdict = Verdict::Passed;
    let mut entries = Vec::with_capacity(subscribers.len());
    for (priority, plugin) in subscribers {
        let mut entry = Entry {
            plugin: plugin.name().to_owned(),
            priority,
            outcome: Outcome::Skipped,
            duration: Duration::ZERO,
            patch: Vec::new(),
            message: String::new(),
        };
        if verdict != Verdict::Passed {
            entries.push(entry);
            continue;
        }
        let call_started = Instant::now();
        let as_struct = match &context {
            Value::Object(map) => json_to_struct(map),
            _ => Default::default(),
        };
        let reply = plugin
            .invoke(
                phase,
                &invocation_id,
                1,
                as_struct,
                plugin.spec().call_timeout,
            )
            .await;
        entry.duration = call_started.elapsed();
        match reply {
            Ok(Reply::Continue { patch, message }) => match patch::apply(&mut context, &patch) {
                Ok(()) => {
                    entry.outcome = Outcome::Ok;
                    entry.patch = patch;
                    entry.message = message;
                }
                Err(err) => {
                    entry.outcome = Outcome::Failed;
                    entry.message = format!("its patch does not apply: {err}");
                    entry.patch = patch;
                }
            },
            Ok(Reply::Abort { message }) => {
                entry.outcome = Outcome::Vetoed;
                entry.message = message;
            }
            Err(err) => {
                entry.outcome = Outcome::Failed;
                entry.message = err.to_string();
            }
        }
        verdict = match entry.outcome {
            Outcome::Vetoed => Verdict::Vetoed {
                plugin: entry.plugin.clone(),
                message: entry.message.clone(),
            },
            Outcome::Failed => Verdict::Failed {
                plugin: entry.plugin.clone(),
                error: entry.message.clone(),
            },
            Outcome::Ok | Outcome::Skipped => Verdict::Passed,
        };
        entries.push(entry);
    }
    Report {
        phase: phase.to_owned(),
        invocation_id,
        verdict,
        entries,
        context,
        duration: started.elapsed(),
    }
}

/// A patch as JSON: `[{"op": "set", "path": "/env/X", "value": ...}, ...]`.
pub fn patch_to_json(patch: &[PatchOp]) -> Value {
    Value::Array(
        patch
            .iter()
            .map(|op| match op {
                PatchOp::Set { path, value } => {
                    serde_json::json!({"op": "set", "path": path.to_string(), "value": value})
                }
                PatchOp::Remove { path } => {
                    serde_json::json!({"op": "remove", "path": path.to_string()})
                }
            })
            .collect(),
    )
}

fn patch_json<S: serde::Serializer>(patch: &[PatchOp], s: S) -> Result<S::Ok, S::Error> {
    patch_to_json(patch).serialize(s)
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}
