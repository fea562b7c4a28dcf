//! What a careless operator or an unlucky machine can hand the loader:
//! values out of bounds, huge files, files that are not files, NUL bytes,
//! symlinked configs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;
use std::thread;

use super::*;

/// A `[[plugin]]` table for `bin/plug` with `extra` lines at line 4 on.
fn plugin_with(extra: &str) -> String {
    format!("[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\n{extra}\n")
}

/// `(key = value as written, the message's tail)` for every bound of every
/// duration and count, each rejected at line 4 with the field named.
const OUT_OF_BOUNDS: &[(&str, &str)] = &[
    (
        "handshake_timeout = \"300000000000y\"",
        "handshake_timeout \"300000000000y\" is longer than the maximum, 1h",
    ),
    (
        "handshake_timeout = \"999us\"",
        "handshake_timeout \"999us\" is shorter than the minimum, 1ms",
    ),
    (
        "call_timeout = \"61m\"",
        "call_timeout \"61m\" is longer than the maximum, 1h",
    ),
    (
        "call_timeout = \"1ns\"",
        "call_timeout \"1ns\" is shorter than the minimum, 1ms",
    ),
    (
        "stop_grace = \"2h\"",
        "stop_grace \"2h\" is longer than the maximum, 1h",
    ),
    (
        "health_interval = \"1ns\"",
        "health_interval \"1ns\" is shorter than the minimum, 100ms",
    ),
    (
        "health_interval = \"99ms\"",
        "health_interval \"99ms\" is shorter than the minimum, 100ms",
    ),
    (
        "health_interval = \"300000000000y\"",
        "health_interval \"300000000000y\" is longer than the maximum, 1h",
    ),
    (
        "health_misses = 101",
        "health_misses 101 is more than the maximum, 100",
    ),
    ("health_misses = 0", "health_misses must be at least 1"),
    (
        "backoff_initial = \"1us\"",
        "backoff_initial \"1us\" is shorter than the minimum, 1ms",
    ),
    (
        "backoff_max = \"1day\"",
        "backoff_max \"1day\" is longer than the maximum, 1h",
    ),
    (
        "backoff_reset_after = \"999ms\"",
        "backoff_reset_after \"999ms\" is shorter than the minimum, 1s",
    ),
    (
        "backoff_reset_after = \"25h\"",
        "backoff_reset_after \"25h\" is longer than the maximum, 1day",
    ),
    (
        "crash_loop_starts = 4294967295",
        "crash_loop_starts 4294967295 is more than the maximum, 100",
    ),
    (
        "crash_loop_starts = 0",
        "crash_loop_starts must be at least 1",
    ),
    (
        "crash_loop_window = \"10ms\"",
        "crash_loop_window \"10ms\" is shorter than the minimum, 1s",
    ),
    (
        "crash_loop_window = \"300000000000y\"",
        "crash_loop_window \"300000000000y\" is longer than the maximum, 1day",
    ),
];

#[test]
fn every_duration_and_count_is_bounded_at_load() {
    let dir = fixture();
    for (line, tail) in OUT_OF_BOUNDS {
        let err = load_err(dir.path(), &plugin_with(line));
        assert!(err.ends_with(&format!(":4: plugin \"a\": {tail}")), "{err}");
    }
    // The bounds themselves are accepted.
    let path = write_config(
        dir.path(),
        &plugin_with(
            "handshake_timeout = \"1ms\"\ncall_timeout = \"1h\"\nstop_grace = \"0s\"\n\
             health_interval = \"100ms\"\nhealth_misses = 100\nbackoff_initial = \"1ms\"\n\
             backoff_max = \"1h\"\nbackoff_reset_after = \"1s\"\ncrash_loop_starts = 100\n\
             crash_loop_window = \"24h\"",
        ),
    );
    let cfg = load(&path).expect("bounds are inclusive");
    let s = &cfg.plugins[0].supervision;
    assert_eq!(s.health_interval, Duration::from_millis(100));
    assert_eq!(s.crash_loop_window, Duration::from_secs(24 * 3600));
}

#[test]
fn phase_defaults_and_subscription_values_are_bounded() {
    let dir = fixture();
    let cases = [
        (
            "[defaults]\n\ncall_timeout = \"300000000000y\"\n",
            ":3: defaults: call_timeout \"300000000000y\" is longer than the maximum, 1h",
        ),
        (
            "[phases.submit]\n\ntimeout = \"1ns\"\n",
            ":3: phase \"submit\": timeout \"1ns\" is shorter than the minimum, 1ms",
        ),
        (
            "[phases.submit]\ntimeout = \"2h\"\n",
            ":2: phase \"submit\": timeout \"2h\" is longer than the maximum, 1h",
        ),
    ];
    for (text, tail) in cases {
        let err = load_err(dir.path(), text);
        assert!(err.ends_with(tail), "{err}");
    }
    let sub = |lines: &str| plugin_with(&format!("[plugin.subscriptions.submit]\n{lines}"));
    let cases = [
        (
            "timeout = \"300000000000y\"",
            "subscriptions.submit.timeout \"300000000000y\" is longer than the maximum, 1h",
        ),
        (
            "retry_attempts = 11",
            "subscriptions.submit.retry_attempts 11 is more than the maximum, 10",
        ),
        (
            "retry_attempts = 0",
            "subscriptions.submit.retry_attempts must be at least 1 (attempts in all, the first included)",
        ),
        (
            "retry_attempts = 2\nretry_backoff = \"2m\"",
            "subscriptions.submit.retry_backoff \"2m\" is longer than the maximum, 1m",
        ),
    ];
    for (lines, tail) in cases {
        let err = load_err(dir.path(), &sub(lines));
        assert!(err.contains(":5: plugin \"a\": ") || err.contains(":6: plugin \"a\": "));
        assert!(err.ends_with(tail), "{err}");
    }
}

#[test]
fn sixteen_thousand_tables_load_with_logarithmic_line_lookups() {
    const TABLES: usize = 16_000;
    let dir = fixture();
    let mut text = String::new();
    for i in 0..TABLES {
        text.push_str(&format!(
            "[[plugin]]\nname = \"p{i}\"\ncommand = \"bin/plug\"\n"
        ));
    }
    let path = write_config(dir.path(), &text);
    schema::probes::take();
    let cfg = load(&path).expect("valid config");
    assert_eq!(cfg.plugins.len(), TABLES);
    // One lookup per table (its name's line), each a binary search over
    // 48,000 line starts: 16 comparisons, not tens of thousands.
    let probes = schema::probes::take();
    assert!(probes <= (TABLES * 17) as u64, "{probes} comparisons");
    assert!(probes >= TABLES as u64, "{probes}: every table looked up");
}

/// Runs `f` on a thread; fails instead of hanging if it blocks.
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("loading blocked")
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    let err = within_seconds(move || load(&fifo).expect_err("a FIFO").to_string());
    assert!(
        err.ends_with("fifo.toml: it is a FIFO, not a regular file"),
        "{err}"
    );
    let err = within_seconds(|| load("/dev/zero").expect_err("a device").to_string());
    assert_eq!(
        err,
        "cannot read /dev/zero: it is a character device, not a regular file"
    );
    let err = load(dir.path()).expect_err("a directory").to_string();
    assert!(
        err.ends_with("it is a directory, not a regular file"),
        "{err}"
    );
    let big = dir.path().join("big.toml");
    let comment = format!("# {}\n", "x".repeat(1021));
    fs::write(&big, comment.repeat(4 * 1024 + 1)).expect("write");
    let err = load(&big).expect_err("too large").to_string();
    assert!(
        err.ends_with("big.toml: it is larger than 4 MiB, the most a config file may hold"),
        "{err}"
    );
    let exact = dir.path().join("exact.toml");
    fs::write(&exact, comment.repeat(4 * 1024)).expect("write");
    load(&exact).expect("4 MiB exactly is accepted");
    let latin1 = dir.path().join("latin1.toml");
    fs::write(&latin1, b"# caf\xe9\n").expect("write");
    let err = load(&latin1).expect_err("not UTF-8").to_string();
    assert!(err.ends_with("not UTF-8 text (at byte 5)"), "{err}");
}

#[test]
fn an_unreadable_plugin_toml_is_an_error_not_a_skip() {
    let root = tempfile::tempdir().expect("temp dir");
    let folder = root.path().join("piped");
    fs::create_dir(&folder).expect("mkdir");
    let file = folder.join(PLUGIN_FILE_NAME);
    mkfifo(&file);
    let dirs = vec![root.path().to_owned()];
    let err = within_seconds(move || discover(&dirs).expect_err("a FIFO").to_string());
    assert!(
        err.ends_with("piped/plugin.toml: it is a FIFO, not a regular file"),
        "{err}"
    );
    fs::remove_file(&file).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &file).expect("symlink");
    let err = discover(&[root.path().to_owned()])
        .expect_err("a device")
        .to_string();
    assert!(err.contains("character device"), "{err}");
    // A folder without one is still simply not a plugin.
    fs::remove_file(&file).expect("rm");
    assert!(discover(&[root.path().to_owned()]).expect("ok").is_empty());
}

#[test]
fn nul_bytes_in_args_and_env_are_file_line_errors() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        &plugin_with("args = [\"ok\",\n  \"a\\u0000b\"]"),
    );
    assert!(
        err.ends_with(":4: plugin \"a\": args[1] contains a NUL byte"),
        "{err}"
    );
    let err = load_err(
        dir.path(),
        &plugin_with("env = { TOKEN = \"hunter2\\u0000\" }"),
    );
    assert!(
        err.ends_with(":4: plugin \"a\": env.TOKEN has a value that contains a NUL byte"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the value is not echoed: {err}");
    let err = load_err(dir.path(), &plugin_with("env = { \"A\\u0000B\" = \"x\" }"));
    assert!(
        err.ends_with(
            ":4: plugin \"a\": env.A\\0B is not a valid variable name (empty, or contains '=' or NUL)"
        ),
        "{err}"
    );
}

#[test]
fn a_symlinked_config_resolves_relative_to_its_target() {
    let real = fixture();
    let path = write_config(
        real.path(),
        "[[plugin]]\nname = \"a\"\ncommand = \"bin/plug\"\nworking_dir = \"bin\"\n",
    );
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let link = elsewhere.path().join("linked.toml");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let cfg = load(&link).expect("resolves in the target's directory");
    let base = fs::canonicalize(real.path()).expect("canonical");
    assert_eq!(cfg.plugins[0].command, base.join("bin/plug"));
    assert_eq!(cfg.plugins[0].working_dir, Some(base.join("bin")));
    // Errors still name the file as it was given.
    fs::write(&path, "[[plugin]]\nname = \"a\"\ncommand = \"bin/nope\"\n").expect("write");
    let err = load(&link).expect_err("missing").to_string();
    assert!(err.starts_with(&format!("{}:3: ", link.display())), "{err}");
}

/// `config = { x = { a = ... } }` with `tables` tables under `x`.
fn nested_config(tables: usize) -> String {
    let inner = format!("{}1{}", "{ a = ".repeat(tables), " }".repeat(tables));
    plugin_with(&format!("config = {{ x = {inner} }}"))
}

#[test]
fn config_depth_is_bounded_to_what_a_plugin_can_decode() {
    use prost::Message;

    let dir = fixture();
    // x holds 31 tables: the deepest keys are 32 levels down.
    let path = write_config(dir.path(), &nested_config(31));
    let cfg = load(&path).expect("32 levels are accepted");
    let request = outboard_proto::v1::ConfigureRequest {
        config: Some(outboard_proto::json::json_to_struct(&cfg.plugins[0].config)),
        ..Default::default()
    };
    let bytes = request.encode_to_vec();
    outboard_proto::v1::ConfigureRequest::decode(bytes.as_slice())
        .expect("a plugin can decode the deepest config accepted");
    let err = load_err(dir.path(), &nested_config(32));
    assert!(
        err.contains(":4: plugin \"a\": config /x/a/a")
            && err.ends_with(
                "is nested too deep: more than 96 protobuf message levels (an object costs 3, \
                 an array 2), more than a plugin can decode"
            ),
        "{err}"
    );
    let arrays = plugin_with(&format!(
        "config = {{ x = {}1{} }}",
        "[".repeat(47),
        "]".repeat(47)
    ));
    let err = load_err(dir.path(), &arrays);
    assert!(err.contains("config /x/0/0"), "{err}");
}

#[test]
fn a_toml_error_does_not_quote_the_line() {
    let dir = fixture();
    let err = load_err(
        dir.path(),
        &plugin_with("env = { API_TOKEN = \"hunter2\", PORT = 8080 }"),
    );
    assert!(
        err.ends_with(":4:39: PORT: invalid type: integer `8080`, expected a string"),
        "{err}"
    );
    let err = load_err(dir.path(), &plugin_with("env = { API_TOKEN = \"hunter2 }"));
    assert!(err.contains(":4:"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
