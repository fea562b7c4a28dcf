//! Byte offsets to line numbers. Every error and every plugin's location
//! needs one; counting newlines from the start of the file each time made
//! loading 16,000 `[[plugin]]` tables quadratic (about 25 s), so the line
//! starts are found once and each lookup is a binary search.

/// Where each line of a text starts.
pub(super) struct LineIndex {
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text` in one pass.
    pub(super) fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// The 1-based line `offset` is on (the last line for an offset past
    /// the end).
    pub(super) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| {
            #[cfg(test)]
            probes::count();
            start <= offset
        })
    }
}

impl LineIndex {
    /// The 1-based line and column (in characters) of `offset` in `text`,
    /// the text this index was made of.
    pub(super) fn line_column(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset.min(text.len()))
            .map_or(1, |before| before.chars().count() + 1);
        (line, column)
    }
}

/// How many line starts lookups compared, so a test can prove lookups are
/// logarithmic without timing them.
#[cfg(test)]
pub(crate) mod probes {
    use std::cell::Cell;

    thread_local! {
        static PROBES: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn count() {
        PROBES.with(|p| p.set(p.get() + 1));
    }

    /// The comparisons made on this thread since the last call.
    pub(crate) fn take() -> u64 {
        PROBES.with(|p| p.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_offsets() {
        let index = LineIndex::new("a\nbc\n\nd");
        let lines: Vec<usize> = (0..=8).map(|o| index.line(o)).collect();
        assert_eq!(lines, [1, 1, 2, 2, 2, 3, 4, 4, 4]);
        assert_eq!(LineIndex::new("").line(0), 1);
        let text = "ab\néx = 1";
        assert_eq!(LineIndex::new(text).line_column(text, 6), (2, 3));
    }
}
