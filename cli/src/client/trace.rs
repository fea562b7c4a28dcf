//! The caller's trace context on a control call, so that what the daemon
//! does for it joins the caller's trace.

use outboard_host::trace;
use tonic::metadata::{MetadataKey, MetadataValue};

/// `message` as a request carrying the caller's trace context as
/// `traceparent` (and `tracestate`) metadata: the current span's (a job's,
/// under `run --daemon`), else the environment's `TRACEPARENT`. Nothing
/// when traces are off.
pub(crate) fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let mut headers = trace::headers(&tracing::Span::current());
    if headers.is_empty()
        && let Some(parent) = trace::env_parent()
    {
        headers = trace::context_headers(&parent);
    }
    for (key, value) in headers {
        // The propagator writes valid W3C headers; anything else is left out.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
    request
}
