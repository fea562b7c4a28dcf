//! One phase's report, as `outboard invoke` prints it: the verdict, each
//! plugin's outcome and patch, and the final context.

use std::io::Write;

use outboard_host::{Escaped, Report, Verdict};
use outboard_proto::patch::PatchOp;

use super::outcome::outcome_word;

/// Writes `report`: a verdict line, a line per plugin with its patch
/// operations under it, then the context.
pub(crate) fn phase(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let verdict = match &report.verdict {
        Verdict::Passed => "passed".to_owned(),
        Verdict::Vetoed { plugin, message } => {
            format!("vetoed by {plugin}: {}", Escaped::line(message))
        }
        Verdict::Failed { plugins, error } => {
            format!("failed at {}: {}", plugins.join(", "), Escaped::line(error))
        }
        _ => "ended with a verdict this version of outboard cannot show".to_owned(),
    };
    writeln!(
        out,
        "phase {}: {verdict} ({} plugin{}, {:.1} ms)",
        report.phase,
        report.entries.len(),
        if report.entries.len() == 1 { "" } else { "s" },
        report.duration.as_secs_f64() * 1000.0
    )?;
    let width = report
        .entries
        .iter()
        .map(|e| e.plugin.len())
        .max()
        .unwrap_or(0);
    for e in &report.entries {
        let outcome = outcome_word(e);
        let line = format!(
            "  {:>4}  {:<width$}  {outcome:<16}  {:>7.1} ms  {}",
            e.priority,
            e.plugin,
            e.duration.as_secs_f64() * 1000.0,
            Escaped::line(&e.message)
        );
        writeln!(out, "{}", line.trim_end())?;
        for op in &e.patch {
            match op {
                // Paths are the plugin's text; values are JSON, whose escaping
                // leaves DEL and the C1 controls: escaped here.
                PatchOp::Set { path, value } => writeln!(
                    out,
                    "          set    {} = {}",
                    Escaped::line(&path.to_string()),
                    Escaped::line(&value.to_string())
                )?,
                PatchOp::Remove { path } => {
                    writeln!(out, "          remove {}", Escaped::line(&path.to_string()))?
                }
            }
        }
    }
    writeln!(
        out,
        "context:\n{}",
        // JSON leaves DEL and the C1 controls unescaped.
        Escaped::block(&serde_json::to_string_pretty(&report.context).unwrap_or_default())
    )
}
