//! Who receives an event: a plugin whose manifest subscribes to the name
//! (`event_subscriptions`) AND whose granted `event:subscribe:GLOB`s match
//! it (PROTOCOL.md §17.6; the host's events carry job commands, so
//! receiving is granted, not free).

use outboard_host::{Manifest, Supervisor};

use crate::permissions::{EVENT_SUBSCRIBE, glob_matches, holds_glob};

/// True if a plugin with `manifest`, granted `granted`, receives `event`.
pub(super) fn receives(manifest: &Manifest, granted: &[String], event: &str) -> bool {
    manifest
        .event_subscriptions
        .iter()
        .any(|pattern| glob_matches(pattern, event))
        && holds_glob(granted, EVENT_SUBSCRIBE, event)
}

/// What `plugin`'s config grants of what its manifest asks for (`"*"`:
/// all of it), as the host computes it for `Configure`.
pub(super) fn granted(plugin: &Supervisor) -> Vec<String> {
    plugin.manifest().allowed(&plugin.spec().grant)
}

/// Why `plugin` will receive nothing although it subscribes to events, for
/// the warning at start; `None` if it subscribes to none or holds a
/// subscribe grant.
pub(super) fn missing_grant(manifest: &Manifest, granted: &[String]) -> Option<String> {
    if manifest.event_subscriptions.is_empty()
        || granted.iter().any(|g| g.starts_with(EVENT_SUBSCRIBE))
    {
        return None;
    }
    Some(format!(
        "subscribes to events ({}) but holds no {EVENT_SUBSCRIBE}GLOB permission, so it receives \
         none: ask for it in the manifest and add it to the plugin's `grant` list",
        manifest.event_subscriptions.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use outboard_proto::v1;

    use super::*;

    fn manifest(patterns: &[&str]) -> Manifest {
        let m = v1::Manifest {
            name: "sub".into(),
            version: "1.0.0".into(),
            protocol_version: 1,
            event_subscriptions: patterns
                .iter()
                .map(|p| v1::EventSubscription {
                    pattern: (*p).into(),
                })
                .collect(),
            ..Default::default()
        };
        Manifest::from_proto(m, 1).expect("a valid manifest")
    }

    fn grants(list: &[&str]) -> Vec<String> {
        list.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn both_a_pattern_and_a_grant_must_match() {
        let m = manifest(&["job.*", "build.done"]);
        let all = grants(&["event:subscribe:*"]);
        assert!(receives(&m, &all, "job.finished"));
        assert!(receives(&m, &all, "build.done"));
        assert!(!receives(&m, &all, "build.started"));
        let jobs = grants(&["event:subscribe:job.finished"]);
        assert!(receives(&m, &jobs, "job.finished"));
        assert!(!receives(&m, &jobs, "job.started"));
        assert!(!receives(&m, &jobs, "build.done"));
        // A publish grant is not a subscribe grant.
        assert!(!receives(&m, &grants(&["event:publish:*"]), "job.finished"));
        assert!(!receives(&manifest(&[]), &all, "job.finished"));
    }

    #[test]
    fn a_subscriber_without_any_grant_is_named() {
        let m = manifest(&["job.*"]);
        let why = missing_grant(&m, &grants(&["kv"])).expect("no grant");
        assert!(
            why.contains("job.*") && why.contains("event:subscribe:"),
            "{why}"
        );
        assert_eq!(missing_grant(&m, &grants(&["event:subscribe:x"])), None);
        assert_eq!(missing_grant(&manifest(&[]), &[]), None);
    }
}
