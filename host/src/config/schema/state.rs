//! The `[state]` and `[services]` tables, resolved.

use serde::Deserialize;
use toml::Spanned;

use super::source::Source;
use crate::config::error::{ConfigError, Subject};
use crate::config::limits;
use crate::config::state::{ServicesSpec, StateSpec};
use crate::config::value::DurationText;

/// The `[state]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StateToml {
    dir: Option<Spanned<String>>,
}

/// The `[services]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServicesToml {
    kv_value_size: Option<Spanned<u32>>,
    kv_namespace_total: Option<Spanned<u32>>,
    call_timeout: Option<Spanned<DurationText>>,
    max_concurrent_calls: Option<Spanned<u32>>,
}

impl StateToml {
    /// The state directory, relative to the file's directory.
    pub(super) fn resolve(&self, src: &Source<'_>) -> Result<StateSpec, ConfigError> {
        let Some(dir) = &self.dir else {
            return Ok(StateSpec::default());
        };
        if dir.get_ref().trim().is_empty() || dir.get_ref().contains('\0') {
            return Err(src.scope(Subject::State).invalid(
                Some(dir.span()),
                "dir",
                "is empty or holds a NUL: name a directory, or leave the key out for the default"
                    .into(),
            ));
        }
        Ok(StateSpec {
            dir: Some(src.base_dir().join(dir.get_ref())),
        })
    }
}

impl ServicesToml {
    /// The limits as written, the protocol's defaults where left out.
    pub(super) fn resolve(&self, src: &Source<'_>) -> Result<ServicesSpec, ConfigError> {
        let scope = src.scope(Subject::Services);
        let default = ServicesSpec::default();
        Ok(ServicesSpec {
            kv_value_size: scope.count(
                "kv_value_size",
                &self.kv_value_size,
                default.kv_value_size,
                limits::KV_VALUE_SIZE,
            )?,
            kv_namespace_total: scope.count(
                "kv_namespace_total",
                &self.kv_namespace_total,
                default.kv_namespace_total,
                limits::KV_NAMESPACE_TOTAL,
            )?,
            call_timeout: scope.duration(
                "call_timeout",
                &self.call_timeout,
                default.call_timeout,
                limits::TIMEOUT,
            )?,
            max_concurrent_calls: scope.count(
                "max_concurrent_calls",
                &self.max_concurrent_calls,
                default.max_concurrent_calls,
                limits::MAX_CONCURRENT_CALLS,
            )?,
        })
    }
}
