//! Crash reports as the runtimes write them, and helpers to group them.

use super::{Block, Grouper, Kind, Output};

// Go 1.26, OpenJDK 17, Node.js 20), without the final line break.

pub(crate) const RUST_PANIC: &str = r#"thread 'main' (4144) panicked at src/main.rs:4:21:
index out of bounds: the len is 0 but the index is 3
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"#;

/// Before Rust 1.73 the message was on the first line.
pub(crate) const RUST_PANIC_OLD: &str = r#"thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/main.rs:10:37
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"#;

pub(crate) const RUST_PANIC_BACKTRACE: &str = r#"thread '<unnamed>' (4003) panicked at src/worker.rs:3:29:
assertion `left == right` failed: values differ
  left: 1
 right: 2
stack backtrace:
   0: __rustc::rust_begin_unwind
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/panicking.rs:689:5
   1: core::panicking::panic_fmt
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:80:14
   2: core::panicking::assert_failed_inner
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:434:23
   3: core::panicking::assert_failed::<i32, i32>
             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:394:5
   4: worker::main::{{closure}}
             at ./src/worker.rs:3:29
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace."#;

/// Only the first panic of a process gets the note.
pub(crate) const RUST_SECOND_PANIC: &str = r#"thread 'main' (4144) panicked at src/main.rs:4:21:
index out of bounds: the len is 0 but the index is 3"#;

pub(crate) const PYTHON_CAUSE: &str = r#"Traceback (most recent call last):
  File "/srv/plugin/main.py", line 4, in load
    return json.loads(s)
           ^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/decoder.py", line 353, in raw_decode
    obj, end = self.scan_once(s, idx)
               ^^^^^^^^^^^^^^^^^^^^^^
json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/plugin/main.py", line 9, in <module>
    main()
  File "/srv/plugin/main.py", line 8, in main
    load("{oops")
  File "/srv/plugin/main.py", line 6, in load
    raise RuntimeError("bad config") from e
RuntimeError: bad config"#;

pub(crate) const PYTHON_CONTEXT: &str = r#"Traceback (most recent call last):
  File "/srv/plugin/main.py", line 4, in <module>
  File "/srv/plugin/main.py", line 2, in f
ZeroDivisionError: division by zero

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/plugin/main.py", line 6, in <module>
KeyError: 'k'"#;

pub(crate) const PYTHON_GROUP: &str = r#"  + Exception Group Traceback (most recent call last):
  |   File "/srv/plugin/main.py", line 4, in <module>
  |   File "/srv/plugin/main.py", line 3, in f
  | ExceptionGroup: two failures (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: x
    +---------------- 2 ----------------
    | TypeError: y
    +------------------------------------"#;

/// From `go run`, which adds the exit status.
pub(crate) const GO_NIL: &str = concat!(
    "panic: runtime error: invalid memory address or nil pointer dereference\n",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x49e198]\n",
    "\n",
    "goroutine 1 [running]:\n",
    "main.(*T).get(...)\n",
    "\t/srv/plugin/main.go:7\n",
    "main.main()\n",
    "\t/srv/plugin/main.go:13 +0x58\n",
    "exit status 2",
);

pub(crate) const GO_RECOVERED: &str = concat!(
    "panic: runtime error: index out of range [5] with length 0 [recovered]\n",
    "\tpanic: again\n",
    "\n",
    "goroutine 1 [running]:\n",
    "main.main.func1()\n",
    "\t/srv/plugin/main.go:8 +0x4b\n",
    "panic({0x48adc0?, 0x1709aa390078?})\n",
    "\t/usr/local/go/src/runtime/panic.go:860 +0x13a\n",
    "main.main()\n",
    "\t/srv/plugin/main.go:12 +0x30",
);

pub(crate) const GO_DEADLOCK: &str = concat!(
    "fatal error: all goroutines are asleep - deadlock!\n",
    "\n",
    "goroutine 1 [chan receive]:\n",
    "main.main()\n",
    "\t/srv/plugin/main.go:5 +0x25\n",
    "\n",
    "goroutine 6 [select]:\n",
    "main.worker(0xc000012345)\n",
    "\t/srv/plugin/worker.go:21 +0x8a\n",
    "created by main.main in goroutine 1\n",
    "\t/srv/plugin/main.go:4 +0x1d",
);

pub(crate) const JAVA: &str = concat!(
    "Exception in thread \"main\" java.lang.IllegalStateException: cannot start\n",
    "\tat com.example.Main.start(Main.java:5)\n",
    "\tat com.example.Main.main(Main.java:7)\n",
    "Caused by: java.io.FileNotFoundException: /etc/plugin.conf (No such file or directory)\n",
    "\tat com.example.Main.load(Main.java:3)\n",
    "\t... 2 more",
);

/// `Throwable.printStackTrace()`.
pub(crate) const JAVA_PRINTED: &str = concat!(
    "java.io.FileNotFoundException: /etc/plugin.conf (No such file or directory)\n",
    "\tat java.base/java.io.FileInputStream.open0(Native Method)\n",
    "\tat java.base/java.io.FileInputStream.open(FileInputStream.java:216)\n",
    "\tat com.example.Main.main(Main.java:3)",
);

pub(crate) const NODE: &str = r#"TypeError: x is not a function
    at f (/srv/plugin/index.js:1:21)
    at Object.<anonymous> (/srv/plugin/index.js:3:1)
    at Module._compile (node:internal/modules/cjs/loader:1364:14)
    at node:internal/main/run_main_module:28:49"#;

/// `fn main() -> anyhow::Result<()>` returning an error.
pub(crate) const RUST_MAIN_ERROR: &str = r#"Error: cannot load /etc/outboard/plugin.toml

Caused by:
    0: reading /etc/outboard/plugin.toml
    1: No such file or directory (os error 2)"#;

pub(crate) const SAMPLES: [(Kind, &str); 13] = [
    (Kind::RustPanic, RUST_PANIC),
    (Kind::RustPanic, RUST_PANIC_OLD),
    (Kind::RustPanic, RUST_PANIC_BACKTRACE),
    (Kind::RustPanic, RUST_SECOND_PANIC),
    (Kind::PythonTraceback, PYTHON_CAUSE),
    (Kind::PythonTraceback, PYTHON_CONTEXT),
    (Kind::PythonTraceback, PYTHON_GROUP),
    (Kind::GoPanic, GO_RECOVERED),
    (Kind::GoPanic, GO_DEADLOCK),
    (Kind::JavaException, JAVA),
    (Kind::Exception, JAVA_PRINTED),
    (Kind::Exception, NODE),
    (Kind::Exception, RUST_MAIN_ERROR),
];

pub(crate) const JSON_LINE: &str = r#"{"level":"warn","msg":"cache miss","key":"deps-9f2c"}"#;

/// Feeds `input` line by line, then ends it.
pub(crate) fn group(input: &str) -> Vec<Output> {
    let mut grouper = Grouper::default();
    let mut out = Vec::new();
    for line in input.split('\n') {
        out.extend(grouper.feed(line.to_owned()));
    }
    out.extend(grouper.flush());
    out
}

pub(crate) fn line(text: &str) -> Output {
    Output::Line(text.to_owned())
}

pub(crate) fn block(kind: Kind, text: &str) -> Output {
    Output::Block(Block {
        kind,
        message: text.split('\n').next().unwrap_or_default().to_owned(),
        text: text.to_owned(),
        lines: text.split('\n').count(),
    })
}
