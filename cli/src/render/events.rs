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
                // Escaped once, with the whole line below.
                Verdict::Vetoed { plugin, message } => format!("vetoed by {plugin}: {message}"),
                Verdict::Failed { plugins, error } => {
                    format!("failed at {}: {error}", plugins.join(", "))
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

#[cfg(test)]
mod tests {
    use outboard_proto::control::v1::{
        EntrySummary, PluginState, PluginStatus, ReloadEvent, Verdict as WireVerdict,
        VerdictFailed, verdict,
    };

    use super::*;

    fn lines(events: Vec<Event>, as_json: bool) -> Vec<String> {
        let mut out = Vec::new();
        for e in events {
            let msg = WatchResponse {
                time: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 0,
                }),
                event: Some(e),
            };
            event(&mut out, &msg, as_json).expect("writes");
        }
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn events() -> Vec<Event> {
        vec![
            Event::PluginStatus(PluginStatus {
                name: "gate".into(),
                state: PluginState::Failed as i32,
                last_exit_reason: "died\n2027 plugin forged ready\u{1b}[1A".into(),
                ..Default::default()
            }),
            Event::Dispatch(outboard_proto::control::v1::DispatchEvent {
                phase: "pre_container".into(),
                invocation_id: "inv-9".into(),
                verdict: Some(WireVerdict {
                    result: Some(verdict::Result::Failed(VerdictFailed {
                        plugins: vec!["gate".into()],
                        error: "timed out\r\u{9b}2K".into(),
                    })),
                }),
                duration: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 500_000,
                }),
                entries: vec![EntrySummary {
                    plugin: "gate".into(),
                    outcome: 3,
                    failure: 1,
                    duration: None,
                }],
            }),
            Event::Reload(ReloadEvent {
                plan: None,
                error: "plugin x failed to start".into(),
            }),
        ]
    }

    #[test]
    fn each_event_is_one_line_whatever_a_plugin_wrote() {
        let text = lines(events(), false);
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(
            text.iter().all(|l| !l.contains(['\u{1b}', '\u{9b}', '\r'])),
            "{text:#?}"
        );
        assert!(
            text[0].starts_with(
                "2027-01-15T08:00:00.000Z plugin gate failed pid - (last exit: died\\n"
            )
        );
        assert!(
            text[1].contains("failed at gate: timed out\\r"),
            "{}",
            text[1]
        );
        assert!(
            text[1].contains("in 1000.5 ms [gate=failed] inv-9"),
            "{}",
            text[1]
        );
        assert_eq!(
            text[2],
            "2027-01-15T08:00:00.000Z reload failed: plugin x failed to start"
        );
    }

    #[test]
    fn json_events_carry_their_type_and_time() {
        let docs: Vec<Value> = lines(events(), true)
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(docs[0]["type"], "plugin");
        assert_eq!(docs[0]["state"], "failed");
        assert_eq!(docs[0]["time"], "2027-01-15T08:00:00.000Z");
        assert_eq!(
            docs[1],
            json!({"type": "dispatch", "time": "2027-01-15T08:00:00.000Z",
                "phase": "pre_container", "invocation_id": "inv-9",
                "verdict": {"result": "failed", "plugins": ["gate"], "error": "timed out\r\u{9b}2K"},
                "duration_ms": 1000.5,
                "entries": [{"plugin": "gate", "outcome": "failed", "failure": "timeout", "duration_ms": 0.0}]})
        );
        assert_eq!(
            docs[2],
            json!({"type": "reload", "time": "2027-01-15T08:00:00.000Z",
            "plan": null, "error": "plugin x failed to start"})
        );
    }
}
