//! The conformance battery's results as a table and a summary line.

use outboard_conformance::Check;
use outboard_host::Escaped;

/// The checks as a table: PASS/FAIL, name, detail; then the summary line.
pub(crate) fn table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{}  {:width$}  {}\n",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            // The detail may quote the plugin: no control characters but
            // the line breaks of a stderr tail reach the terminal.
            Escaped::block(&c.detail)
        ));
    }
    out.push_str(&summary(checks));
    out.push('\n');
    out
}

/// `N passed, M failed`.
pub(crate) fn summary(checks: &[Check]) -> String {
    let passed = checks.iter().filter(|c| c.passed).count();
    format!("{passed} passed, {} failed", checks.len() - passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_ends_with_the_summary() {
        let checks = [
            Check::pass("handshake", "ok"),
            Check::fail("describe", "field version: bad"),
        ];
        let text = table(&checks);
        assert!(text.starts_with("PASS  handshake  ok\nFAIL  describe   field version: bad\n"));
        assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");
    }

    #[test]
    fn a_detail_cannot_drive_the_terminal() {
        let text = table(&[Check::fail("describe", "bad\r\x1b[2J")]);
        assert!(
            text.starts_with("FAIL  describe  bad\\r\\u{1b}[2J\n"),
            "{text}"
        );
    }
}
