//! Text a plugin wrote, made safe to show: the one escaping function for
//! everything a plugin says (log records, crash reports, veto and error
//! messages, state reasons), wherever a person reads it.

use std::fmt;

/// `text` with every control character written as an escape (`\n`, `\r`,
/// `\t`, `\u{1b}`), so that what a plugin says can neither start a line
/// that looks like the host's own nor drive the terminal. Unicode's
/// invisible direction controls and line separators are escaped too: they
/// reorder or break what a terminal shows.
///
/// [`Escaped::line`] escapes line breaks (for one line of a table or a
/// message); [`Escaped::block`] keeps `\n` and `\t` (for a crash report
/// shown as the plugin wrote it, in a record of its own).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a> {
    /// The text as the plugin wrote it.
    text: &'a str,
    /// Whether `\n` and `\t` stay as they are.
    keep_breaks: bool,
}

impl<'a> Escaped<'a> {
    /// For one line: every control character escaped, `\n` included.
    pub fn line(text: &'a str) -> Escaped<'a> {
        Escaped {
            text,
            keep_breaks: false,
        }
    }

    /// For a block of lines: `\n` and `\t` kept, every other control
    /// character escaped.
    pub fn block(text: &'a str) -> Escaped<'a> {
        Escaped {
            text,
            keep_breaks: true,
        }
    }

    fn needs_escape(&self, c: char) -> bool {
        if self.keep_breaks && (c == '\n' || c == '\t') {
            return false;
        }
        c.is_control()
            || matches!(c,
                // Left-to-right and right-to-left marks, embeddings,
                // overrides and isolates; line and paragraph separators.
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                    | '\u{2028}' | '\u{2029}')
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in self.text.char_indices() {
            if self.needs_escape(c) {
                f.write_str(&self.text[plain..i])?;
                match c {
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    _ => write!(f, "{}", c.escape_unicode())?,
                }
                plain = i + c.len_utf8();
            }
        }
        f.write_str(&self.text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_escapes_every_control_character() {
        let forged = "no\noutboard: job 1 succeeded (exit 0)\r\x1b[2J\t\u{9b}\u{202e}x";
        assert_eq!(
            Escaped::line(forged).to_string(),
            "no\\noutboard: job 1 succeeded (exit 0)\\r\\u{1b}[2J\\t\\u{9b}\\u{202e}x"
        );
        assert_eq!(
            Escaped::line("plain – ü 日本").to_string(),
            "plain – ü 日本"
        );
    }

    #[test]
    fn a_block_keeps_line_breaks_and_tabs() {
        let text = "thread 'main' panicked at src/main.rs:1:1:\n\x1b[31mred\x1b[0m\r\tat x";
        assert_eq!(
            Escaped::block(text).to_string(),
            "thread 'main' panicked at src/main.rs:1:1:\n\\u{1b}[31mred\\u{1b}[0m\\r\tat x"
        );
    }
}
