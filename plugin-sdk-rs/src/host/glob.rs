//! The one wildcard of event patterns and `event:publish:` grants: `*`
//! matches any run of characters, dots included; nothing else is special
//! (PROTOCOL.md §17.3).

/// `true` if `name` matches `pattern`.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // split always yields at least one part.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty(); // no `*` at all: an exact match
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_matches_any_run_dots_included() {
        for (pattern, name, expected) in [
            ("job.finished", "job.finished", true),
            ("job.finished", "job.finishedx", false),
            ("job.*", "job.finished", true),
            ("job.*", "job.", true),
            ("job.*", "jobs.finished", false),
            ("*", "anything.at.all", true),
            ("*.failed", "plugin.failed", true),
            ("*.failed", "plugin.failed.not", false),
            ("a*b*c", "a.x.b.y.c", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("build.*.done", "build.x.y.done", true),
            ("job?", "jobs", false),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} vs {name}");
        }
    }
}
