//! The grants a call needs, and the one glob matcher for the permissions
//! that carry a pattern (`event:publish:GLOB`, `event:subscribe:GLOB`).
//!
//! Grants come from the operator (`grant = [...]`), filtered by what the
//! manifest asks for: the host computes them, this module only compares.
//! Exact permissions (`kv`, `kv:shared:NAME`, `secret:NAME`) match by
//! string equality; in a glob `*` matches any run of characters, dots
//! included, and nothing else is special.

/// The permission for a plugin's own key-value namespace.
pub const KV: &str = "kv";

/// The prefix of a shared namespace's permission: `kv:shared:NAME`.
pub const KV_SHARED: &str = "kv:shared:";

/// The prefix of a secret's permission: `secret:NAME`.
pub const SECRET: &str = "secret:";

/// The prefix of a publishing permission: `event:publish:GLOB`.
pub const EVENT_PUBLISH: &str = "event:publish:";

/// The prefix of a receiving permission: `event:subscribe:GLOB`.
pub const EVENT_SUBSCRIBE: &str = "event:subscribe:";

/// Whether `glob` matches all of `text`: `*` matches any run of characters
/// (none included, dots included); every other character only itself.
///
/// Iterative, remembering only the last `*`: linear in practice and
/// `O(glob × text)` at worst, with no recursion a hostile pattern could
/// deepen.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let (glob, text) = (glob.as_bytes(), text.as_bytes());
    let (mut g, mut t) = (0, 0);
    // Where the last `*` was, and where in `text` its run now ends.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if g < glob.len() && glob[g] == b'*' {
            star = Some((g, t));
            g += 1;
        } else if g < glob.len() && glob[g] == text[t] {
            g += 1;
            t += 1;
        } else if let Some((star_g, star_t)) = star {
            // Let the last `*` swallow one more character and retry.
            g = star_g + 1;
            t = star_t + 1;
            star = Some((star_g, star_t + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// Whether `granted` holds exactly `permission`.
pub fn holds(granted: &[String], permission: &str) -> bool {
    granted.iter().any(|g| g == permission)
}

/// Whether one of `granted`'s permissions under `prefix` (say
/// [`EVENT_PUBLISH`]) has a glob matching `name`.
pub fn holds_glob(granted: &[String], prefix: &str, name: &str) -> bool {
    granted
        .iter()
        .filter_map(|g| g.strip_prefix(prefix))
        .any(|glob| glob_matches(glob, name))
}

/// The permission a key-value call on `namespace` needs: [`KV`] for the
/// caller's own (empty), `kv:shared:NAME` for a shared one.
pub fn for_namespace(namespace: &str) -> String {
    if namespace.is_empty() {
        KV.to_owned()
    } else {
        format!("{KV_SHARED}{namespace}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_without_star_matches_only_itself() {
        assert!(glob_matches("job.finished", "job.finished"));
        assert!(!glob_matches("job.finished", "job.finishe"));
        assert!(!glob_matches("job.finished", "job.finished2"));
        assert!(!glob_matches("job.finished", ""));
        assert!(glob_matches("", ""));
        assert!(!glob_matches("", "a"));
    }

    #[test]
    fn a_star_matches_any_run_dots_included() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything.at.all"));
        assert!(glob_matches("job.*", "job.finished"));
        assert!(glob_matches("job.*", "job."));
        assert!(glob_matches("job.*", "job.a.b.c"));
        assert!(!glob_matches("job.*", "job"));
        assert!(!glob_matches("job.*", "jobs.finished"));
        assert!(glob_matches("*.failed", "plugin.failed"));
        assert!(glob_matches("*.failed", "a.b.failed"));
        assert!(!glob_matches("*.failed", "plugin.failed.not"));
        assert!(glob_matches("build.*.done", "build.x.y.done"));
        assert!(!glob_matches("build.*.done", "build.done"));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(glob_matches("a*b*c", "aXbYbZc"));
        assert!(!glob_matches("a*b*c", "aXbYbZ"));
        assert!(glob_matches("**", "x"));
    }

    #[test]
    fn nothing_but_star_is_special() {
        assert!(!glob_matches("job.?", "job.x"));
        assert!(glob_matches("job.?", "job.?"));
        assert!(!glob_matches("[a]", "a"));
        assert!(!glob_matches("job\\*", "job.x"));
    }

    #[test]
    fn backtracking_finds_the_later_match() {
        assert!(glob_matches("*ab", "aab"));
        assert!(glob_matches("*aab", "aaaab"));
        assert!(glob_matches("a*a*a*a*b", &format!("{}b", "a".repeat(100))));
        assert!(!glob_matches("a*a*a*a*b", &"a".repeat(100)));
    }

    #[test]
    fn exact_grants_are_string_equality() {
        let granted = vec!["kv".to_owned(), "kv:shared:jobs".to_owned()];
        assert!(holds(&granted, "kv"));
        assert!(holds(&granted, &for_namespace("jobs")));
        assert!(!holds(&granted, &for_namespace("job")));
        assert!(!holds(&granted, &for_namespace("jobs2")));
        assert!(!holds(&[], KV));
        // A star in an exact grant is just a character.
        assert!(!holds(&["kv:shared:*".to_owned()], &for_namespace("jobs")));
    }

    #[test]
    fn glob_grants_match_under_their_prefix_only() {
        let granted = vec![
            "event:publish:build.*".to_owned(),
            "event:subscribe:job.finished".to_owned(),
        ];
        assert!(holds_glob(&granted, EVENT_PUBLISH, "build.flaky"));
        assert!(!holds_glob(&granted, EVENT_PUBLISH, "deploy.done"));
        assert!(!holds_glob(&granted, EVENT_PUBLISH, "job.finished"));
        assert!(holds_glob(&granted, EVENT_SUBSCRIBE, "job.finished"));
        assert!(!holds_glob(&granted, EVENT_SUBSCRIBE, "build.flaky"));
        assert!(holds_glob(
            &["event:publish:*".to_owned()],
            EVENT_PUBLISH,
            "x"
        ));
    }
}
