//! Health (§10): the standard health service says SERVING for the whole
//! server.

use crate::check::{Check, CheckName};
use crate::subject::Subject;

/// Asks the health service as the host does.
pub(crate) async fn check(subject: &Subject<'_>) -> Check {
    let result = subject
        .launched
        .guard()
        .health(&subject.clients.health, subject.timeout)
        .await
        .map(|()| "SERVING".to_owned())
        .map_err(|reason| format!("{reason} (expected SERVING)"));
    Check::of(CheckName::Health, result)
}
