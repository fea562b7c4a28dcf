//! The last lines of a plugin's stderr, kept for error messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::line::{MAX_LINE, cut_marker};

/// How many stderr lines a [`Tail`] keeps.
pub(crate) const TAIL_LINES: usize = 20;

/// The longest line a [`Tail`] keeps: a line cut by [`read_line`](super::read_line) fits,
/// marker included; a longer one is cut again.
pub(super) const TAIL_LINE_MAX: usize = MAX_LINE + 64;

/// reader task and whoever reports an early exit.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Tail {
    /// Remembers a line, forgetting the oldest beyond [`TAIL_LINES`]. A line
    /// longer than a cut [`read_line`](super::read_line) line is cut to [`MAX_LINE`] bytes
    /// with a marker, so the tail stays bounded whoever feeds it.
    pub fn push(&self, line: &str) {
        let line = if line.len() <= TAIL_LINE_MAX {
            line.to_owned()
        } else {
            let mut keep = MAX_LINE;
            while !line.is_char_boundary(keep) {
                keep -= 1;
            }
            let mut cut = line[..keep].to_owned();
            cut.push_str(&cut_marker(line.len() - keep));
            cut
        };
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// The remembered lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let tail = Tail::default();
        for i in 0..TAIL_LINES + 5 {
            tail.push(&i.to_string());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("5"));
    }

    #[test]
    fn the_tail_cuts_lines_longer_than_a_read_line() {
        let tail = Tail::default();
        let cut = format!("{}{}", "x".repeat(MAX_LINE), cut_marker(usize::MAX));
        tail.push(&cut);
        tail.push(&"é".repeat(MAX_LINE));
        let lines = tail.lines();
        assert_eq!(lines[0], cut);
        assert!(lines[1].len() <= TAIL_LINE_MAX);
        assert!(lines[1].ends_with(&format!(" …[line cut: {} more bytes dropped]", MAX_LINE)));
    }
}
