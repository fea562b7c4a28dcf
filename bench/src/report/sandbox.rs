//! (q)'s table: spawn to ready with each set of walls, against none, and
//! the walls each row really had.

use super::{secs, table, time};
use crate::stats::Latency;

/// (q): one row per set of walls, "no sandbox" first.
#[derive(Debug, Clone)]
pub(crate) struct SandboxResults {
    /// The rows, in the order measured.
    pub rows: Vec<SandboxRow>,
}

/// One set of walls.
#[derive(Debug, Clone)]
pub(crate) struct SandboxRow {
    /// What was asked for.
    pub what: String,
    /// Spawn to ready.
    pub latency: Latency,
    /// The walls the host reported, as `setting value (mechanism)`.
    pub walls: Vec<String>,
    /// Why the walls are not all that was asked for, if they are not.
    pub note: Option<String>,
}

impl SandboxResults {
    /// The table, under its own heading line, and each row's walls.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "(q) spawn to ready of the no-op Rust plugin, by sandbox, started in turns\n\n",
        );
        let none = self.rows.first().map(|r| r.latency.p50);
        let mut rows = vec![
            ["", "sandbox", "n", "p50", "p99", "p50 − none", "p50 × none"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for row in &self.rows {
            let l = row.latency;
            let (extra, times) = match none {
                Some(none) => (
                    signed_ms(secs(l.p50) - secs(none)),
                    format!("{:.2}×", secs(l.p50) / secs(none)),
                ),
                None => ("—".to_owned(), "—".to_owned()),
            };
            rows.push(vec![
                "(q)".to_owned(),
                row.what.clone(),
                l.n.to_string(),
                time(l.p50),
                time(l.p99),
                extra,
                times,
            ]);
        }
        table(
            &mut out,
            &rows,
            &[false, false, true, true, true, true, true],
        );
        out.push('\n');
        for row in &self.rows {
            let walls = if row.walls.is_empty() {
                "none".to_owned()
            } else {
                row.walls.join("; ")
            };
            out.push_str(&format!("- {}: {walls}", row.what));
            if let Some(note) = &row.note {
                out.push_str(&format!(" ({note})"));
            }
            out.push('\n');
        }
        out
    }
}

/// A difference in seconds as signed milliseconds.
fn signed_ms(s: f64) -> String {
    format!("{:+.2} ms", s * 1e3)
}

#[cfg(test)]
mod tests {
    use super::super::tests::latency;
    use super::*;

    #[test]
    fn each_row_is_read_against_no_sandbox_and_lists_its_walls() {
        let results = SandboxResults {
            rows: vec![
                SandboxRow {
                    what: "no sandbox".into(),
                    latency: latency(4000),
                    walls: vec![],
                    note: None,
                },
                SandboxRow {
                    what: "memory + pids".into(),
                    latency: latency(5000),
                    walls: vec![
                        "memory 256Mi (cgroup v1 memory)".into(),
                        "pids 64 (cgroup v1 pids)".into(),
                    ],
                    note: None,
                },
                SandboxRow {
                    what: "strict".into(),
                    latency: latency(3000),
                    walls: vec!["network none (network namespace)".into()],
                    note: Some("without filesystem, refused here: no".into()),
                },
            ],
        };
        let text = results.markdown();
        assert!(text.contains("+1.00 ms"), "{text}");
        assert!(text.contains("1.25×"), "{text}");
        assert!(text.contains("-1.00 ms"), "{text}");
        assert!(text.contains("- no sandbox: none\n"), "{text}");
        assert!(
            text.contains(
                "- memory + pids: memory 256Mi (cgroup v1 memory); pids 64 (cgroup v1 pids)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("(without filesystem, refused here: no)"),
            "{text}"
        );
    }
}
