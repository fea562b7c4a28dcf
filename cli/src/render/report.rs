//! One phase's report, as `outboard invoke` prints it: the verdict, each
//! plugin's outcome and patch, and the final context.

use std::io::Write;

use outboard_host::{Escaped, Report, Verdict};
use outboard_proto::patch::PatchOp;

use super::outcome::outcome_word;

/// `text` (a message, with a crashed plugin's stderr lines under it) as
/// lines: control characters escaped, each line after the first indented
/// by `indent` so that it reads as part of the line it continues.
fn under(text: &str, indent: &str) -> String {
    let text = Escaped::block(text.trim_end()).to_string();
    text.replace('\n', &format!("\n{indent}"))
}

/// Writes `report`: a verdict line, a line per plugin with its patch
/// operations under it, then the context.
pub(crate) fn phase(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let verdict = match &report.verdict {
        Verdict::Passed => "passed".to_owned(),
        Verdict::Vetoed { plugin, message } => {
            format!("vetoed by {plugin}: {}", Escaped::line(message))
        }
        Verdict::Failed { plugins, error } => {
            // Its first line: the failing entry below shows the rest (a
            // crashed plugin's stderr lines).
            let first = error.lines().next().unwrap_or_default();
            format!("failed at {}: {}", plugins.join(", "), Escaped::line(first))
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
            under(&e.message, "        ")
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use outboard_host::config::{FailurePolicy, Mode};
    use outboard_host::{Entry, FailureKind, Outcome};

    use super::*;

    #[test]
    fn a_crashed_plugins_stderr_reads_as_lines_with_control_characters_escaped() {
        let error = "plugin flaky: crashed: exited with signal 9 (SIGKILL) during the call; \
                     last stderr lines:\n    | starting up\n    | fatal\u{1b}[2J";
        let report = Report {
            phase: "build".into(),
            mode: Mode::default(),
            invocation_id: "id".into(),
            verdict: Verdict::Failed {
                plugins: vec!["flaky".into()],
                error: error.into(),
            },
            entries: vec![Entry {
                plugin: Arc::from("flaky"),
                priority: 0,
                policy: FailurePolicy::default(),
                outcome: Outcome::Failed,
                failure: Some(FailureKind::Crashed),
                duration: Duration::from_millis(2),
                attempts: 1,
                patch: Vec::new(),
                message: error.into(),
            }],
            context: serde_json::json!({}),
            duration: Duration::from_millis(3),
        };
        let mut out = Vec::new();
        phase(&mut out, &report).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains("\\n"), "{text}");
        assert!(
            text.starts_with(
                "phase build: failed at flaky: plugin flaky: crashed: exited with signal 9 (SIGKILL) \
                 during the call; last stderr lines: (1 plugin, 3.0 ms)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("last stderr lines:\n            | starting up\n            | fatal\\u{1b}[2J\ncontext:"),
            "{text}"
        );
    }
}
