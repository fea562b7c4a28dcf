//! What makes a valid plugin name and phase name. Host and SDKs check the
//! same rules, so a manifest the SDK accepts is one the host accepts.

/// The longest plugin or phase name.
pub const MAX_NAME_LEN: usize = 64;

/// True if `name` is a valid plugin name: 1 to 64 characters of
/// `[a-z0-9_-]`, starting with a letter or digit.
pub fn is_valid_plugin_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= MAX_NAME_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// True if `phase` is a valid phase name: 1 to 64 characters of
/// `[a-z0-9_.-]`.
pub fn is_valid_phase_name(phase: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&phase.len())
        && phase.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// The longest event name or event subscription pattern (PROTOCOL.md §17).
pub const MAX_EVENT_NAME_LEN: usize = 128;

/// True if `name` is a valid event name: 1 to 128 characters of
/// `[a-z0-9_.-]`, starting with a letter or digit.
pub fn is_valid_event_name(name: &str) -> bool {
    let Some(first) = name.bytes().next() else {
        return false;
    };
    name.len() <= MAX_EVENT_NAME_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.bytes().all(is_event_name_byte)
}

/// True if `pattern` is a valid event subscription pattern: 1 to 128
/// characters of `[a-z0-9_.*-]`, where `*` matches any run of characters.
pub fn is_valid_event_pattern(pattern: &str) -> bool {
    (1..=MAX_EVENT_NAME_LEN).contains(&pattern.len())
        && pattern.bytes().all(|b| b == b'*' || is_event_name_byte(b))
}

fn is_event_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
}

/// Why `name` is not an event name, quoting it.
pub fn invalid_event_name(name: &str) -> String {
    format!(
        "{name:?} is not a valid event name (1 to {MAX_EVENT_NAME_LEN} characters of a-z, 0-9, \
         '_', '.', '-', starting with a letter or digit)"
    )
}

/// Why `pattern` is not an event subscription pattern, quoting it.
pub fn invalid_event_pattern(pattern: &str) -> String {
    format!(
        "{pattern:?} is not a valid event pattern (1 to {MAX_EVENT_NAME_LEN} characters of a-z, \
         0-9, '_', '.', '-', '*')"
    )
}

/// Why `name` is not a plugin name, quoting it.
pub fn invalid_plugin_name(name: &str) -> String {
    format!(
        "{name:?} is not a valid plugin name (1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_', '-', \
         starting with a letter or digit)"
    )
}

/// Why `phase` is not a phase name, quoting it.
pub fn invalid_phase_name(phase: &str) -> String {
    format!(
        "{phase:?} is not a valid phase name (1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_', '.', '-')"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        for good in ["a", "env-injector", "job_timer", "9lives", &"x".repeat(64)] {
            assert!(is_valid_plugin_name(good), "{good}");
        }
        for bad in [
            "",
            "-lead",
            "_lead",
            "Upper",
            "sp ace",
            "dot.ted",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_plugin_name(bad), "{bad}");
        }
    }

    #[test]
    fn phase_names() {
        for good in ["pre_container", "a.b-c", ".-_", "0"] {
            assert!(is_valid_phase_name(good), "{good}");
        }
        for bad in ["", "Pre", "pre container", "é", &"p".repeat(65)] {
            assert!(!is_valid_phase_name(bad), "{bad}");
        }
        assert_eq!(
            invalid_phase_name("Pre Container"),
            r#""Pre Container" is not a valid phase name (1 to 64 characters of a-z, 0-9, '_', '.', '-')"#
        );
    }

    #[test]
    fn event_names_and_patterns() {
        for good in [
            "job.finished",
            "build.flaky-2",
            "0",
            "a_b",
            &"e".repeat(128),
        ] {
            assert!(is_valid_event_name(good), "{good}");
            assert!(is_valid_event_pattern(good), "{good}");
        }
        for bad in [
            "",
            ".lead",
            "-lead",
            "Job",
            "job finished",
            "job:x",
            "é",
            &"e".repeat(129),
        ] {
            assert!(!is_valid_event_name(bad), "{bad}");
        }
        for good in ["*", "job.*", "*.finished", ".x", "a**"] {
            assert!(is_valid_event_pattern(good), "{good}");
        }
        for bad in ["", "Job.*", "job.?", "job:*", "job *", &"*".repeat(129)] {
            assert!(!is_valid_event_pattern(bad), "{bad}");
        }
        assert!(!is_valid_event_name("job.*"));
    }
}
