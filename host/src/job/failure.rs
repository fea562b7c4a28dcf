//! What stops a job, and the exit status `outboard run` turns it into.

use serde::Serialize;

use crate::dispatch::{Report, Verdict};

/// Exit status when a plugin vetoed the job.
pub const EXIT_VETOED: u8 = 121;
/// Exit status when a plugin failed and so failed the job (a fail-closed
/// failure or a merge conflict), and the command did not fail first.
pub const EXIT_PLUGIN_FAILED: u8 = 122;
/// Exit status when the host itself failed (bad config, a plugin that
/// would not start, a `context.command` or `context.env` the phases left
/// unusable, a report that could not be printed or written).
pub const EXIT_HOST_ERROR: u8 = 125;
/// Exit status when the command could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit status when the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit status after SIGINT or SIGTERM stopped the job.
pub const EXIT_INTERRUPTED: u8 = 130;

/// What failed a job: the first failure, which on_error is told about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The phase, or `command` for the command itself.
    pub phase: String,
    /// The plugins responsible, if any.
    pub plugins: Vec<String>,
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// What happened, in words.
    pub message: String,
}

/// What kind of failure stopped a job; serialized in snake case
/// (`vetoed`, `plugin_failed`, ...), as on_error's plugins see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// A plugin vetoed a phase.
    Vetoed,
    /// A plugin failed a phase (fail-closed, or a merge conflict).
    PluginFailed,
    /// The command exited with a status other than 0.
    ExitCode,
    /// The command could not be executed.
    NotExecutable,
    /// The command was not found.
    NotFound,
    /// The plugins left `context.command` or `context.env` unusable.
    InvalidContext,
    /// SIGINT or SIGTERM stopped the job.
    Interrupted,
}

impl FailureKind {
    /// Its name as the JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Vetoed => "vetoed",
            FailureKind::PluginFailed => "plugin_failed",
            FailureKind::ExitCode => "exit_code",
            FailureKind::NotExecutable => "not_executable",
            FailureKind::NotFound => "not_found",
            FailureKind::InvalidContext => "invalid_context",
            FailureKind::Interrupted => "interrupted",
        }
    }
}

impl Failure {
    /// A failure of the command itself.
    pub(super) fn of_command(kind: FailureKind, message: String) -> Failure {
        Failure {
            phase: "command".into(),
            plugins: Vec::new(),
            kind,
            message,
        }
    }

    /// The failure `report` stands for, if its phase did not pass.
    pub(super) fn of_phase(report: &Report) -> Option<Failure> {
        match &report.verdict {
            Verdict::Passed => None,
            Verdict::Vetoed { plugin, message } => Some(Failure {
                phase: report.phase.to_string(),
                plugins: vec![plugin.to_string()],
                kind: FailureKind::Vetoed,
                message: format!("vetoed by {plugin}: {message}"),
            }),
            Verdict::Failed { plugins, error } => Some(Failure {
                phase: report.phase.to_string(),
                plugins: plugins.iter().map(|p| p.to_string()).collect(),
                kind: FailureKind::PluginFailed,
                message: error.clone(),
            }),
        }
    }

    /// A signal stopped the job during `phase`.
    pub(super) fn interrupted_in(phase: &str) -> Failure {
        Failure {
            phase: phase.to_owned(),
            plugins: Vec::new(),
            kind: FailureKind::Interrupted,
            message: format!("interrupted by a signal during {phase}"),
        }
    }
}

/// The job's exit status: the command's if it failed; else what stopped the
/// job; else 0.
pub(super) fn exit_code(failure: Option<&Failure>, command: Option<i32>) -> u8 {
    let Some(failure) = failure else {
        return 0;
    };
    match failure.kind {
        FailureKind::Interrupted => EXIT_INTERRUPTED,
        // Without a command status there is nothing to pass on: only a bug
        // in this module gets here.
        FailureKind::ExitCode => command.map_or(EXIT_HOST_ERROR, |c| u8::try_from(c).unwrap_or(1)),
        FailureKind::Vetoed => EXIT_VETOED,
        FailureKind::PluginFailed => EXIT_PLUGIN_FAILED,
        // As JOBS.md says: outboard cannot run what the phases left.
        FailureKind::InvalidContext => EXIT_HOST_ERROR,
        FailureKind::NotFound => EXIT_NOT_FOUND,
        FailureKind::NotExecutable => EXIT_NOT_EXECUTABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_say_who_stopped_the_job() {
        let failure = |kind| Failure {
            phase: "p".into(),
            plugins: vec![],
            kind,
            message: String::new(),
        };
        assert_eq!(exit_code(None, Some(0)), 0);
        assert_eq!(exit_code(Some(&failure(FailureKind::ExitCode)), Some(3)), 3);
        assert_eq!(
            exit_code(Some(&failure(FailureKind::ExitCode)), Some(300)),
            1
        );
        assert_eq!(
            exit_code(Some(&failure(FailureKind::Vetoed)), None),
            EXIT_VETOED
        );
        assert_eq!(
            exit_code(Some(&failure(FailureKind::PluginFailed)), Some(0)),
            EXIT_PLUGIN_FAILED
        );
        assert_eq!(
            exit_code(Some(&failure(FailureKind::InvalidContext)), Some(0)),
            EXIT_HOST_ERROR
        );
        assert_eq!(
            exit_code(Some(&failure(FailureKind::NotFound)), None),
            EXIT_NOT_FOUND
        );
        assert_eq!(
            exit_code(Some(&failure(FailureKind::Interrupted)), Some(143)),
            EXIT_INTERRUPTED
        );
    }

    #[test]
    fn failure_kinds_serialize_as_on_error_has_always_seen_them() {
        let names: Vec<String> = [
            FailureKind::Vetoed,
            FailureKind::PluginFailed,
            FailureKind::ExitCode,
            FailureKind::NotExecutable,
            FailureKind::NotFound,
            FailureKind::InvalidContext,
            FailureKind::Interrupted,
        ]
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .map(|v| v.to_string())
                .unwrap_or_default()
        })
        .collect();
        assert_eq!(
            names,
            [
                "\"vetoed\"",
                "\"plugin_failed\"",
                "\"exit_code\"",
                "\"not_executable\"",
                "\"not_found\"",
                "\"invalid_context\"",
                "\"interrupted\""
            ]
        );
    }
}
