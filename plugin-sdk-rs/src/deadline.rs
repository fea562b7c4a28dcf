//! Call deadlines. tonic's server already races every call against the
//! client's `grpc-timeout`, but answers `CANCELLED` ("Timeout expired") when
//! it fires. The SDK wants `DEADLINE_EXCEEDED`, the code gRPC specifies, so
//! it notes the deadline as the request arrives ([`StampDeadlineLayer`], run
//! before tonic starts its own timer) and cuts the plugin's future off at
//! that instant or at `InvokeRequest.deadline`, whichever is earlier. Being
//! no later than tonic's timer, and polled before it, ours always wins.

use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use tonic::codegen::Service;
use tonic::codegen::http;
use tower::Layer;

/// The gRPC header carrying the client's timeout.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// When the client gives up on a call, per its `grpc-timeout`, stored in the
/// request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallDeadline(pub(crate) Instant);

/// Adds [`StampDeadline`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StampDeadlineLayer;

impl<S> Layer<S> for StampDeadlineLayer {
    type Service = StampDeadline<S>;

    fn layer(&self, inner: S) -> StampDeadline<S> {
        StampDeadline { inner }
    }
}

/// Records a request's [`CallDeadline`] as it arrives.
#[derive(Debug, Clone)]
pub(crate) struct StampDeadline<S> {
    /// The wrapped service.
    inner: S,
}

impl<S, B> Service<http::Request<B>> for StampDeadline<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let timeout = request
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        if let Some(timeout) = timeout {
            // Saturate: a timeout of years would overflow Instant on some
            // platforms; beyond a year it means "none" anyway.
            if let Some(at) = Instant::now().checked_add(timeout) {
                request.extensions_mut().insert(CallDeadline(at));
            }
        }
        self.inner.call(request)
    }
}

/// Parses a `grpc-timeout` value: 1 to 8 digits and a unit (`H`, `M`, `S`,
/// `m`, `u`, `n`).
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The earlier of the transport's deadline for the call (gRPC's
/// `grpc-timeout`, the fast path's frame timeout) and the deadline in the
/// message, as an `Instant`.
pub(crate) fn effective(call: Option<Instant>, message: Option<SystemTime>) -> Option<Instant> {
    let header = call;
    let message = message.map(|at| {
        let now = Instant::now();
        // A deadline already past is "now"; the call gets one poll.
        at.duration_since(SystemTime::now())
            .ok()
            .and_then(|left| now.checked_add(left))
            .unwrap_or(now)
    });
    match (header, message) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_refuses_the_rest() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S", "五S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn effective_deadline_is_the_earlier_one() {
        assert_eq!(effective(None, None), None);
        let soon = Instant::now() + Duration::from_millis(100);
        assert_eq!(effective(Some(soon), None), Some(soon));
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(effective(Some(soon), Some(later)), Some(soon));
        let past = SystemTime::now() - Duration::from_secs(1);
        let got = effective(Some(soon), Some(past)).expect("deadline");
        assert!(got < soon && got <= Instant::now());
        let only_message = effective(None, Some(later)).expect("deadline");
        let left = only_message - Instant::now();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
    }
}
