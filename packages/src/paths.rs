//! The one check that a path named inside a package stays inside it.

/// Why `path` (as an archive or a manifest spells it) cannot name a file
/// inside the package, or `None` when it is a plain relative path of
/// normal components: not empty, not absolute, no `.` or `..`, no empty
/// component, no backslash (which another tool may read as a separator),
/// no control character.
pub(crate) fn escape_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("the path is empty");
    }
    if path.starts_with('/') {
        return Some("the path is absolute");
    }
    if path.contains('\\') {
        return Some("the path holds a backslash");
    }
    // Control characters (NUL, newlines, terminal escapes) would reach
    // the operator's terminal in an error naming the file.
    if path.chars().any(char::is_control) {
        return Some("the path holds a control character");
    }
    for component in path.trim_end_matches('/').split('/') {
        match component {
            ".." => return Some("the path climbs out with `..`"),
            "." | "" => return Some("the path has an empty or `.` component"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::escape_reason;

    #[test]
    fn plain_relative_paths_pass_and_escapes_are_named() {
        assert_eq!(escape_reason("plugin/bin/run"), None);
        assert_eq!(escape_reason("plugin/dir/"), None);
        assert_eq!(escape_reason("/etc/passwd"), Some("the path is absolute"));
        assert_eq!(
            escape_reason("plugin/../../x"),
            Some("the path climbs out with `..`")
        );
        assert_eq!(
            escape_reason("plugin//x"),
            Some("the path has an empty or `.` component")
        );
        assert_eq!(
            escape_reason("./x"),
            Some("the path has an empty or `.` component")
        );
        assert_eq!(escape_reason(""), Some("the path is empty"));
        assert_eq!(
            escape_reason("a\\..\\b"),
            Some("the path holds a backslash")
        );
        assert_eq!(
            escape_reason("plugin/\u{1b}[2Jx"),
            Some("the path holds a control character")
        );
        assert_eq!(
            escape_reason("plugin/a\0b"),
            Some("the path holds a control character")
        );
    }
}
