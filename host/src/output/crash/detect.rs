//! Telling crash reports apart: the line that starts one, and what each
//! following line does to it, for every kind of report.

use crate::output::record::is_json_object;

/// What a grouped report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    RustPanic,
    PythonTraceback,
    GoPanic,
    JavaException,
    /// An `...Error: ...` or `...Exception: ...` line followed by indented
    /// lines: a JVM `printStackTrace`, a Node.js error, Rust's `Error: ...`
    /// from `main` with its `Caused by:` list.
    Exception,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::RustPanic => "rust-panic",
            Kind::PythonTraceback => "python-traceback",
            Kind::GoPanic => "go-panic",
            Kind::JavaException => "java-exception",
            Kind::Exception => "exception",
        }
    }
}

/// Where an open report is, which decides the lines that continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// After `thread '…' panicked at file:line:col:` — the message is next.
    RustMessage,
    /// After the message: its indented lines, `note:` lines and the
    /// backtrace.
    RustDetails,
    /// Between `Traceback (most recent call last):` and the exception line.
    PythonFrames,
    /// After the exception line: only a chained exception goes on.
    PythonRaised,
    /// After `During handling of the above exception…` or `The above
    /// exception was the direct cause…`: the next `Traceback` is next.
    PythonChained,
    /// Inside `+ Exception Group Traceback`: indented lines only.
    PythonGroup,
    /// A Go panic or fatal error and its goroutines.
    Go,
    /// `exit status N` after a Go panic: the report is complete.
    GoExited,
    Java,
    Exception,
}

impl Phase {
    pub(super) fn kind(self) -> Kind {
        match self {
            Phase::RustMessage | Phase::RustDetails => Kind::RustPanic,
            Phase::PythonFrames
            | Phase::PythonRaised
            | Phase::PythonChained
            | Phase::PythonGroup => Kind::PythonTraceback,
            Phase::Go | Phase::GoExited => Kind::GoPanic,
            Phase::Java => Kind::JavaException,
            Phase::Exception => Kind::Exception,
        }
    }

    /// Whether a report whose only line is its first is still a report:
    /// `panic: x` or `Error: x` alone is just a line.
    pub(super) fn needs_continuation(self) -> bool {
        matches!(self, Phase::Go | Phase::Exception)
    }
}

pub(super) const PY_TRACEBACK: &str = "Traceback (most recent call last):";
const PY_CONTEXT: &str = "During handling of the above exception, another exception occurred:";
const PY_CAUSE: &str = "The above exception was the direct cause of the following exception:";

/// The phase a report starting with `line` is in, if `line` starts one.
pub(super) fn start(line: &str) -> Option<Phase> {
    if line.starts_with("thread '") && line.contains(" panicked at ") {
        // Since Rust 1.73 the location ends the line and the message
        // follows; before, the message was quoted on the same line.
        return Some(if line.ends_with(':') {
            Phase::RustMessage
        } else {
            Phase::RustDetails
        });
    }
    if line.trim_end() == PY_TRACEBACK {
        return Some(Phase::PythonFrames);
    }
    if line.trim() == "+ Exception Group Traceback (most recent call last):" {
        return Some(Phase::PythonGroup);
    }
    if line.starts_with("panic: ") || line.starts_with("fatal error: ") {
        return Some(Phase::Go);
    }
    if line.starts_with("Exception in thread \"") {
        return Some(Phase::Java);
    }
    if is_exception_line(line) {
        return Some(Phase::Exception);
    }
    None
}

/// `Error: x`, `TypeError: x`, `java.io.IOException: x`, `java.lang.Error`.
fn is_exception_line(line: &str) -> bool {
    let name = line.split_once(": ").map_or(line, |(name, _)| name);
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
        && ["Error", "Exception", "Throwable"]
            .iter()
            .any(|end| name.ends_with(end))
}

/// `main.main()`, `main.(*T).get(...)`, `panic({0x48adc0?, 0x0?})`,
/// `created by main.main in goroutine 1`.
fn is_go_frame(line: &str) -> bool {
    line.starts_with("created by ")
        || (line.ends_with(')')
            && line
                .find('(')
                .is_some_and(|i| i > 0 && !line[..i].contains(char::is_whitespace)))
}

/// What a line does to an open report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// It belongs to the report, which is then in this phase.
    Join(Phase),
    /// A blank line: it belongs to the report only if a continuation
    /// follows.
    Hold,
    /// It does not belong; the report is over.
    End,
}

/// What `line` does to a report in `phase`.
pub(super) fn step(phase: Phase, line: &str) -> Step {
    // A structured log line is never part of a crash report.
    if is_json_object(line) {
        return Step::End;
    }
    let blank = line.trim().is_empty();
    let indented = !blank && line.starts_with([' ', '\t']);
    let join_if = |yes: bool, next: Phase| if yes { Step::Join(next) } else { Step::End };
    match phase {
        Phase::RustMessage => Step::Join(Phase::RustDetails),
        Phase::RustDetails => join_if(
            indented || line.starts_with("note: ") || line == "stack backtrace:",
            Phase::RustDetails,
        ),
        Phase::PythonFrames if blank || indented => Step::Join(Phase::PythonFrames),
        // The exception line, say `ValueError: bad value`.
        Phase::PythonFrames => Step::Join(Phase::PythonRaised),
        Phase::PythonRaised | Phase::PythonChained if blank => Step::Hold,
        Phase::PythonRaised => {
            join_if(line == PY_CONTEXT || line == PY_CAUSE, Phase::PythonChained)
        }
        Phase::PythonChained => join_if(line.trim_end() == PY_TRACEBACK, Phase::PythonFrames),
        Phase::PythonGroup => join_if(indented, Phase::PythonGroup),
        Phase::Go if blank => Step::Hold,
        Phase::Go => {
            let exited = line
                .strip_prefix("exit status ")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if exited {
                Step::Join(Phase::GoExited)
            } else {
                join_if(
                    indented
                        || (line.starts_with("goroutine ") && line.ends_with("]:"))
                        || line.starts_with("[signal ")
                        || line.starts_with("panic: ")
                        || line.starts_with("...")
                        || line == "runtime stack:"
                        || is_go_frame(line),
                    Phase::Go,
                )
            }
        }
        Phase::GoExited => Step::End,
        Phase::Java => join_if(indented || line.starts_with("Caused by: "), Phase::Java),
        Phase::Exception if blank => Step::Hold,
        Phase::Exception => join_if(indented || line.starts_with("Caused by:"), Phase::Exception),
    }
}
