//! RFC 6901 JSON Pointers as patches use them: at least one reference
//! token, no deeper than [`MAX_DEPTH`](super::MAX_DEPTH).

use std::fmt::{self, Write as _};

use super::{MAX_DEPTH, PatchError};

/// A parsed RFC 6901 JSON Pointer with at least one reference token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointer {
    pub(super) tokens: Vec<String>,
}

impl Pointer {
    /// Parses `/a/b~1c` into tokens `a`, `b/c`.
    pub fn parse(path: &str) -> Result<Pointer, PatchError> {
        let bad = |why: &str| PatchError::InvalidPath {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        if path.is_empty() {
            return Err(bad("the empty pointer would replace the whole context"));
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(bad("a JSON Pointer starts with '/'"));
        };
        let depth = rest.bytes().filter(|&b| b == b'/').count() + 1;
        if depth > MAX_DEPTH {
            return Err(bad(&format!(
                "it is {depth} levels deep; a patch may reach at most {MAX_DEPTH} levels \
                 (deeper contexts cannot travel as protobuf messages)"
            )));
        }
        // Sized up front: `split` cannot tell how many tokens it will give.
        let mut tokens = Vec::with_capacity(depth);
        for raw in rest.split('/') {
            tokens.push(unescape(raw).ok_or_else(|| bad("'~' must be followed by '0' or '1'"))?);
        }
        Ok(Pointer { tokens })
    }

    /// The unescaped reference tokens, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// True if one pointer is the other or lies inside it: writes to both
    /// cannot be merged without one overriding the other.
    pub fn overlaps(&self, other: &Pointer) -> bool {
        let n = self.tokens.len().min(other.tokens.len());
        self.tokens[..n] == other.tokens[..n]
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Writes the unescaped runs as they are, with no copy of the token.
        for t in &self.tokens {
            f.write_char('/')?;
            let mut run = 0;
            for (i, c) in t.match_indices(['~', '/']) {
                f.write_str(&t[run..i])?;
                f.write_str(if c == "~" { "~0" } else { "~1" })?;
                run = i + 1;
            }
            f.write_str(&t[run..])?;
        }
        Ok(())
    }
}

fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}
