//! One plugin's lines, bounded in count and in bytes, oldest dropped
//! first; a pure data structure (no clock, no locking, no channel).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::{Limits, LogCounts, LogLine};

/// What a line is charged beyond its text: the record around it, so that
/// a flood of empty lines is bounded by bytes too.
pub(super) const LINE_OVERHEAD: usize = 64;

/// Ends a line cut to fit the ring.
const CUT: &str = " …[cut to fit the log ring]";

/// A plugin's recent lines.
#[derive(Debug)]
pub(super) struct Ring {
    /// Oldest first.
    lines: VecDeque<LogLine>,
    /// What the held lines are charged, by [`cost`].
    bytes: usize,
    /// The sequence number the next line gets.
    next_sequence: u64,
    /// Lines evicted to keep within the bounds.
    evicted: u64,
    limits: Limits,
}

impl Ring {
    pub(super) fn new(limits: Limits) -> Ring {
        Ring {
            lines: VecDeque::new(),
            bytes: 0,
            next_sequence: 1,
            evicted: 0,
            limits,
        }
    }

    /// Adds a line, numbering it and cutting it to fit the byte bound if it
    /// alone exceeds it; drops the oldest lines until both bounds hold.
    /// Returns the line as stored (its text shared, not copied).
    pub(super) fn push(&mut self, mut line: LogLine) -> LogLine {
        line.sequence = self.next_sequence;
        self.next_sequence += 1;
        fit(&mut line, self.limits.bytes);
        while !self.lines.is_empty()
            && (self.lines.len() >= self.limits.lines
                || self.bytes + cost(&line) > self.limits.bytes)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= cost(&old);
                self.evicted += 1;
            }
        }
        self.bytes += cost(&line);
        self.lines.push_back(line.clone());
        line
    }

    /// Lines pushed so far, and how many of them were evicted.
    pub(super) fn counts(&self) -> LogCounts {
        LogCounts {
            lines: self.next_sequence - 1,
            dropped: self.evicted,
        }
    }

    /// The lines at or after `since` (all if `None`), then only the last
    /// `tail` of them (all if `None`), oldest first.
    pub(super) fn read(&self, tail: Option<usize>, since: Option<SystemTime>) -> Vec<LogLine> {
        // Times are read before the plugin's lock is taken, and a wall
        // clock can be set back: they mostly grow along the ring, not
        // always, so filter rather than bisect.
        let matching = self
            .lines
            .iter()
            .filter(|l| since.is_none_or(|s| l.time >= s));
        match tail {
            Some(n) => {
                let count = matching.clone().count();
                matching.skip(count.saturating_sub(n)).cloned().collect()
            }
            None => matching.cloned().collect(),
        }
    }
}

/// What a line is charged against the byte bound.
pub(super) fn cost(line: &LogLine) -> usize {
    LINE_OVERHEAD + line.message.len() + line.fields.as_ref().map_or(0, |f| f.len())
}

/// Cuts a line whose cost exceeds `bytes` down to fit: its fields go
/// first (cut, they would no longer be a whole JSON object), then its
/// message is cut at a character boundary and marked. `bytes` is at least
/// [`MIN_BYTES`](super::MIN_BYTES), room for the overhead and the marker.
fn fit(line: &mut LogLine, bytes: usize) {
    if cost(line) <= bytes {
        return;
    }
    line.fields = None;
    if cost(line) <= bytes {
        return;
    }
    let mut end = bytes.saturating_sub(LINE_OVERHEAD + CUT.len());
    while !line.message.is_char_boundary(end) {
        end -= 1;
    }
    line.message = Arc::from(format!("{}{CUT}", &line.message[..end]));
}
