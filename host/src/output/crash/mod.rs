//! Grouping lines into crash reports: a pure state machine fed one line at
//! a time, flushed when the stream goes quiet or ends.

mod detect;
#[cfg(test)]
pub(super) mod samples;
#[cfg(test)]
mod tests;

use detect::{Phase, Step, start, step};

pub(crate) use detect::Kind;

/// The most lines in one grouped record; a longer report goes on in a new
/// record.
pub(crate) const MAX_BLOCK_LINES: usize = 200;

/// The most bytes of text in one grouped record; a longer report goes on in
/// a new record.
pub(crate) const MAX_BLOCK_BYTES: usize = 64 * 1024;

/// How many blank lines in a row an open report keeps on trial: they join
/// it if a continuation follows, and are logged on their own otherwise.
pub(crate) const MAX_HELD_BLANKS: usize = 2;

/// Ends a record whose report goes on in the next one.
const CUT_MARKER: &str = "…[block cut: continued in the next record]";

/// Starts a record that goes on with a cut report.
const CONTINUED_MARKER: &str = "…[continued from the previous record]";

/// What the grouping hands on.
#[derive(Debug, PartialEq)]
pub(crate) enum Output {
    /// A line outside any report, logged as usual.
    Line(String),
    /// A report, or one part of a long one, logged as one error record.
    Block(Block),
}

/// A grouped report.
#[derive(Debug, PartialEq)]
pub(crate) struct Block {
    /// What kind of report it is.
    pub(crate) kind: Kind,
    /// The report's first line; on the parts after the first of a cut
    /// report, with a marker.
    pub(crate) message: String,
    /// The report's lines, joined with `\n`, with markers where it was cut.
    pub(crate) text: String,
    /// How many of the plugin's lines `text` holds.
    pub(crate) lines: usize,
}

/// The open report: at most [`MAX_BLOCK_BYTES`] of text, a first line and
/// [`MAX_HELD_BLANKS`] blank lines, each a bounded line.
#[derive(Debug)]
struct Open {
    phase: Phase,
    first: String,
    text: String,
    lines: usize,
    /// Which part of the report this is, from 1.
    part: u32,
    held: Vec<String>,
}

impl Open {
    fn new(phase: Phase, line: String) -> Open {
        Open {
            phase,
            first: line.clone(),
            text: line,
            lines: 1,
            part: 1,
            held: Vec::new(),
        }
    }

    /// Adds a line, first handing on the part so far if the line would not
    /// fit in it.
    fn append(&mut self, line: String, out: &mut Vec<Output>) {
        let full = self.lines >= MAX_BLOCK_LINES
            || self.text.len() + 1 + line.len() + 1 + CUT_MARKER.len() > MAX_BLOCK_BYTES;
        if full {
            self.text.push('\n');
            self.text.push_str(CUT_MARKER);
            out.push(Output::Block(self.take()));
            self.part += 1;
            self.text.push_str(CONTINUED_MARKER);
        }
        self.text.push('\n');
        self.text.push_str(&line);
        self.lines += 1;
    }

    /// The part so far, leaving the text empty.
    fn take(&mut self) -> Block {
        let message = if self.part == 1 {
            self.first.clone()
        } else {
            format!("{} …[continued, part {}]", self.first, self.part)
        };
        Block {
            kind: self.phase.kind(),
            message,
            text: std::mem::take(&mut self.text),
            lines: std::mem::take(&mut self.lines),
        }
    }
}

/// Groups lines into crash reports: a pure state machine fed one line at a
/// time, flushed when the stream goes quiet or ends. Holds at most one open
/// report, whose size is bounded.
#[derive(Debug, Default)]
pub(crate) struct Grouper {
    open: Option<Open>,
}

impl Grouper {
    /// Whether a report is open, waiting for more lines.
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Takes one line; returns what is ready to log, in order.
    pub(crate) fn feed(&mut self, line: String) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(open) = &mut self.open {
            match step(open.phase, &line) {
                Step::Join(phase) => {
                    for held in std::mem::take(&mut open.held) {
                        open.append(held, &mut out);
                    }
                    open.append(line, &mut out);
                    open.phase = phase;
                    if phase == Phase::GoExited {
                        self.close(&mut out);
                    }
                    return out;
                }
                Step::Hold if open.held.len() < MAX_HELD_BLANKS => {
                    open.held.push(line);
                    return out;
                }
                Step::Hold | Step::End => self.close(&mut out),
            }
        }
        match start(&line) {
            Some(phase) => self.open = Some(Open::new(phase, line)),
            None => out.push(Output::Line(line)),
        }
        out
    }

    /// Hands on the open report as it is: the stream went quiet or ended.
    pub(crate) fn flush(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.close(&mut out);
        out
    }

    fn close(&mut self, out: &mut Vec<Output>) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if open.part == 1 && open.lines == 1 && open.phase.needs_continuation() {
            out.push(Output::Line(open.text));
        } else {
            out.push(Output::Block(open.take()));
        }
        out.extend(open.held.into_iter().map(Output::Line));
    }

    /// Bytes the open report holds, for the bound's test.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.open.as_ref().map_or(0, |o| {
            o.text.capacity()
                + o.first.capacity()
                + o.held.iter().map(String::capacity).sum::<usize>()
        })
    }
}
