//! A dispatch's [`Report`] on the control socket: the host's report as
//! `outboard.control.v1.DispatchReport` and back, field for field, so that
//! `outboard invoke --daemon` and `outboard run --daemon` show exactly what
//! an in-process dispatch would.
//!
//! Encoding cannot fail. Decoding refuses what the daemon never sends (an
//! enum value this build does not know, an unset verdict, mode or policy, a
//! negative duration, a patch operation that is not one) with the field's
//! path in the message, rather than guessing: a report that says "passed"
//! when it did not would run a job's command.
//!
//! What the wire cannot carry beyond the host's own limits: the context is
//! a `google.protobuf.Struct`, whose numbers are doubles (integers beyond
//! ±2^53 lose precision, as they already do on the way to every plugin); a
//! context that is not an object (only a job report's masked `null`) is
//! sent unset. An unset duration reads as zero, as proto3 defaults it.

use std::sync::Arc;
use std::time::Duration;

use outboard_host::{Entry, FailureKind, FailurePolicy, Mode, Outcome, Report, Verdict};
use outboard_proto::control::v1 as wire;
use outboard_proto::json::{json_to_struct, struct_to_json};
use outboard_proto::patch::{self, PatchError, PatchOp};
use serde_json::Value;

/// Why a `DispatchReport` off the wire is not a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field the report cannot do without is unset.
    #[error("the daemon's report has no {field}; is the daemon a different outboard version?")]
    Missing {
        /// The field's path, e.g. `verdict` or `entries[2].policy`.
        field: String,
    },
    /// An enum field holds a value this build does not know (or its
    /// `UNSPECIFIED` zero where a value is required).
    #[error(
        "the daemon's report has {field} = {value}, which this outboard does not know; \
         is the daemon a different outboard version?"
    )]
    UnknownEnum {
        /// The field's path.
        field: String,
        /// The value as sent.
        value: i32,
    },
    /// A duration is negative or its nanoseconds are out of range.
    #[error("the daemon's report has {field} = {seconds}s {nanos}ns, which is not a duration")]
    BadDuration {
        /// The field's path.
        field: String,
        /// Its seconds as sent.
        seconds: i64,
        /// Its nanoseconds as sent.
        nanos: i32,
    },
    /// A plugin's patch does not read as patch operations.
    #[error("the daemon's report has a patch from plugin {plugin} that does not read: {source}")]
    BadPatch {
        /// The plugin the patch is from.
        plugin: String,
        /// What is wrong with it.
        source: PatchError,
    },
}

// === encoding ===

/// The report's wire form.
pub fn report_to_proto(report: &Report) -> wire::DispatchReport {
    wire::DispatchReport {
        phase: report.phase.to_string(),
        mode: mode_to_proto(report.mode) as i32,
        invocation_id: report.invocation_id.clone(),
        verdict: Some(verdict_to_proto(&report.verdict)),
        entries: report.entries.iter().map(entry_to_proto).collect(),
        context: match &report.context {
            Value::Object(map) => Some(json_to_struct(map)),
            _ => None,
        },
        duration: Some(duration_to_proto(report.duration)),
    }
}

/// A verdict's wire form.
pub fn verdict_to_proto(verdict: &Verdict) -> wire::Verdict {
    use wire::verdict::Result as R;
    let result = match verdict {
        Verdict::Vetoed { plugin, message } => R::Vetoed(wire::VerdictVetoed {
            plugin: plugin.to_string(),
            message: message.clone(),
        }),
        Verdict::Failed { plugins, error } => R::Failed(wire::VerdictFailed {
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
            error: error.clone(),
        }),
        // The host's enum is open to new verdicts; one this build does not
        // know is not a pass, and it has no other form here.
        Verdict::Passed => R::Passed(wire::VerdictPassed {}),
        other => R::Failed(wire::VerdictFailed {
            plugins: Vec::new(),
            error: format!("a verdict the control API cannot carry: {other:?}"),
        }),
    };
    wire::Verdict {
        result: Some(result),
    }
}

/// One entry's wire form.
fn entry_to_proto(entry: &Entry) -> wire::ReportEntry {
    wire::ReportEntry {
        plugin: entry.plugin.to_string(),
        priority: entry.priority,
        policy: policy_to_proto(entry.policy) as i32,
        outcome: outcome_to_proto(entry.outcome) as i32,
        failure: failure_to_proto(entry.failure) as i32,
        duration: Some(duration_to_proto(entry.duration)),
        attempts: entry.attempts,
        patch: entry.patch.iter().map(PatchOp::to_proto).collect(),
        message: entry.message.clone(),
    }
}

/// A phase mode's wire form (`UNSPECIFIED` for one this build does not
/// know, which the other side refuses).
pub fn mode_to_proto(mode: Mode) -> wire::PhaseMode {
    match mode {
        Mode::Sequential => wire::PhaseMode::Sequential,
        Mode::Parallel => wire::PhaseMode::Parallel,
        _ => wire::PhaseMode::Unspecified,
    }
}

/// A failure policy's wire form (`UNSPECIFIED` for one this build does
/// not know).
pub fn policy_to_proto(policy: FailurePolicy) -> wire::FailurePolicy {
    match policy {
        FailurePolicy::FailClosed => wire::FailurePolicy::FailClosed,
        FailurePolicy::FailOpen => wire::FailurePolicy::FailOpen,
        _ => wire::FailurePolicy::Unspecified,
    }
}

/// An entry outcome's wire form (`UNSPECIFIED` for one this build does
/// not know).
pub fn outcome_to_proto(outcome: Outcome) -> wire::EntryOutcome {
    match outcome {
        Outcome::Ok => wire::EntryOutcome::Ok,
        Outcome::Vetoed => wire::EntryOutcome::Vetoed,
        Outcome::Failed => wire::EntryOutcome::Failed,
        Outcome::Skipped => wire::EntryOutcome::Skipped,
        _ => wire::EntryOutcome::Unspecified,
    }
}

/// A failure kind's wire form; `UNSPECIFIED` means it did not fail.
pub fn failure_to_proto(failure: Option<FailureKind>) -> wire::FailureKind {
    let Some(kind) = failure else {
        return wire::FailureKind::Unspecified;
    };
    match kind {
        FailureKind::Timeout => wire::FailureKind::Timeout,
        FailureKind::Crashed => wire::FailureKind::Crashed,
        FailureKind::Unavailable => wire::FailureKind::Unavailable,
        FailureKind::Error => wire::FailureKind::Error,
        FailureKind::Conflict => wire::FailureKind::Conflict,
        FailureKind::InvalidPatch => wire::FailureKind::InvalidPatch,
        // A failure of a kind this build cannot name is still a failure.
        _ => wire::FailureKind::Error,
    }
}

/// A duration's wire form; one beyond the wire's ~292 billion years
/// saturates.
pub fn duration_to_proto(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        // Below 10^9, so it fits.
        nanos: duration.subsec_nanos() as i32,
    }
}

/// What the daemon's Watch stream says of a completed dispatch: the
/// report without its context and patches, which belong to the caller.
pub fn dispatch_event(report: &Report) -> wire::DispatchEvent {
    wire::DispatchEvent {
        phase: report.phase.to_string(),
        invocation_id: report.invocation_id.clone(),
        verdict: Some(verdict_to_proto(&report.verdict)),
        duration: Some(duration_to_proto(report.duration)),
        entries: report
            .entries
            .iter()
            .map(|entry| wire::EntrySummary {
                plugin: entry.plugin.to_string(),
                outcome: outcome_to_proto(entry.outcome) as i32,
                failure: failure_to_proto(entry.failure) as i32,
                duration: Some(duration_to_proto(entry.duration)),
            })
            .collect(),
    }
}

// === decoding ===

/// Reads a report off the wire.
pub fn report_from_proto(msg: wire::DispatchReport) -> Result<Report, WireError> {
    let mode = mode_from_proto(msg.mode)?;
    let verdict = verdict_from_proto(msg.verdict, "verdict")?;
    let entries = msg
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| entry_from_proto(entry, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        phase: msg.phase.into(),
        mode,
        invocation_id: msg.invocation_id,
        verdict,
        entries,
        context: msg
            .context
            .map_or(Value::Null, |s| Value::Object(struct_to_json(&s))),
        duration: duration_from_proto(msg.duration, "duration")?,
    })
}

/// Reads a verdict off the wire; `field` is where it sits, for the error.
pub fn verdict_from_proto(msg: Option<wire::Verdict>, field: &str) -> Result<Verdict, WireError> {
    use wire::verdict::Result as R;
    match msg.and_then(|v| v.result) {
        Some(R::Passed(_)) => Ok(Verdict::Passed),
        Some(R::Vetoed(v)) => Ok(Verdict::Vetoed {
            plugin: v.plugin.into(),
            message: v.message,
        }),
        Some(R::Failed(f)) => Ok(Verdict::Failed {
            plugins: f.plugins.into_iter().map(Arc::from).collect(),
            error: f.error,
        }),
        None => Err(WireError::Missing {
            field: field.to_owned(),
        }),
    }
}

/// Reads entry `index` off the wire.
fn entry_from_proto(msg: wire::ReportEntry, index: usize) -> Result<Entry, WireError> {
    let at = |field: &str| format!("entries[{index}].{field}");
    let patch = patch::from_proto(&msg.patch).map_err(|source| WireError::BadPatch {
        plugin: msg.plugin.clone(),
        source,
    })?;
    Ok(Entry {
        priority: msg.priority,
        policy: policy_from_proto(msg.policy, &at("policy"))?,
        outcome: outcome_from_proto(msg.outcome, &at("outcome"))?,
        failure: failure_from_proto(msg.failure, &at("failure"))?,
        duration: duration_from_proto(msg.duration, &at("duration"))?,
        attempts: msg.attempts,
        patch,
        message: msg.message,
        plugin: msg.plugin.into(),
    })
}

fn unknown(field: &str, value: i32) -> WireError {
    WireError::UnknownEnum {
        field: field.to_owned(),
        value,
    }
}

fn mode_from_proto(value: i32) -> Result<Mode, WireError> {
    match wire::PhaseMode::try_from(value) {
        Ok(wire::PhaseMode::Sequential) => Ok(Mode::Sequential),
        Ok(wire::PhaseMode::Parallel) => Ok(Mode::Parallel),
        _ => Err(unknown("mode", value)),
    }
}

fn policy_from_proto(value: i32, field: &str) -> Result<FailurePolicy, WireError> {
    match wire::FailurePolicy::try_from(value) {
        Ok(wire::FailurePolicy::FailClosed) => Ok(FailurePolicy::FailClosed),
        Ok(wire::FailurePolicy::FailOpen) => Ok(FailurePolicy::FailOpen),
        _ => Err(unknown(field, value)),
    }
}

/// Reads an entry outcome off the wire; `field` is where it sits.
pub fn outcome_from_proto(value: i32, field: &str) -> Result<Outcome, WireError> {
    match wire::EntryOutcome::try_from(value) {
        Ok(wire::EntryOutcome::Ok) => Ok(Outcome::Ok),
        Ok(wire::EntryOutcome::Vetoed) => Ok(Outcome::Vetoed),
        Ok(wire::EntryOutcome::Failed) => Ok(Outcome::Failed),
        Ok(wire::EntryOutcome::Skipped) => Ok(Outcome::Skipped),
        _ => Err(unknown(field, value)),
    }
}

/// Reads a failure kind off the wire (`None`: it did not fail); `field` is
/// where it sits.
pub fn failure_from_proto(value: i32, field: &str) -> Result<Option<FailureKind>, WireError> {
    let kind = match wire::FailureKind::try_from(value) {
        Ok(wire::FailureKind::Unspecified) => return Ok(None),
        Ok(wire::FailureKind::Timeout) => FailureKind::Timeout,
        Ok(wire::FailureKind::Crashed) => FailureKind::Crashed,
        Ok(wire::FailureKind::Unavailable) => FailureKind::Unavailable,
        Ok(wire::FailureKind::Error) => FailureKind::Error,
        Ok(wire::FailureKind::Conflict) => FailureKind::Conflict,
        Ok(wire::FailureKind::InvalidPatch) => FailureKind::InvalidPatch,
        Err(_) => return Err(unknown(field, value)),
    };
    Ok(Some(kind))
}

/// Reads a duration off the wire (unset: zero); `field` is where it sits.
pub fn duration_from_proto(
    msg: Option<prost_types::Duration>,
    field: &str,
) -> Result<Duration, WireError> {
    let Some(d) = msg else {
        return Ok(Duration::ZERO);
    };
    match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
        (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 => Ok(Duration::new(seconds, nanos)),
        _ => Err(WireError::BadDuration {
            field: field.to_owned(),
            seconds: d.seconds,
            nanos: d.nanos,
        }),
    }
}

#[cfg(test)]
mod tests;
