//! `outboard ls`'s rows: a table for people, the same rows as JSON for
//! scripts.

use std::io::Write;
use std::time::Duration;

use outboard_host::{Error, Escaped, Plugin};
use serde::Serialize;

/// One plugin in `ls`: its name, and what became of its start.
#[derive(Debug, Serialize)]
pub(crate) struct PluginRow {
    /// The plugin's name.
    pub(crate) name: String,
    /// `state`: `ready` with what the plugin said, or `failed` with why.
    #[serde(flatten)]
    pub(crate) state: RowState,
}

/// A row's state and the fields that come with it.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum RowState {
    /// It started.
    Ready {
        /// Its version, from its manifest.
        version: String,
        /// Its subscriptions, as dispatch will use them.
        phases: Vec<PhaseCell>,
        /// Its process.
        pid: u32,
        /// Milliseconds from spawn to ready, to 0.1 ms.
        ready_ms: f64,
    },
    /// It did not start.
    Failed {
        /// Why, naming the plugin.
        error: String,
    },
}

/// One subscription of a ready plugin.
#[derive(Debug, Serialize)]
pub(crate) struct PhaseCell {
    /// The phase.
    phase: String,
    /// Its priority (the config's override, if any, wins).
    priority: i32,
    /// False if the config turned it off.
    enabled: bool,
}

impl PluginRow {
    /// The row of a plugin that started.
    pub(crate) fn ready(plugin: &Plugin) -> PluginRow {
        let phases = plugin
            .manifest()
            .subscriptions
            .iter()
            .map(|s| {
                // What dispatch will use: the config's override wins.
                let over = plugin.spec().subscriptions.get(&s.phase);
                PhaseCell {
                    phase: s.phase.to_string(),
                    priority: over.and_then(|o| o.priority).unwrap_or(s.priority),
                    enabled: over.is_none_or(|o| o.enabled),
                }
            })
            .collect();
        PluginRow {
            name: plugin.name().to_owned(),
            state: RowState::Ready {
                version: plugin.manifest().version.to_string(),
                phases,
                pid: plugin.pid(),
                ready_ms: round_ms(plugin.ready_after()),
            },
        }
    }

    /// The row of a plugin that failed to start.
    pub(crate) fn failed(name: &str, err: &Error) -> PluginRow {
        PluginRow {
            name: name.to_owned(),
            state: RowState::Failed {
                error: err.to_string(),
            },
        }
    }
}

/// Milliseconds to 0.1 ms.
fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// The table's header.
const HEADER: [&str; 6] = ["NAME", "VERSION", "PHASES", "PID", "STATE", "READY MS"];

/// The cells of `row`, `-` where there is nothing to show.
fn cells(row: &PluginRow) -> [String; 6] {
    let dash = || "-".to_owned();
    match &row.state {
        RowState::Ready {
            version,
            phases,
            pid,
            ready_ms,
        } => {
            let phases: Vec<String> = phases
                .iter()
                .map(|p| {
                    if p.enabled {
                        format!("{}({})", p.phase, p.priority)
                    } else {
                        format!("{}(off)", p.phase)
                    }
                })
                .collect();
            [
                row.name.clone(),
                version.clone(),
                if phases.is_empty() {
                    dash()
                } else {
                    phases.join(" ")
                },
                pid.to_string(),
                "ready".to_owned(),
                // As JSON writes it: 5.0, not 5.
                serde_json::Number::from_f64(*ready_ms).map_or_else(dash, |n| n.to_string()),
            ]
        }
        RowState::Failed { .. } => [
            row.name.clone(),
            dash(),
            dash(),
            dash(),
            "failed".to_owned(),
            dash(),
        ],
    }
}

/// The rows as an aligned table, then each failed plugin's error.
pub(crate) fn table(out: &mut impl Write, rows: &[PluginRow]) -> std::io::Result<()> {
    let cells: Vec<[String; 6]> = rows.iter().map(cells).collect();
    super::columns::aligned(out, HEADER, &cells)?;
    for row in rows {
        if let RowState::Failed { error } = &row.state {
            // Its lines as the host composed them; what the plugin said in
            // them is escaped at the source, control characters here.
            writeln!(out, "\n{}", Escaped::block(error))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<PluginRow> {
        vec![
            PluginRow {
                name: "a".into(),
                state: RowState::Ready {
                    version: "1.2.3".into(),
                    phases: vec![
                        PhaseCell {
                            phase: "pre_container".into(),
                            priority: 10,
                            enabled: true,
                        },
                        PhaseCell {
                            phase: "cleanup".into(),
                            priority: 0,
                            enabled: false,
                        },
                    ],
                    pid: 42,
                    ready_ms: 5.0,
                },
            },
            PluginRow {
                name: "b".into(),
                state: RowState::Failed {
                    error: "plugin b: exited".into(),
                },
            },
        ]
    }

    #[test]
    fn rows_serialize_with_the_keys_ls_json_has_always_had() {
        let json = serde_json::to_value(rows()).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "a", "version": "1.2.3", "pid": 42, "state": "ready", "ready_ms": 5.0,
                 "phases": [
                     {"phase": "pre_container", "priority": 10, "enabled": true},
                     {"phase": "cleanup", "priority": 0, "enabled": false}
                 ]},
                {"name": "b", "state": "failed", "error": "plugin b: exited"}
            ])
        );
    }

    #[test]
    fn the_table_aligns_columns_and_lists_errors_after() {
        let mut out = Vec::new();
        table(&mut out, &rows()).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "NAME  VERSION  PHASES                          PID  STATE   READY MS\n\
             a     1.2.3    pre_container(10) cleanup(off)  42   ready   5.0\n\
             b     -        -                               -    failed  -\n\
             \n\
             plugin b: exited\n"
        );
    }
}
