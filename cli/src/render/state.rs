//! `outboard up`'s state lines, one per change.

use std::io::Write;

use outboard_host::{Escaped, Status};
use serde::Serialize;

/// One state change as a JSON line: `{"plugin": ..., "status": {...}}`.
#[derive(Debug, Serialize)]
struct StateLine<'a> {
    /// The plugin's name.
    plugin: &'a str,
    /// Its new status.
    status: &'a Status,
}

/// Writes `name`'s `status` as one line: JSON, or
/// `NAME: State (pid P, starts N) reason`.
pub(crate) fn state_line(
    out: &mut impl Write,
    name: &str,
    status: &Status,
    as_json: bool,
) -> std::io::Result<()> {
    if as_json {
        let line = serde_json::to_string(&StateLine {
            plugin: name,
            status,
        })?;
        writeln!(out, "{line}")
    } else {
        let pid = status.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        // The reason may quote the plugin (its stderr, its messages).
        let reason = status
            .reason
            .as_deref()
            .map(|r| format!(" {}", Escaped::line(r)))
            .unwrap_or_default();
        writeln!(
            out,
            "{name}: {:?} (pid {pid}, starts {}){reason}",
            status.state, status.starts
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outboard_host::State;

    /// A ready plugin's status (pid 7, first start), ready since `since`.
    fn ready(since: Option<std::time::SystemTime>) -> Status {
        Status {
            state: State::Ready,
            pid: Some(7),
            starts: 1,
            reason: None,
            stderr: Vec::new(),
            since,
            optional: false,
            invoke_path: None,
        }
    }

    #[test]
    fn a_reason_cannot_forge_a_state_line() {
        let status = Status {
            state: State::Restarting,
            pid: None,
            starts: 2,
            reason: Some("exited\nother: Ready (pid 1, starts 1)\x1b[2J".into()),
            stderr: Vec::new(),
            since: None,
            optional: false,
            invoke_path: None,
        };
        let mut out = Vec::new();
        state_line(&mut out, "p", &status, false).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "p: Restarting (pid -, starts 2) exited\\nother: Ready (pid 1, starts 1)\\u{1b}[2J\n"
        );
    }

    #[test]
    fn a_state_line_without_a_reason_ends_with_the_parenthesis() {
        let mut out = Vec::new();
        state_line(&mut out, "p", &ready(None), false).expect("write");
        assert_eq!(out, b"p: Ready (pid 7, starts 1)\n");
    }

    #[test]
    fn a_json_state_line_gives_the_ready_time_in_rfc3339() {
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let mut out = Vec::new();
        state_line(&mut out, "p", &ready(Some(since)), true).expect("write");
        let line: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            line["status"]["since"],
            serde_json::json!("1970-01-01T00:00:01.500Z")
        );
    }
}
