//! The token check in front of `PluginService`: every call must carry
//! `authorization: Bearer <OUTBOARD_TOKEN>`, so that other local processes
//! cannot drive the plugin.

use std::sync::Arc;

use outboard_proto::handshake::{TOKEN_METADATA_KEY, TOKEN_SCHEME};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// A tonic interceptor accepting only calls that carry the launch token.
#[derive(Clone)]
pub(crate) struct TokenCheck {
    /// The token from `OUTBOARD_TOKEN`.
    expected: Arc<str>,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck(<redacted>)")
    }
}

impl TokenCheck {
    /// Accepts calls carrying `token`.
    pub(crate) fn new(token: &str) -> TokenCheck {
        TokenCheck {
            expected: Arc::from(token),
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if request
            .metadata()
            .get_all(TOKEN_METADATA_KEY)
            .iter()
            .count()
            > 1
        {
            return Err(Status::unauthenticated(format!(
                "`{TOKEN_METADATA_KEY}` metadata given more than once: exactly one is accepted"
            )));
        }
        let Some(value) = request.metadata().get(TOKEN_METADATA_KEY) else {
            return Err(Status::unauthenticated(format!(
                "missing `{TOKEN_METADATA_KEY}` metadata: every PluginService call must carry \
                 `{TOKEN_METADATA_KEY}: {TOKEN_SCHEME}<OUTBOARD_TOKEN>`"
            )));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix(TOKEN_SCHEME));
        let Some(presented) = presented else {
            return Err(Status::unauthenticated(format!(
                "malformed `{TOKEN_METADATA_KEY}` metadata: expected `{TOKEN_SCHEME}<OUTBOARD_TOKEN>`"
            )));
        };
        if !constant_time_eq(presented.as_bytes(), self.expected.as_bytes()) {
            return Err(Status::unauthenticated(format!(
                "wrong token in `{TOKEN_METADATA_KEY}` metadata: it is not this launch's \
                 OUTBOARD_TOKEN"
            )));
        }
        Ok(request)
    }
}

/// Compares without an early exit, so the time taken does not tell how many
/// leading bytes of a guess were right. Only the length can leak, and the
/// host's tokens all have the same length.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: Option<&str>) -> Result<(), Status> {
        let mut request = Request::new(());
        if let Some(v) = value {
            request
                .metadata_mut()
                .insert(TOKEN_METADATA_KEY, v.parse().expect("ascii"));
        }
        TokenCheck::new("s3cret").call(request).map(|_| ())
    }

    #[test]
    fn accepts_only_the_launch_token() {
        assert!(check(Some("Bearer s3cret")).is_ok());
        for (value, says) in [
            (None, "missing `authorization` metadata"),
            (Some("s3cret"), "malformed `authorization` metadata"),
            (Some("Bearer s3cre"), "wrong token"),
            (Some("Bearer s3cretX"), "wrong token"),
            (Some("Bearer S3cret"), "wrong token"),
        ] {
            let status = check(value).expect_err("rejected");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{value:?}");
            assert!(status.message().starts_with(says), "{value:?}: {status:?}");
        }
    }

    #[test]
    fn a_repeated_token_is_refused_even_if_one_is_right() {
        let mut request = Request::new(());
        for value in ["Bearer s3cret", "Bearer other"] {
            request
                .metadata_mut()
                .append(TOKEN_METADATA_KEY, value.parse().expect("ascii"));
        }
        let status = TokenCheck::new("s3cret")
            .call(request)
            .expect_err("repeated");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(
            status.message().contains("more than once"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
