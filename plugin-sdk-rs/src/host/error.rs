//! [`HostError`]: why a host-service call failed.

use super::StatusCode;
use crate::PluginError;

/// Why a host-service call failed: the host offers none, or it answered
/// with an error status (its code and message, which name the field, the
/// limit or the permission, PROTOCOL.md §17.4).
///
/// A missing key, an empty list or a lost compare-and-set are answers, not
/// errors. With `?` in a plugin's method, a `HostError` becomes a
/// [`PluginError`]: a missing grant or missing services fail the call with
/// `FAILED_PRECONDITION`, an unreachable host with `UNAVAILABLE` (retried
/// by the host where it retries), anything else with `INTERNAL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The host that started this plugin offers no host services.
    #[error(
        "host services are not available: {missing} is not set or not usable (the host that \
         started this plugin offers none: it is older, or embedded without them)"
    )]
    NotOffered {
        /// The variable that was absent or unusable, e.g. `OUTBOARD_HOST_SOCKET`.
        missing: &'static str,
    },
    /// The host answered the call with an error status.
    #[error("host service {call} failed: {code}: {message}")]
    Status {
        /// The call, e.g. `KvSet`.
        call: &'static str,
        /// The gRPC status code.
        code: StatusCode,
        /// The host's message.
        message: String,
    },
}

impl HostError {
    /// The failed call's status from the host, for `call`.
    pub(crate) fn status(call: &'static str, status: tonic::Status) -> HostError {
        HostError::Status {
            call,
            code: StatusCode::from_tonic(status.code()),
            message: status.message().to_owned(),
        }
    }

    /// The gRPC code: the host's, or `FAILED_PRECONDITION` when it offers
    /// no services.
    pub fn code(&self) -> StatusCode {
        match self {
            HostError::NotOffered { .. } => StatusCode::FailedPrecondition,
            HostError::Status { code, .. } => *code,
        }
    }

    /// `true` if the host offers no services at all.
    pub fn is_not_offered(&self) -> bool {
        matches!(self, HostError::NotOffered { .. })
    }
}

impl From<HostError> for PluginError {
    fn from(e: HostError) -> PluginError {
        match e.code() {
            StatusCode::FailedPrecondition | StatusCode::PermissionDenied => {
                PluginError::failed_precondition(e.to_string())
            }
            StatusCode::Unavailable | StatusCode::DeadlineExceeded => {
                PluginError::unavailable(e.to_string())
            }
            _ => PluginError::failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn names_the_variable_and_maps_to_plugin_errors() {
        let absent = HostError::NotOffered {
            missing: "OUTBOARD_HOST_SOCKET",
        };
        assert!(
            absent.to_string().contains("OUTBOARD_HOST_SOCKET"),
            "{absent}"
        );
        assert_eq!(PluginError::from(absent).code(), Code::FailedPrecondition);
        let denied = HostError::status(
            "KvGet",
            tonic::Status::permission_denied("plugin \"c\" lacks permission \"kv\""),
        );
        assert_eq!(denied.code(), StatusCode::PermissionDenied);
        assert_eq!(
            denied.to_string(),
            "host service KvGet failed: PERMISSION_DENIED: plugin \"c\" lacks permission \"kv\""
        );
        assert_eq!(PluginError::from(denied).code(), Code::FailedPrecondition);
        let down = HostError::status("KvSet", tonic::Status::unavailable("db"));
        assert_eq!(PluginError::from(down).code(), Code::Unavailable);
        let full = HostError::status("KvSet", tonic::Status::resource_exhausted("limit"));
        assert_eq!(PluginError::from(full).code(), Code::Internal);
    }
}
