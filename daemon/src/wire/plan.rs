//! A reload's plan as `outboard.control.v1.ReloadPlan`.

use outboard_host::ReloadPlan;
use outboard_proto::control::v1 as wire;

/// `plan` as the wire's, field for field.
pub fn plan_to_proto(plan: &ReloadPlan) -> wire::ReloadPlan {
    wire::ReloadPlan {
        unchanged: plan.unchanged.clone(),
        added: plan.added.clone(),
        removed: plan.removed.clone(),
        changed: plan
            .changed
            .iter()
            .map(|change| wire::PluginChange {
                name: change.name.clone(),
                fields: change.fields.clone(),
            })
            .collect(),
        disabled: plan.disabled.clone(),
        phases_changed: plan.phases_changed.clone(),
    }
}

/// True if `plan` names `plugin` anywhere.
pub fn plan_names(plan: &wire::ReloadPlan, plugin: &str) -> bool {
    let lists = [&plan.unchanged, &plan.added, &plan.removed, &plan.disabled];
    lists.iter().any(|names| names.iter().any(|n| n == plugin))
        || plan.changed.iter().any(|c| c.name == plugin)
}
