//! A reload's plan, as `outboard reload` and `outboard events` print it.

use std::io::Write;

use outboard_host::Escaped;
use outboard_proto::control::v1 as wire;
use serde::Serialize;

/// What a reload does, plugin by plugin.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PlanView {
    /// Keep their processes.
    pub(crate) unchanged: Vec<String>,
    /// Start.
    pub(crate) added: Vec<String>,
    /// Finish their calls and stop.
    pub(crate) removed: Vec<String>,
    /// Replaced blue/green, with what differs.
    pub(crate) changed: Vec<ChangeView>,
    /// Stopped by an operator; they stay stopped.
    pub(crate) disabled: Vec<String>,
    /// Phases whose declaration changes.
    pub(crate) phases_changed: Vec<String>,
}

/// One changed plugin.
#[derive(Debug, Serialize)]
pub(crate) struct ChangeView {
    /// The plugin.
    pub(crate) name: String,
    /// What differs: `command`, `env`, `config`, ...
    pub(crate) fields: Vec<String>,
}

impl PlanView {
    /// The view of a plan off the wire.
    pub(crate) fn of(plan: &wire::ReloadPlan) -> PlanView {
        PlanView {
            unchanged: plan.unchanged.clone(),
            added: plan.added.clone(),
            removed: plan.removed.clone(),
            changed: plan
                .changed
                .iter()
                .map(|c| ChangeView {
                    name: c.name.clone(),
                    fields: c.fields.clone(),
                })
                .collect(),
            disabled: plan.disabled.clone(),
            phases_changed: plan.phases_changed.clone(),
        }
    }

    /// The plan's rows: (what, the names), those with none left out.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let changed: Vec<String> = self
            .changed
            .iter()
            .map(|c| format!("{} ({})", c.name, c.fields.join(", ")))
            .collect();
        [
            ("added", self.added.join(", ")),
            ("removed", self.removed.join(", ")),
            ("changed", changed.join(", ")),
            ("disabled", self.disabled.join(", ")),
            ("phases changed", self.phases_changed.join(", ")),
            ("unchanged", self.unchanged.join(", ")),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .collect()
    }

    /// The plan on one line: `added: a; changed: b (env)`.
    pub(crate) fn summary(&self) -> String {
        let rows = self.rows();
        if rows.is_empty() {
            return "no plugins".to_owned();
        }
        let parts: Vec<String> = rows
            .iter()
            .map(|(what, names)| format!("{what}: {names}"))
            .collect();
        Escaped::line(&parts.join("; ")).to_string()
    }
}

/// The plan, a line per kind of change, under a heading that says whether
/// it was applied.
pub(crate) fn plan(out: &mut impl Write, plan: &PlanView, applied: bool) -> std::io::Result<()> {
    let heading = if applied {
        "reload applied"
    } else {
        "reload plan (dry run: nothing changed)"
    };
    writeln!(out, "{heading}:")?;
    let rows = plan.rows();
    if rows.is_empty() {
        return writeln!(out, "  no plugins");
    }
    let only_unchanged = rows.iter().all(|(what, _)| *what == "unchanged");
    for (what, names) in rows {
        writeln!(
            out,
            "  {:<15} {}",
            format!("{what}:"),
            Escaped::line(&names)
        )?;
    }
    if only_unchanged {
        writeln!(out, "  (nothing to change)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_lists_each_kind_of_change_and_serializes_every_key() {
        let view = PlanView::of(&wire::ReloadPlan {
            unchanged: vec!["a".into()],
            added: vec!["n".into()],
            removed: vec![],
            changed: vec![wire::PluginChange {
                name: "c".into(),
                fields: vec!["env".into(), "config".into()],
            }],
            disabled: vec![],
            phases_changed: vec!["pre_container".into()],
        });
        let mut out = Vec::new();
        plan(&mut out, &view, false).expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "reload plan (dry run: nothing changed):\n\
             \x20 added:          n\n\
             \x20 changed:        c (env, config)\n\
             \x20 phases changed: pre_container\n\
             \x20 unchanged:      a\n"
        );
        assert_eq!(
            serde_json::to_value(&view).expect("JSON"),
            serde_json::json!({"unchanged": ["a"], "added": ["n"], "removed": [],
                "changed": [{"name": "c", "fields": ["env", "config"]}], "disabled": [],
                "phases_changed": ["pre_container"]})
        );
        assert_eq!(
            view.summary(),
            "added: n; changed: c (env, config); phases changed: pre_container; unchanged: a"
        );
    }
}
