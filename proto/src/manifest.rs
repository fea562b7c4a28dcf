//! The structural rules of a manifest (PROTOCOL.md §8.2), checked the same
//! way by the host when a plugin describes itself and by the Rust SDK when
//! a plugin builds its manifest, so that an SDK can never build a manifest
//! the host refuses.
//!
//! What needs more than the message itself stays with the caller: the host
//! compares `protocol_version` with the handshake line and compiles the
//! config schema.
//!
//! `testdata/manifest-cases.json` holds a table of manifests and the fields
//! each must be refused for; this crate's tests and the Python SDK's both
//! read it.

use std::collections::BTreeMap;
use std::fmt;

use crate::names::{
    invalid_event_pattern, invalid_phase_name, invalid_plugin_name, is_valid_event_pattern,
    is_valid_phase_name, is_valid_plugin_name,
};
use crate::v1;

/// One thing wrong with a manifest: the field's path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the manifest, e.g. `subscriptions[1].phase`.
    pub field: String,
    /// What is wrong with it, quoting the value.
    pub why: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, why: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: {}", self.field, self.why)
    }
}

impl std::error::Error for FieldError {}

/// The manifest's top-level fields in the order `plugin.proto` declares
/// them, which is the order problems are reported in.
const FIELD_ORDER: [&str; 10] = [
    "name",
    "version",
    "protocol_version",
    "description",
    "features",
    "subscriptions",
    "permissions",
    "dependencies",
    "config_schema",
    "event_subscriptions",
];

/// Every structural problem of `m`, in field order; empty if it has none.
/// Does not look at `protocol_version` (only the handshake knows the right
/// one) nor at whether `config_schema` is a usable JSON Schema.
pub fn check(m: &v1::Manifest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !is_valid_plugin_name(&m.name) {
        errors.push(FieldError::new("name", invalid_plugin_name(&m.name)));
    }
    if let Err(e) = parse_version(&m.version) {
        errors.push(e);
    }
    check_subscriptions(&m.subscriptions, &mut errors);
    check_permissions(&m.permissions, &mut errors);
    check_dependencies(&m.name, &m.dependencies, &mut errors);
    check_event_subscriptions(&m.event_subscriptions, &mut errors);
    errors
}

/// Puts `errors` in field order (stable, so `subscriptions[0]` stays before
/// `subscriptions[1]`): for a caller that adds its own checks to
/// [`check`]'s.
pub fn sort_by_field(errors: &mut [FieldError]) {
    errors.sort_by_key(|e| {
        let top = e.field.split(['[', '.']).next().unwrap_or_default();
        FIELD_ORDER
            .iter()
            .position(|f| *f == top)
            .unwrap_or(FIELD_ORDER.len())
    });
}

/// The manifest's `version`, which must be a full semver version.
pub fn parse_version(version: &str) -> Result<semver::Version, FieldError> {
    semver::Version::parse(version).map_err(|e| {
        FieldError::new(
            "version",
            format!("{version:?} is not a semver version: {e}"),
        )
    })
}

/// The `version_req` of `dependencies[index]`: `None` when blank (any
/// version will do), else a semver requirement.
pub fn parse_version_req(
    index: usize,
    req: &str,
) -> Result<Option<semver::VersionReq>, FieldError> {
    if req.trim().is_empty() {
        return Ok(None);
    }
    semver::VersionReq::parse(req).map(Some).map_err(|e| {
        FieldError::new(
            format!("dependencies[{index}].version_req"),
            format!("{req:?} is not a semver requirement: {e}"),
        )
    })
}

/// Valid phase names, each subscribed to at most once.
fn check_subscriptions(subscriptions: &[v1::Subscription], errors: &mut Vec<FieldError>) {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in subscriptions.iter().enumerate() {
        let field = format!("subscriptions[{i}].phase");
        if !is_valid_phase_name(&s.phase) {
            errors.push(FieldError::new(field, invalid_phase_name(&s.phase)));
        } else if let Some(first) = first_index.get(s.phase.as_str()) {
            errors.push(FieldError::new(
                field,
                format!(
                    "{:?} is subscribed to twice (also subscriptions[{first}])",
                    s.phase
                ),
            ));
        } else {
            first_index.insert(&s.phase, i);
        }
    }
}

/// No blank permission names, and none with control characters: a name
/// is shown to operators, and must not drive their terminal.
fn check_permissions(permissions: &[v1::Permission], errors: &mut Vec<FieldError>) {
    for (i, p) in permissions.iter().enumerate() {
        if p.name.trim().is_empty() || p.name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                format!("permissions[{i}].name"),
                format!(
                    "{:?} is not a permission name (it must not be blank or hold control \
                     characters)",
                    p.name
                ),
            ));
        }
    }
}

/// Valid names other than the plugin's own, each listed once, and
/// requirements that parse.
fn check_dependencies(own_name: &str, deps: &[v1::Dependency], errors: &mut Vec<FieldError>) {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, d) in deps.iter().enumerate() {
        let field = format!("dependencies[{i}].name");
        if !is_valid_plugin_name(&d.name) {
            errors.push(FieldError::new(field, invalid_plugin_name(&d.name)));
        } else if d.name == own_name {
            errors.push(FieldError::new(
                field,
                format!("{:?} is the plugin itself", d.name),
            ));
        } else if let Some(first) = first_index.get(d.name.as_str()) {
            errors.push(FieldError::new(
                field,
                format!("{:?} is listed twice (also dependencies[{first}])", d.name),
            ));
        } else {
            first_index.insert(&d.name, i);
        }
        if let Err(e) = parse_version_req(i, &d.version_req) {
            errors.push(e);
        }
    }
}

/// Valid event patterns (PROTOCOL.md §17.6), each listed once.
fn check_event_subscriptions(subs: &[v1::EventSubscription], errors: &mut Vec<FieldError>) {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in subs.iter().enumerate() {
        let field = format!("event_subscriptions[{i}].pattern");
        if !is_valid_event_pattern(&s.pattern) {
            errors.push(FieldError::new(field, invalid_event_pattern(&s.pattern)));
        } else if let Some(first) = first_index.get(s.pattern.as_str()) {
            errors.push(FieldError::new(
                field,
                format!(
                    "{:?} is listed twice (also event_subscriptions[{first}])",
                    s.pattern
                ),
            ));
        } else {
            first_index.insert(&s.pattern, i);
        }
    }
}

#[cfg(test)]
mod tests;
