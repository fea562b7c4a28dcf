//! `Describe` (§8.2): a manifest the host accepts.

use outboard_host::Manifest;

use crate::check::{Check, CheckName};
use crate::subject::Subject;

const NAME: CheckName = CheckName::Describe;

/// Calls `Describe` and validates the manifest as the host does; the
/// manifest, if valid, is for the checks that follow.
pub(crate) async fn check(subject: &Subject<'_>) -> (Check, Option<Manifest>) {
    match subject
        .launched
        .describe(&subject.clients, subject.timeout)
        .await
    {
        Ok(manifest) => (Check::pass(NAME, summary(&manifest)), Some(manifest)),
        Err(e) => (Check::fail(NAME, e.to_string()), None),
    }
}

/// Name, version, protocol and subscribed phases.
fn summary(manifest: &Manifest) -> String {
    let phases: Vec<String> = manifest
        .subscriptions
        .iter()
        .map(|s| format!("{}:{}", s.phase, s.priority))
        .collect();
    format!(
        "{} {} (protocol {}), phases: {}",
        manifest.name,
        manifest.version,
        manifest.protocol_version,
        if phases.is_empty() {
            "none".to_owned()
        } else {
            phases.join(", ")
        }
    )
}
