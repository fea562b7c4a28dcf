//! The job summary `outboard run` prints on stderr: phase → plugin →
//! outcome → ms, with the command in its place.

use std::io::Write;

use outboard_host::Escaped;
use outboard_host::job::{self, JobReport};

use super::outcome::outcome_word;

/// The phases after the command, and the command's own row.
const AFTER: [&str; 4] = ["post_container", "on_error", "cleanup", "command"];

/// The summary's columns, sized for one report.
#[derive(Debug)]
struct Columns {
    /// The widest phase name.
    phase: usize,
    /// The widest plugin name (at least 7, for `(cmd)` and the like).
    plugin: usize,
}

impl Columns {
    /// Columns wide enough for every phase and plugin in `report`.
    fn for_report(report: &JobReport) -> Columns {
        let phase = job::BEFORE
            .iter()
            .chain(AFTER.iter())
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        let plugin = report
            .phases
            .iter()
            .flat_map(|r| r.entries.iter().map(|e| e.plugin.len()))
            .max()
            .unwrap_or(0)
            .max(7);
        Columns { phase, plugin }
    }

    /// One line: phase, who, outcome, milliseconds, a note.
    fn row(
        &self,
        out: &mut impl Write,
        phase: &str,
        who: &str,
        outcome: &str,
        ms: f64,
        note: &str,
    ) -> std::io::Result<()> {
        let (pw, ww) = (self.phase, self.plugin);
        let line = format!("  {phase:<pw$}  {who:<ww$}  {outcome:<16}  {ms:>8.1} ms  {note}");
        writeln!(out, "{}", line.trim_end())
    }
}

/// Writes the summary of `report`: a status line, the failure if any, then
/// a line per plugin per phase and one for the command.
pub(crate) fn summary(out: &mut impl Write, report: &JobReport) -> std::io::Result<()> {
    let status = match report.status {
        job::Status::Succeeded => "succeeded",
        job::Status::Failed => "failed",
    };
    writeln!(
        out,
        "outboard: job {} {status} (exit {}) in {:.1} ms{}",
        report.job_id,
        report.exit_code,
        report.duration.as_secs_f64() * 1000.0,
        if report.dry_run {
            ", dry run: command not run"
        } else {
            ""
        }
    )?;
    if let Some(failure) = &report.failure {
        // The message may quote a plugin (a veto, an error): escaped, so
        // it cannot forge a line of this summary.
        writeln!(
            out,
            "  {} failed: {}",
            failure.phase,
            Escaped::line(&failure.message)
        )?;
    }
    let columns = Columns::for_report(report);
    let mut command_shown = false;
    for phase in &report.phases {
        if &*phase.phase == "post_container" {
            command(out, report, &columns)?;
            command_shown = true;
        }
        for (i, e) in phase.entries.iter().enumerate() {
            let name = if i == 0 { &*phase.phase } else { "" };
            let note: String = e.message.chars().take(100).collect();
            let note = Escaped::line(&note).to_string();
            let ms = e.duration.as_secs_f64() * 1000.0;
            columns.row(out, name, &e.plugin, &outcome_word(e), ms, &note)?;
        }
    }
    if !command_shown {
        command(out, report, &columns)?;
    }
    Ok(())
}

/// The command's line, if it ran: its exit code, time and argv (cut at 40
/// characters).
fn command(out: &mut impl Write, report: &JobReport, columns: &Columns) -> std::io::Result<()> {
    let Some(code) = report.command_exit_code else {
        return Ok(());
    };
    let ms = report.command_duration.unwrap_or_default().as_secs_f64() * 1000.0;
    let argv = report.command.join(" ");
    let shown: String = argv.chars().take(40).collect();
    // The argv is as the plugins patched it.
    let shown = Escaped::line(&shown).to_string();
    columns.row(out, "command", "(cmd)", &format!("exit {code}"), ms, &shown)
}
