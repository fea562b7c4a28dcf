//! [`Secrets`]: reading the secrets the operator granted (PROTOCOL.md
//! §17.4), and [`Secret`], a value that never shows in `Debug` output.

use outboard_proto::v1::GetSecretRequest;
use tonic::Request;

use super::{HostError, HostServices};

/// The secrets granted to this plugin (`secret:NAME`). Read a secret when
/// it is needed rather than keeping it: the host may rotate it.
#[derive(Debug, Clone, PartialEq)]
pub struct Secrets {
    /// Where the calls go.
    host: HostServices,
}

impl Secrets {
    pub(super) fn new(host: HostServices) -> Secrets {
        Secrets { host }
    }

    /// The secret `name` as the operator configured it (`[secrets.NAME]`).
    /// Not granted: `PERMISSION_DENIED` (also when no such secret exists);
    /// granted but not configured: `NOT_FOUND`.
    pub async fn get(&self, name: &str) -> Result<Secret, HostError> {
        let request = GetSecretRequest {
            name: name.to_owned(),
        };
        let response = self
            .host
            .service()?
            .get_secret(Request::new(request))
            .await
            .map_err(|s| HostError::status("GetSecret", s))?;
        Ok(Secret(response.into_inner().value))
    }
}

/// A secret's value. Its `Debug` form is `Secret(<redacted>)`, so that it
/// cannot reach a log line by accident; read it with [`Secret::expose`].
/// The bytes are overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A secret holding `value` (for tests and fakes).
    pub fn new(value: impl Into<Vec<u8>>) -> Secret {
        Secret(value.into())
    }

    /// The value, byte for byte. Never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, or `None` if it is not.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the overwrite from being removed as a dead store.
        std::hint::black_box(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(<redacted>))");
        assert_eq!(s.expose(), b"hunter2");
        assert_eq!(s.expose_str(), Some("hunter2"));
        assert_eq!(Secret::new(vec![0xff]).expose_str(), None);
    }
}
