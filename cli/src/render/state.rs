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
        let reason = Escaped::line(status.reason.as_deref().unwrap_or(""));
        writeln!(
            out,
            "{name}: {:?} (pid {pid}, starts {}) {reason}",
            status.state, status.starts
        )
    }
}
