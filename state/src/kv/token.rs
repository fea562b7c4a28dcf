//! Page tokens: opaque to the caller, bound to one namespace and prefix.
//!
//! A token is hex of: a format byte, 8 bytes of SHA-256 over the namespace
//! and prefix, and the last key of the previous page. It is not secret: a
//! forged one can only move within the listing it names, which the caller
//! may read anyway; the tag only catches a token used on another listing.

use sha2::{Digest, Sha256};

use crate::StateError;
use crate::kv::MAX_KEY_BYTES;

/// The format byte of today's tokens.
const FORMAT: u8 = 1;
/// Bytes of the namespace-and-prefix tag.
const TAG: usize = 8;

/// The token that continues the listing of `ns`/`prefix` after `last`.
pub(crate) fn encode(ns: &str, prefix: &str, last: &str) -> String {
    let mut raw = Vec::with_capacity(1 + TAG + last.len());
    raw.push(FORMAT);
    raw.extend_from_slice(&tag(ns, prefix));
    raw.extend_from_slice(last.as_bytes());
    hex::encode(raw)
}

/// The key after which the listing of `ns`/`prefix` continues.
pub(crate) fn decode(ns: &str, prefix: &str, token: &str) -> Result<String, StateError> {
    let raw = hex::decode(token).map_err(|_| StateError::InvalidToken("not a page token"))?;
    let Some((&FORMAT, rest)) = raw.split_first() else {
        return Err(StateError::InvalidToken("not a page token"));
    };
    if rest.len() < TAG || rest[..TAG] != tag(ns, prefix) {
        return Err(StateError::InvalidToken(
            "comes from a listing of another namespace or prefix",
        ));
    }
    let last = String::from_utf8(rest[TAG..].to_vec())
        .map_err(|_| StateError::InvalidToken("not a page token"))?;
    if last.len() > MAX_KEY_BYTES || !last.starts_with(prefix) {
        return Err(StateError::InvalidToken("not a page token"));
    }
    Ok(last)
}

/// The first bytes of SHA-256 over `ns` and `prefix`, length-prefixed so
/// that no two pairs share an input.
fn tag(ns: &str, prefix: &str) -> [u8; TAG] {
    let mut hasher = Sha256::new();
    hasher.update((ns.len() as u64).to_be_bytes());
    hasher.update(ns.as_bytes());
    hasher.update(prefix.as_bytes());
    let digest = hasher.finalize();
    let mut out = [0; TAG];
    out.copy_from_slice(&digest[..TAG]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_within_its_listing() {
        let token = encode("plugin:a", "jobs/", "jobs/42");
        assert_eq!(
            decode("plugin:a", "jobs/", &token).ok().as_deref(),
            Some("jobs/42")
        );
    }

    #[test]
    fn a_token_of_another_namespace_or_prefix_is_refused() {
        let token = encode("plugin:a", "jobs/", "jobs/42");
        for (ns, prefix) in [("plugin:b", "jobs/"), ("plugin:a", "job"), ("plugin:a", "")] {
            assert!(matches!(
                decode(ns, prefix, &token),
                Err(StateError::InvalidToken(_))
            ));
        }
    }

    #[test]
    fn garbage_is_refused() {
        for token in ["", "zz", "00", "01", &hex::encode([1u8; 4])] {
            assert!(matches!(
                decode("n", "", token),
                Err(StateError::InvalidToken(_))
            ));
        }
    }
}
