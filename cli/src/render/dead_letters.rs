//! Dead letters, as `outboard events --dead` prints them: a table with a
//! header (nothing but the header when there are none), or one JSON object
//! per line.

use std::io::{self, Write};
use std::time::SystemTime;

use anyhow::Context;
use outboard_host::Escaped;
use outboard_proto::control::v1::DeadLetter;
use serde_json::json;

use super::columns::aligned;

/// The longest error shown in the table, of its first line (JSON has it
/// whole, the plugin's stderr tail included).
const ERROR_WIDTH: usize = 100;

/// Prints `letters` to `out`.
pub(crate) fn print(
    out: &mut impl Write,
    letters: &[DeadLetter],
    json: bool,
) -> anyhow::Result<()> {
    write(out, letters, json).context("cannot print the dead letters on stdout")
}

fn write(out: &mut impl Write, letters: &[DeadLetter], json: bool) -> io::Result<()> {
    if json {
        for d in letters {
            let line = json!({
                "id": d.id,
                "event_id": d.event_id,
                "event": d.event,
                "subscriber": d.subscriber,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "time": time(d),
            });
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 7]> = letters
        .iter()
        .map(|d| {
            let first = d.last_error.lines().next().unwrap_or_default();
            let error: String = first.chars().take(ERROR_WIDTH).collect();
            [
                d.id.clone(),
                Escaped::line(&d.event).to_string(),
                Escaped::line(&d.subscriber).to_string(),
                d.attempts.to_string(),
                time(d),
                d.event_id.clone(),
                Escaped::line(&error).to_string(),
            ]
        })
        .collect();
    aligned(
        out,
        [
            "ID",
            "EVENT",
            "SUBSCRIBER",
            "ATTEMPTS",
            "TIME",
            "EVENT ID",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// The letter's time, RFC 3339 UTC.
fn time(d: &DeadLetter) -> String {
    let Some(t) = &d.time else {
        return String::new();
    };
    let since = std::time::Duration::new(
        u64::try_from(t.seconds).unwrap_or(0),
        u32::try_from(t.nanos).unwrap_or(0),
    );
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + since).to_string()
}
