//! `outboard conformance -- CMD`: the battery's results for people (a
//! table) or scripts (JSON).

use std::time::Duration;

use outboard_conformance::{Check, Options, run};
use serde_json::Value;

/// `outboard conformance`: runs the checks, prints them (a table, or JSON
/// with the summary on stderr), and returns 0 if all passed, else 1.
pub async fn main(
    command: Vec<String>,
    handshake_timeout: Duration,
    config: Option<&str>,
    as_json: bool,
) -> anyhow::Result<u8> {
    use anyhow::Context as _;
    use std::io::Write as _;

    let spec = outboard_host::config::spec_for_command(&command)?;
    let config = match config {
        None => None,
        Some(text) => match serde_json::from_str(text).context("--config is not JSON")? {
            Value::Object(map) => Some(map),
            _ => anyhow::bail!("--config must be a JSON object"),
        },
    };
    let options = Options {
        spec,
        handshake_timeout,
        config,
    };
    let checks = run(&options).await;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&checks)?)?;
        eprintln!("{}", summary(&checks));
    } else {
        write!(out, "{}", table(&checks))?;
    }
    Ok(u8::from(!checks.iter().all(|c| c.passed)))
}

/// The checks as a table: PASS/FAIL, name, detail; then the summary line.
pub fn table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{}  {:width$}  {}\n",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    out.push_str(&summary(checks));
    out.push('\n');
    out
}

/// `N passed, M failed`.
pub fn summary(checks: &[Check]) -> String {
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
}
