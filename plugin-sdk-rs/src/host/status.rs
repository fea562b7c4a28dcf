//! [`StatusCode`]: the gRPC status code a host-service call failed with, as
//! the SDK's own type (so that a plugin's code names no gRPC library).

/// The gRPC status codes, as the host answers a call (PROTOCOL.md §17.4
/// lists which it uses and when).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusCode {
    /// `CANCELLED`.
    Cancelled,
    /// `UNKNOWN`, also for a code this SDK does not know.
    Unknown,
    /// `INVALID_ARGUMENT`: a field breaks its rule; the message names it.
    InvalidArgument,
    /// `DEADLINE_EXCEEDED`: no answer in time.
    DeadlineExceeded,
    /// `NOT_FOUND`: a secret granted but not configured.
    NotFound,
    /// `ALREADY_EXISTS`.
    AlreadyExists,
    /// `PERMISSION_DENIED`: a grant is missing; the message names it.
    PermissionDenied,
    /// `RESOURCE_EXHAUSTED`: a limit would be exceeded; nothing was written.
    ResourceExhausted,
    /// `FAILED_PRECONDITION`: also what the SDK says when the host offers
    /// no services at all.
    FailedPrecondition,
    /// `ABORTED`.
    Aborted,
    /// `OUT_OF_RANGE`.
    OutOfRange,
    /// `UNIMPLEMENTED`: the host does not know the call.
    Unimplemented,
    /// `INTERNAL`.
    Internal,
    /// `UNAVAILABLE`: the host is stopping or unreachable, or a backend
    /// failed; a retry may succeed.
    Unavailable,
    /// `DATA_LOSS`.
    DataLoss,
    /// `UNAUTHENTICATED`: the token was refused.
    Unauthenticated,
}

impl StatusCode {
    /// The code's name as gRPC spells it, e.g. `PERMISSION_DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Cancelled => "CANCELLED",
            StatusCode::Unknown => "UNKNOWN",
            StatusCode::InvalidArgument => "INVALID_ARGUMENT",
            StatusCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            StatusCode::NotFound => "NOT_FOUND",
            StatusCode::AlreadyExists => "ALREADY_EXISTS",
            StatusCode::PermissionDenied => "PERMISSION_DENIED",
            StatusCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            StatusCode::FailedPrecondition => "FAILED_PRECONDITION",
            StatusCode::Aborted => "ABORTED",
            StatusCode::OutOfRange => "OUT_OF_RANGE",
            StatusCode::Unimplemented => "UNIMPLEMENTED",
            StatusCode::Internal => "INTERNAL",
            StatusCode::Unavailable => "UNAVAILABLE",
            StatusCode::DataLoss => "DATA_LOSS",
            StatusCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    pub(crate) fn from_tonic(code: tonic::Code) -> StatusCode {
        match code {
            tonic::Code::Cancelled => StatusCode::Cancelled,
            tonic::Code::InvalidArgument => StatusCode::InvalidArgument,
            tonic::Code::DeadlineExceeded => StatusCode::DeadlineExceeded,
            tonic::Code::NotFound => StatusCode::NotFound,
            tonic::Code::AlreadyExists => StatusCode::AlreadyExists,
            tonic::Code::PermissionDenied => StatusCode::PermissionDenied,
            tonic::Code::ResourceExhausted => StatusCode::ResourceExhausted,
            tonic::Code::FailedPrecondition => StatusCode::FailedPrecondition,
            tonic::Code::Aborted => StatusCode::Aborted,
            tonic::Code::OutOfRange => StatusCode::OutOfRange,
            tonic::Code::Unimplemented => StatusCode::Unimplemented,
            tonic::Code::Internal => StatusCode::Internal,
            tonic::Code::Unavailable => StatusCode::Unavailable,
            tonic::Code::DataLoss => StatusCode::DataLoss,
            tonic::Code::Unauthenticated => StatusCode::Unauthenticated,
            // `OK` is no failure; an unknown code stays unknown.
            tonic::Code::Ok | tonic::Code::Unknown => StatusCode::Unknown,
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
