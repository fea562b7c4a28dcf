//! The daemon's Watch stream as `outboard events` prints it: one line per
//! event, text for people or JSON for scripts.

use std::io::Write;
use std::time::SystemTime;

use outboard_daemon::wire;
use outboard_host::{Escaped, Verdict};
use outboard_proto::control::v1::{WatchResponse, watch_response::Event};
use serde_json::{Value, json};

use super::reload::PlanView;
use super::status::{PluginView, rfc3339};

/// Writes one event as a line.
pub(crate) fn event(
    out: &mut impl Write,
    msg: &WatchResponse,
    as_json: bool,
) -> anyhow::Result<()> {
    let time = msg
        .time
        .and_then(|t| SystemTime::try_from(t).ok())
        .map(rfc3339);
    let Some(event) = &msg.event else {
        return Ok(());
    };
    if as_json {
        let mut doc = event_json(event)?;
        doc["time"] = json!(time);
        writeln!(out, "{doc}")?;
    } else {
        let time = time.as_deref().unwrap_or("-");
        writeln!(out, "{time} {}", event_text(event)?)?;
    }
    Ok(())
}

/// An event as a JSON object with its `type`.
fn event_json(event: &Event) -> anyhow::Result<Value> {
    Ok(match event {
        Event::PluginStatus(p) => {
            let mut doc = serde_json::to_value(PluginView::of(p))?;
            doc["type"] = json!("plugin");
            doc
        }
        Event::Dispatch(d) => {
            let entries = d
                .entries
                .iter()
                .map(|e| {
                    Ok(json!({
                        "plugin": e.plugin,
                        "outcome": wire::outcome_from_proto(e.outcome, "outcome")?,
                        "failure": wire::failure_from_proto(e.failure, "failure")?,
                        "duration_ms": ms(e.duration),
                    }))
                })
                .collect::<Result<Vec<_>, wire::WireError>>()?;
            json!({
                "type": "dispatch",
                "phase": d.phase,
                "invocation_id": d.invocation_id,
                "verdict": wire::verdict_from_proto(d.verdict.clone(), "verdict")?,
                "duration_ms": ms(d.duration),
                "entries": entries,
            })
        }
        Event::Reload(r) => json!({
            "type": "reload",
            "plan": r.plan.as_ref().map(PlanView::of),
            "error": (!r.error.is_empty()).then_some(&r.error),
        }),
        Event::Missed(n) => json!({"type": "missed", "count": n}),
    })
}

/// An event in words, everything a plugin said escaped.
fn event_text(event: &Event) -> anyhow::Result<String> {
    Ok(match event {
        Event::PluginStatus(p) => {
            let v = PluginView::of(p);
            let pid = v.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let reason = v
                .last_exit_reason
                .as_deref()
                .map(|r| format!(" (last exit: {})", Escaped::line(r)))
                .unwrap_or_default();
            format!(
                "plugin {} {} pid {pid}{reason}",
                Escaped::line(&v.name),
                v.state
            )
        }
        Event::Dispatch(d) => {
            let verdict = match wire::verdict_from_proto(d.verdict.clone(), "verdict")? {
                Verdict::Passed => "passed".to_owned(),
                Verdict::Vetoed { plugin, message } => {
                    format!("vetoed by {plugin}: {}", Escaped::line(&message))
                }
                Verdict::Failed { plugins, error } => {
                    format!(
                        "failed at {}: {}",
                        plugins.join(", "),
                        Escaped::line(&error)
                    )
                }
                _ => "ended with a verdict this version of outboard cannot show".to_owned(),
            };
            let entries: Vec<String> = d
                .entries
                .iter()
                .map(|e| {
                    let outcome = wire::outcome_from_proto(e.outcome, "outcome")
                        .map(|o| serde_json::to_value(o).unwrap_or_default());
                    let word = outcome.ok().and_then(|v| v.as_str().map(str::to_owned));
                    format!("{}={}", e.plugin, word.unwrap_or_else(|| "?".into()))
                })
                .collect();
            Escaped::line(&format!(
                "dispatch {} {verdict} in {:.1} ms [{}] {}",
                d.phase,
                ms(d.duration),
                entries.join(" "),
                d.invocation_id
            ))
            .to_string()
        }
        Event::Reload(r) => {
            let plan = r.plan.as_ref().map(PlanView::of).unwrap_or_default();
            if r.error.is_empty() {
                format!("reload applied: {}", plan.summary())
            } else {
                format!("reload failed: {}", Escaped::line(&r.error))
            }
        }
        Event::Missed(n) => format!("… {n} events missed (this watcher fell behind)"),
    })
}

/// A wire duration in ms to the microsecond (0 if unset or not one).
fn ms(d: Option<prost_types::Duration>) -> f64 {
    let d = wire::duration_from_proto(d, "duration").unwrap_or_default();
    (d.as_secs_f64() * 1e6).round() / 1e3
}
