//! One phase fanned out to the plugins subscribed to it.
//!
//! - **Sequential**: lowest priority first, ties by name; each plugin sees
//!   the context as patched by those before it. A veto (`ABORT`) stops the
//!   chain; so does a failure under `fail_closed`. The plugins after the stop
//!   are reported as skipped. Patches applied before the stop stay applied.
//! - **Parallel**: every subscriber gets the same context at once. Their
//!   patches are merged; two plugins writing the same path, or one writing
//!   inside a path another writes or removes, is a conflict that fails the
//!   phase with both names and both paths. The merged patch is applied only
//!   if the phase passes: a failed parallel phase leaves the context as it
//!   was.
//!
//! Under `fail_open` a failing plugin is recorded and the phase goes on as
//! if it had not been there. Every call carries its deadline; a plugin that
//! dies mid-call fails at once. A [`Report`] lists every subscriber, always.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outboard_proto::json::json_to_struct;
use outboard_proto::patch::{self, PatchOp};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{FailurePolicy, Mode, PhaseSpec, Retry};
use crate::error::CallError;
use crate::instance::Reply;
use crate::supervisor::Supervisor;

/// A phase with its subscribers resolved: who runs, in which order, with
/// which timeout and policy. Built once when the host starts, so a dispatch
/// does no sorting or lookups.
#[derive(Debug)]
pub struct Route {
    /// The phase's name.
    pub phase: Arc<str>,
    /// How the phase runs.
    pub spec: PhaseSpec,
    /// Its subscribers, in priority order (then by name).
    pub subscribers: Vec<Subscriber>,
}

/// One plugin's subscription to a phase, as the host resolved it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The plugin, under supervision.
    pub plugin: Arc<Supervisor>,
    /// Its name, shared with the reports.
    pub name: Arc<str>,
    /// Its priority: the manifest's, or the host's override.
    pub priority: i32,
    /// The per-call timeout.
    pub timeout: Duration,
    /// What its failure does to the phase.
    pub policy: FailurePolicy,
    /// Retries, for an idempotent subscription that opted in.
    pub retry: Option<Retry>,
}

impl Subscriber {
    /// Calls the plugin: waits for it to be ready (if it is restarting) and
    /// for its answer, together within the timeout; retries as configured.
    async fn call(
        &self,
        phase: &str,
        invocation_id: &str,
        request: prost_types::Struct,
    ) -> (Result<Reply, CallError>, u32) {
        let attempts = self.retry.map_or(1, |r| r.attempts.max(1));
        let mut attempt = 1;
        loop {
            let deadline = tokio::time::Instant::now() + self.timeout;
            let result = match self.plugin.ready(deadline).await {
                Ok(plugin) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    plugin
                        .invoke(
                            phase,
                            invocation_id,
                            attempt,
                            request.clone(),
                            left.max(Duration::from_millis(1)),
                        )
                        .await
                        // The time left after waiting for readiness is an
                        // implementation detail; the timeout is the
                        // subscriber's.
                        .map_err(|err| match err {
                            CallError::Timeout(_) => CallError::Timeout(self.timeout),
                            other => other,
                        })
                }
                Err(err) => Err(err),
            };
            // A quarantined plugin will not come back by itself: no point
            // waiting to try again.
            let quarantined = self.plugin.state() == crate::supervisor::State::Failed;
            let retryable = !quarantined
                && matches!(
                    result,
                    Err(CallError::Crashed { .. }
                        | CallError::NotReady(_)
                        | CallError::Timeout(_)
                        | CallError::Unavailable(_))
                );
            match (result, self.retry) {
                (Err(err), Some(retry)) if retryable && attempt < attempts => {
                    let wait = retry.backoff.saturating_mul(1 << (attempt - 1).min(16));
                    tracing::debug!(
                        plugin = &*self.name,
                        attempt,
                        "retrying in {wait:?} after: {err}"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                (result, _) => return (result, attempt),
            }
        }
    }
}

/// What one dispatch of a phase did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The phase.
    pub phase: Arc<str>,
    /// How it ran.
    pub mode: Mode,
    /// The id sent to every plugin with this dispatch.
    pub invocation_id: String,
    /// The phase's result.
    pub verdict: Verdict,
    /// Every subscribed plugin, in priority order.
    pub entries: Vec<Entry>,
    /// The context after the applied patches.
    pub context: Value,
    /// Wall time of the whole dispatch.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

impl Report {
    /// True if the phase passed (fail-open failures do not count).
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Passed
    }
}

/// The phase's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Verdict {
    /// Every subscriber continued, or failed under `fail_open`.
    Passed,
    /// A plugin vetoed the phase.
    Vetoed { plugin: Arc<str>, message: String },
    /// A plugin failed under `fail_closed`, or two plugins' patches
    /// conflicted (then both are named).
    Failed {
        plugins: Vec<Arc<str>>,
        error: String,
    },
}

/// One plugin's part in a dispatch.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// Its priority for this phase.
    pub priority: i32,
    /// Its failure policy for this phase.
    pub policy: FailurePolicy,
    /// What happened.
    pub outcome: Outcome,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// How long its call took, retries included (zero if skipped).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Attempts made (more than 1 after retries; 0 if skipped).
    pub attempts: u32,
    /// The patch it returned.
    #[serde(serialize_with = "patch_json")]
    pub patch: Vec<PatchOp>,
    /// Its message, or the error.
    pub message: String,
}

/// What happened to one plugin in a dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It continued; its patch was applied (or, in a parallel phase that
    /// failed, would have been).
    Ok,
    /// It vetoed the phase.
    Vetoed,
    /// It failed; see [`FailureKind`] and the policy.
    Failed,
    /// It was not called because the phase had already stopped.
    Skipped,
}

/// Why a plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// It did not answer within its timeout and was cut off.
    Timeout,
    /// Its process exited during the call (or before it).
    Crashed,
    /// It was restarting, or quarantined, and not ready by the deadline.
    Unavailable,
    /// It answered with an error status, or an answer the host cannot use.
    Error,
    /// Its patch overlaps another plugin's in a parallel phase.
    Conflict,
    /// Its patch does not apply to the context.
    InvalidPatch,
}

impl FailureKind {
    fn of(err: &CallError) -> FailureKind {
        match err {
            CallError::Timeout(_) => FailureKind::Timeout,
            CallError::Crashed { .. } => FailureKind::Crashed,
            CallError::NotReady(_) => FailureKind::Unavailable,
            _ => FailureKind::Error,
        }
    }
}

/// Runs `route` on `context`.
pub async fn run(route: &Route, context: Map<String, Value>) -> Report {
    let started = Instant::now();
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let mut entries: Vec<Entry> = route
        .subscribers
        .iter()
        .map(|s| Entry {
            plugin: s.name.clone(),
            priority: s.priority,
            policy: s.policy,
            outcome: Outcome::Skipped,
            failure: None,
            duration: Duration::ZERO,
            attempts: 0,
            patch: Vec::new(),
            message: String::new(),
        })
        .collect();
    let mut context = Value::Object(context);
    let verdict = match route.spec.mode {
        Mode::Sequential => sequential(route, &invocation_id, &mut context, &mut entries).await,
        Mode::Parallel => parallel(route, &invocation_id, &mut context, &mut entries).await,
    };
    Report {
        phase: route.phase.clone(),
        mode: route.spec.mode,
        invocation_id,
        verdict,
        entries,
        context,
        duration: started.elapsed(),
    }
}

/// The report of a dispatch the host refused before calling anyone.
pub fn refused(phase: &str, context: Map<String, Value>, why: &str) -> Report {
    Report {
        phase: phase.into(),
        mode: Mode::Sequential,
        invocation_id: String::new(),
        verdict: Verdict::Failed {
            plugins: Vec::new(),
            error: why.to_owned(),
        },
        entries: Vec::new(),
        context: Value::Object(context),
        duration: Duration::ZERO,
    }
}

async fn sequential(
    route: &Route,
    invocation_id: &str,
    context: &mut Value,
    entries: &mut [Entry],
) -> Verdict {
    for (sub, entry) in route.subscribers.iter().zip(entries.iter_mut()) {
        let request = match &*context {
            Value::Object(map) => json_to_struct(map),
            _ => Default::default(),
        };
        let call_started = Instant::now();
        let (reply, attempts) = sub.call(&route.phase, invocation_id, request).await;
        entry.duration = call_started.elapsed();
        entry.attempts = attempts;
        record(entry, reply);
        if entry.outcome == Outcome::Ok
            && let Err(err) = patch::apply(context, &entry.patch)
        {
            fail(
                entry,
                FailureKind::InvalidPatch,
                format!("its patch does not apply: {err}"),
            );
        }
        if let Some(verdict) = stops_phase(entry) {
            return verdict;
        }
    }
    Verdict::Passed
}

async fn parallel(
    route: &Route,
    invocation_id: &str,
    context: &mut Value,
    entries: &mut [Entry],
) -> Verdict {
    // One conversion for everyone; each call needs its own copy to send.
    let request = match &*context {
        Value::Object(map) => json_to_struct(map),
        _ => Default::default(),
    };
    let calls = route.subscribers.iter().map(|sub| {
        let request = request.clone();
        async move {
            let call_started = Instant::now();
            let (reply, attempts) = sub.call(&route.phase, invocation_id, request).await;
            (call_started.elapsed(), attempts, reply)
        }
    });
    let replies = futures_util::future::join_all(calls).await;
    for (entry, (duration, attempts, reply)) in entries.iter_mut().zip(replies) {
        entry.duration = duration;
        entry.attempts = attempts;
        record(entry, reply);
    }

    // A veto or a fail-closed failure fails the phase; the first one in
    // priority order is the verdict, all are in the entries.
    if let Some(verdict) = entries.iter().find_map(stops_phase) {
        return verdict;
    }

    // Merge what the plugins that continued want to write.
    let mut writers: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome == Outcome::Ok && !e.patch.is_empty())
        .map(|(i, _)| i)
        .collect();
    let conflict = patch::merge(&patches_of(entries, &writers)).err();
    if let Some(conflict) = conflict {
        let (a, b) = (writers[conflict.first], writers[conflict.second]);
        let (name_a, name_b) = (entries[a].plugin.clone(), entries[b].plugin.clone());
        let error = format!(
            "plugins {name_a} and {name_b} both write {}: {name_a} writes {}, {name_b} writes {}",
            shorter(&conflict.first_path, &conflict.second_path),
            conflict.first_path,
            conflict.second_path
        );
        for i in [a, b] {
            entries[i].outcome = Outcome::Failed;
            entries[i].failure = Some(FailureKind::Conflict);
            entries[i].message = error.clone();
        }
        return Verdict::Failed {
            plugins: vec![name_a, name_b],
            error,
        };
    }
    // The patches touch disjoint paths, so applying them one writer after
    // another is the merge, and a failure belongs to exactly one writer. A
    // fail-open writer whose patch does not apply is dropped and the rest
    // applied.
    loop {
        let applied = patch::apply_all(context, &patches_of(entries, &writers));
        let Err((writer, err)) = applied else {
            break;
        };
        let entry = &mut entries[writers[writer]];
        fail(
            entry,
            FailureKind::InvalidPatch,
            format!("its patch does not apply: {err}"),
        );
        if let Some(verdict) = stops_phase(entry) {
            return verdict;
        }
        writers.remove(writer);
    }
    Verdict::Passed
}

/// The patches of the entries at `writers`.
fn patches_of<'e>(entries: &'e [Entry], writers: &[usize]) -> Vec<&'e [PatchOp]> {
    writers
        .iter()
        .map(|&i| entries[i].patch.as_slice())
        .collect()
}

/// Records a plugin's reply in its entry.
fn record(entry: &mut Entry, reply: Result<Reply, CallError>) {
    match reply {
        Ok(Reply::Continue { patch, message }) => {
            entry.outcome = Outcome::Ok;
            entry.patch = patch;
            entry.message = message;
        }
        Ok(Reply::Abort { message }) => {
            entry.outcome = Outcome::Vetoed;
            entry.message = message;
        }
        Err(err) => fail(entry, FailureKind::of(&err), err.to_string()),
    }
}

fn fail(entry: &mut Entry, kind: FailureKind, message: String) {
    entry.outcome = Outcome::Failed;
    entry.failure = Some(kind);
    entry.message = message;
    if entry.policy == FailurePolicy::FailOpen {
        tracing::warn!(
            plugin = &*entry.plugin,
            "failed, ignored (fail_open): {}",
            entry.message
        );
    }
}

/// The verdict if `entry` stops the phase: a veto, or a fail-closed failure.
fn stops_phase(entry: &Entry) -> Option<Verdict> {
    match (entry.outcome, entry.policy) {
        (Outcome::Vetoed, _) => Some(Verdict::Vetoed {
            plugin: entry.plugin.clone(),
            message: entry.message.clone(),
        }),
        (Outcome::Failed, FailurePolicy::FailClosed) => Some(Verdict::Failed {
            plugins: vec![entry.plugin.clone()],
            error: entry.message.clone(),
        }),
        _ => None,
    }
}

fn shorter<'a>(a: &'a patch::Pointer, b: &'a patch::Pointer) -> &'a patch::Pointer {
    if a.tokens().len() <= b.tokens().len() {
        a
    } else {
        b
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
