//! [`Secret`]: a secret's value that never prints itself.

use std::fmt;

use zeroize::Zeroizing;

/// What a redacted value shows wherever it is formatted or serialized.
pub const REDACTED: &str = "<redacted>";

/// A secret's value. `Debug`, `Display` and `Serialize` show
/// [`REDACTED`], so a value carried in a struct that is logged or
/// serialized does not leak; the bytes are overwritten with zeros when the
/// last copy is dropped. Only [`Secret::expose`] gives them out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// The value `bytes`, taken over (not copied).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// The value's bytes: for the one place that must send them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_formats_and_serializes_redacted() {
        let secret = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret:#?}"), "Secret(<redacted>)");
        assert_eq!(
            serde_json::to_string(&secret).expect("serializes"),
            "\"<redacted>\""
        );
        assert_eq!(secret.expose(), b"hunter2");
    }
}
