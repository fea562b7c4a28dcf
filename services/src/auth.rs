//! The credential on every host-service call (docs/PROTOCOL.md §17.2):
//! exactly one `authorization: Bearer <token>` value, the token 64
//! lowercase hex digits. Anything else is refused before the token is
//! looked up; the lookup itself compares in constant time (`registry`).

use outboard_proto::handshake::{TOKEN_METADATA_KEY, TOKEN_SCHEME};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The length of a host token: 32 bytes from the OS, as hex.
pub const TOKEN_LEN: usize = 64;

/// Why a call's credential was refused. Deliberately vague towards the
/// caller (`UNAUTHENTICATED` says no more), precise in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization` metadata.
    Missing,
    /// More than one `authorization` value.
    Repeated,
    /// Not `Bearer ` and 64 lowercase hex digits.
    Malformed,
    /// Well-formed, but the token of no running instance.
    Unknown,
}

impl Refusal {
    /// The status the caller sees: `UNAUTHENTICATED`, without telling a
    /// guesser how close it came.
    pub fn status(self) -> Status {
        let why = match self {
            Refusal::Missing => "missing",
            Refusal::Repeated => "repeated",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "not the token of a running plugin instance",
        };
        Status::unauthenticated(format!(
            "host services need `{TOKEN_METADATA_KEY}: {TOKEN_SCHEME}<OUTBOARD_HOST_TOKEN>`: {why}"
        ))
    }
}

/// The token a call presents, checked for form only.
pub fn bearer(metadata: &MetadataMap) -> Result<&str, Refusal> {
    let mut values = metadata.get_all(TOKEN_METADATA_KEY).iter();
    let value = values.next().ok_or(Refusal::Missing)?;
    if values.next().is_some() {
        return Err(Refusal::Repeated);
    }
    let value = value.to_str().map_err(|_| Refusal::Malformed)?;
    let token = value.strip_prefix(TOKEN_SCHEME).ok_or(Refusal::Malformed)?;
    if !well_formed(token) {
        return Err(Refusal::Malformed);
    }
    Ok(token)
}

/// Whether `token` has the form of a host token (says nothing of whether
/// it is one).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh token: 32 bytes from the operating system's generator, as hex.
pub fn new_token() -> Result<String, String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; TOKEN_LEN / 2];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("cannot read the operating system's random generator: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn with(values: &[&str]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for v in values {
            map.append(
                TOKEN_METADATA_KEY,
                MetadataValue::try_from(*v).expect("ascii"),
            );
        }
        map
    }

    const GOOD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn exactly_one_bearer_with_a_well_formed_token_passes() {
        let map = with(&[&format!("Bearer {GOOD}")]);
        assert_eq!(bearer(&map), Ok(GOOD));
    }

    #[test]
    fn missing_repeated_and_malformed_are_told_apart() {
        assert_eq!(bearer(&with(&[])), Err(Refusal::Missing));
        let good = format!("Bearer {GOOD}");
        assert_eq!(bearer(&with(&[&good, &good])), Err(Refusal::Repeated));
        for bad in [
            GOOD.to_owned(),
            format!("bearer {GOOD}"),
            format!("Bearer  {GOOD}"),
            format!("Bearer {GOOD} "),
            format!("Basic {GOOD}"),
            format!("Bearer {}", GOOD.to_uppercase()),
            format!("Bearer {}", &GOOD[1..]),
            format!("Bearer {GOOD}0"),
            format!("Bearer {}g", &GOOD[1..]),
            "Bearer ".to_owned(),
        ] {
            assert_eq!(bearer(&with(&[&bad])), Err(Refusal::Malformed), "{bad}");
        }
    }

    #[test]
    fn every_refusal_is_unauthenticated() {
        for r in [
            Refusal::Missing,
            Refusal::Repeated,
            Refusal::Malformed,
            Refusal::Unknown,
        ] {
            assert_eq!(r.status().code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn new_tokens_are_well_formed_and_differ() {
        let a = new_token().expect("os rng");
        let b = new_token().expect("os rng");
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, b);
    }
}
