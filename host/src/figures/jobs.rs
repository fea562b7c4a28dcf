//! Jobs by result: succeeded, or what failed them, by the job module's
//! names for it.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::job::{FailureKind, JobReport, Status};

/// How a job ended: succeeded, or failed by the first failure's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    /// Every phase passed and the command exited 0 (or was not run, in a
    /// dry run).
    Succeeded,
    /// What failed it first.
    Failed(FailureKind),
}

impl JobResult {
    /// Every result, in a fixed order.
    pub const ALL: [JobResult; 8] = [
        JobResult::Succeeded,
        JobResult::Failed(FailureKind::Vetoed),
        JobResult::Failed(FailureKind::PluginFailed),
        JobResult::Failed(FailureKind::ExitCode),
        JobResult::Failed(FailureKind::NotExecutable),
        JobResult::Failed(FailureKind::NotFound),
        JobResult::Failed(FailureKind::InvalidContext),
        JobResult::Failed(FailureKind::Interrupted),
    ];

    /// How `report`'s job ended.
    pub fn of(report: &JobReport) -> JobResult {
        match (&report.status, &report.failure) {
            (Status::Failed, Some(failure)) => JobResult::Failed(failure.kind),
            _ => JobResult::Succeeded,
        }
    }

    /// Its name, as labels and the JSON spell it: `succeeded`, or the
    /// failure's kind as a job report spells it (`vetoed`,
    /// `plugin_failed`, `exit_code`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Succeeded => "succeeded",
            JobResult::Failed(kind) => kind.as_str(),
        }
    }

    /// Its place in [`JobResult::ALL`].
    fn index(self) -> usize {
        // Every result is listed: the fallback is never taken.
        JobResult::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

impl Serialize for JobResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A name that is not one of [`JobResult::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job result {0:?} (expected one of succeeded, vetoed, plugin_failed, exit_code, not_executable, not_found, invalid_context, interrupted)"
)]
pub struct UnknownJobResult(pub String);

impl FromStr for JobResult {
    type Err = UnknownJobResult;

    fn from_str(s: &str) -> Result<JobResult, UnknownJobResult> {
        JobResult::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownJobResult(s.to_owned()))
    }
}

/// Jobs by result.
#[derive(Debug, Default)]
pub(crate) struct JobCounters {
    counts: [AtomicU64; JobResult::ALL.len()],
}

/// Jobs by result at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct JobCounts {
    /// Every result by name ([`JobResult::as_str`]) with its count, zeros
    /// included.
    pub by_result: BTreeMap<String, u64>,
}

impl JobCounts {
    /// The jobs that ended with `result`.
    pub fn get(&self, result: JobResult) -> u64 {
        self.by_result.get(result.as_str()).copied().unwrap_or(0)
    }
}

impl JobCounters {
    /// Counts a job that ended with `result`.
    pub(crate) fn record(&self, result: JobResult) {
        self.counts[result.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> JobCounts {
        JobCounts {
            by_result: JobResult::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str().to_owned(),
                        self.counts[r.index()].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_json() {
        for (i, result) in JobResult::ALL.into_iter().enumerate() {
            assert_eq!(result.index(), i);
            assert_eq!(result.as_str().parse::<JobResult>(), Ok(result));
            let json = serde_json::to_value(result).unwrap_or_default();
            assert_eq!(json, serde_json::json!(result.as_str()));
        }
        assert_eq!(
            "refused".parse::<JobResult>(),
            Err(UnknownJobResult("refused".into()))
        );
    }

    #[test]
    fn jobs_count_under_their_result() {
        let jobs = JobCounters::default();
        jobs.record(JobResult::Succeeded);
        let vetoed = JobResult::Failed(FailureKind::Vetoed);
        jobs.record(vetoed);
        jobs.record(vetoed);
        let counts = jobs.snapshot();
        assert_eq!(counts.get(JobResult::Succeeded), 1);
        assert_eq!(counts.get(vetoed), 2);
        assert_eq!(counts.get(JobResult::Failed(FailureKind::Interrupted)), 0);
        assert_eq!(counts.by_result.len(), JobResult::ALL.len());
    }
}
