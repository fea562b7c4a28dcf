//! Grouping: each report one record, whatever comes around it, and every
//! record bounded.

use super::detect::PY_TRACEBACK;
use super::samples::*;
use super::*;
use crate::output::line::MAX_LINE;
use crate::output::record::{Level, parse};
use serde_json::json;

#[test]
fn each_report_is_one_record_between_other_lines() {
    for (kind, report) in SAMPLES.into_iter().chain([(Kind::GoPanic, GO_NIL)]) {
        for after in ["listening on /run/p.sock", JSON_LINE] {
            assert_eq!(
                group(&format!("starting up\n{report}\n{after}")),
                [line("starting up"), block(kind, report), line(after)],
                "{report}"
            );
        }
    }
}

#[test]
fn a_report_that_ends_the_stream_is_flushed() {
    for (kind, report) in SAMPLES {
        assert_eq!(group(report), [block(kind, report)], "{report}");
    }
}

#[test]
fn a_go_exit_status_closes_the_report_at_once() {
    let mut grouper = Grouper::default();
    let mut out = Vec::new();
    for line in GO_NIL.split('\n') {
        out.extend(grouper.feed(line.to_owned()));
    }
    assert!(!grouper.is_open());
    assert_eq!(out, [block(Kind::GoPanic, GO_NIL)]);
}

#[test]
fn two_panics_with_backtraces_are_two_records() {
    // Rust writes a blank line before each panic.
    let input = format!("\n{RUST_PANIC_BACKTRACE}\n\n{RUST_SECOND_PANIC}\n");
    assert_eq!(
        group(&input),
        [
            line(""),
            block(Kind::RustPanic, RUST_PANIC_BACKTRACE),
            line(""),
            block(Kind::RustPanic, RUST_SECOND_PANIC),
            line(""),
        ]
    );
}

#[test]
fn reports_right_after_one_another_stay_apart() {
    let input = format!("{PYTHON_CONTEXT}\n{JAVA}\n{GO_RECOVERED}\n{RUST_PANIC}");
    assert_eq!(
        group(&input),
        [
            block(Kind::PythonTraceback, PYTHON_CONTEXT),
            block(Kind::JavaException, JAVA),
            block(Kind::GoPanic, GO_RECOVERED),
            block(Kind::RustPanic, RUST_PANIC),
        ]
    );
}

#[test]
fn a_traceback_after_a_log_line_starts_at_traceback() {
    let input = "ERROR:root:parse failed\nTraceback (most recent call last):\n  File \"<string>\", line 5, in <module>\nValueError: invalid literal for int() with base 10: 'z'\nafter";
    let out = group(input);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], line("ERROR:root:parse failed"));
    assert!(
        matches!(&out[1], Output::Block(b) if b.lines == 3 && b.message == PY_TRACEBACK),
        "{out:?}"
    );
    assert_eq!(out[2], line("after"));
}

#[test]
fn a_json_line_ends_a_report_and_is_still_parsed() {
    let input = format!(
        "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\n{JSON_LINE}\n{RUST_PANIC}\n{JSON_LINE}"
    );
    let out = group(&input);
    assert_eq!(
        out,
        [
            block(
                Kind::PythonTraceback,
                "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>"
            ),
            line(JSON_LINE),
            block(Kind::RustPanic, RUST_PANIC),
            line(JSON_LINE),
        ]
    );
    let Some(Output::Line(json_line)) = out.last() else {
        panic!("{out:?}");
    };
    let record = parse(json_line);
    assert_eq!(record.level, Level::Warn);
    assert_eq!(record.message, "cache miss");
    assert_eq!(record.fields, Some(json!({"key": "deps-9f2c"})));
}

#[test]
fn a_lone_start_line_is_a_plain_line() {
    let input = "panic: not really\nError: connection refused, retrying\nfatal error: x.h: No such file or directory\ncompilation terminated.\nTypeError: x\n\nnext";
    assert_eq!(
        group(input),
        input.split('\n').map(line).collect::<Vec<_>>()
    );
}

#[test]
fn blank_lines_join_only_when_a_continuation_follows() {
    let input = "Error: x\n    detail\n\n\n\nafter";
    assert_eq!(
        group(input),
        [
            block(Kind::Exception, "Error: x\n    detail"),
            line(""),
            line(""),
            line(""),
            line("after"),
        ]
    );
    // The trailing blank line after a Python exception stays out too.
    let input = format!("{PYTHON_CAUSE}\n\nafter");
    assert_eq!(
        group(&input),
        [
            block(Kind::PythonTraceback, PYTHON_CAUSE),
            line(""),
            line("after")
        ]
    );
}

#[test]
fn long_reports_are_cut_into_bounded_records() {
    // A JVM stack overflow: 1024 frames.
    let frames: usize = 1024;
    let mut input = String::from("Exception in thread \"main\" java.lang.StackOverflowError");
    for _ in 0..frames {
        input.push_str("\n\tat com.example.Deep.recurse(Deep.java:7)");
    }
    input.push_str("\nafter");
    let out = group(&input);
    assert_eq!(out.last(), Some(&line("after")));
    let parts: Vec<&Block> = out
        .iter()
        .filter_map(|o| match o {
            Output::Block(b) => Some(b),
            Output::Line(_) => None,
        })
        .collect();
    assert_eq!(parts.len(), (frames + 1).div_ceil(MAX_BLOCK_LINES));
    assert_eq!(parts.iter().map(|b| b.lines).sum::<usize>(), frames + 1);
    for (i, part) in parts.iter().enumerate() {
        assert!(part.lines <= MAX_BLOCK_LINES);
        assert_eq!(part.kind, Kind::JavaException);
        let first = i == 0;
        let last = i + 1 == parts.len();
        assert_eq!(part.text.ends_with(CUT_MARKER), !last);
        assert_eq!(part.text.starts_with(CONTINUED_MARKER), !first);
        if first {
            assert_eq!(
                part.message,
                "Exception in thread \"main\" java.lang.StackOverflowError"
            );
        } else {
            assert_eq!(
                part.message,
                format!(
                    "Exception in thread \"main\" java.lang.StackOverflowError …[continued, part {}]",
                    i + 1
                )
            );
        }
    }

    // Long lines: the byte bound cuts first.
    let mut input = String::from(PY_TRACEBACK);
    for i in 0..40 {
        input.push_str(&format!(
            "\n  File \"gen.py\", line {i}, in f\n    {}",
            "x".repeat(MAX_LINE)
        ));
    }
    input.push_str("\nMemoryError");
    let out = group(&input);
    assert!(out.len() > 1);
    let mut lines = 0;
    for o in &out {
        let Output::Block(b) = o else {
            panic!("{o:?}");
        };
        assert!(b.text.len() <= MAX_BLOCK_BYTES, "{}", b.text.len());
        lines += b.lines;
    }
    assert_eq!(lines, 1 + 40 * 2 + 1);
}
