//! What the daemon observes of real plugin processes: the lines they write,
//! through the tracing layer into the log book, and their process group's
//! memory and CPU.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Duration;

use outboard_daemon::logs::{LogBook, LogLine};
use outboard_daemon::usage::Sampler;
use outboard_host::{Plugin, Stream};
use outboard_test_support::Sandbox;
use tokio::sync::broadcast;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

/// The book every test of this binary records into, installed as the
/// process's subscriber beside a terminal layer that shows nothing.
fn book() -> &'static LogBook {
    static BOOK: OnceLock<LogBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        let book = LogBook::default();
        let terminal = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::EnvFilter::new("off"));
        let subscriber = tracing_subscriber::registry()
            .with(terminal)
            .with(book.layer());
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        book
    })
}

/// The next line whose message is `message`, within 10 s.
async fn line_saying(follow: &mut broadcast::Receiver<LogLine>, message: &str) -> LogLine {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = follow.recv().await.expect("the plugin's log goes on");
            if &*line.message == message {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line {message:?} within 10 s"))
}

#[tokio::test]
async fn a_plugins_json_line_lands_in_the_book_with_its_fields() {
    let book = book();
    let sandbox = Sandbox::new();
    let spec = sandbox.broken("junk-then-ok");
    let (before, mut follow) = book.follow(&spec.name, None, None);
    assert!(before.is_empty());
    let plugin = Plugin::start(&spec).await.expect("starts");

    let ready = line_saying(&mut follow, "ready").await;
    assert_eq!(&*ready.plugin, "broken-junk-then-ok");
    assert_eq!(ready.stream, Stream::Stderr);
    assert_eq!(ready.level_name(), "info");
    let fields: serde_json::Value = serde_json::from_str(ready.fields.as_deref().unwrap()).unwrap();
    assert_eq!(fields, serde_json::json!({"answer": 42}));
    // What follow brought is what read finds.
    let read = book.read(&spec.name, None, None);
    assert!(read.contains(&ready), "{read:#?}");

    plugin.stop().await;
    sandbox.assert_empty();
}

#[tokio::test]
async fn the_lines_of_a_plugin_that_fails_to_start_stay_readable() {
    let book = book();
    let sandbox = Sandbox::new();
    let spec = sandbox.broken("exit-early");
    let (_, mut follow) = book.follow(&spec.name, None, None);
    Plugin::start(&spec)
        .await
        .expect_err("exits before its handshake");

    line_saying(&mut follow, "fatal: cannot open /nonexistent/broken.toml").await;
    let lines = book.read(&spec.name, None, None);
    let said: Vec<(u64, &str)> = lines.iter().map(|l| (l.sequence, &*l.message)).collect();
    assert_eq!(
        said,
        [
            (1, "starting up"),
            (2, "reading config"),
            (3, "fatal: cannot open /nonexistent/broken.toml")
        ]
    );
    assert!(lines.iter().all(|l| l.stream == Stream::Stderr));
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_plugins_forked_child_counts_in_its_group() {
    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("forks-grandchild"))
        .await
        .expect("starts");
    let group = plugin.pid();
    let mut sampler = Sampler::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let usage = loop {
        let usage = sampler.sample(&[group]).expect("sample /proc");
        let found = usage.get(&group).copied();
        if found.is_some_and(|g| g.processes >= 2) || std::time::Instant::now() > deadline {
            break found.expect("the plugin's group is live");
        }
        tokio::task::yield_now().await;
    };
    // The plugin and its `sleep 300`.
    assert!(usage.processes >= 2, "{usage:?}");
    assert!(usage.rss_bytes > 1 << 20, "{usage:?}");
    plugin.stop().await;
    // Stopping the plugin takes its group with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sampler
        .sample(&[group])
        .expect("sample /proc")
        .contains_key(&group)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the group outlived its plugin"
        );
        tokio::task::yield_now().await;
    }
    sandbox.assert_empty();
}

#[test]
fn the_layer_records_plugin_lines_whatever_the_terminal_shows() {
    const PLUGIN: &str = "layer-lines";
    let book = book();
    tracing::trace!(target: "outboard::plugin", plugin = PLUGIN, stream = "stdout", "quiet one");
    tracing::warn!(
        target: "outboard::plugin",
        plugin = PLUGIN,
        stream = "stderr",
        fields = %r#"{"elapsed_ms":12}"#,
        "slow {}",
        "call"
    );
    tracing::error!(
        target: "outboard::plugin",
        plugin = PLUGIN,
        stream = "stderr",
        kind = "rust-panic",
        lines = 2usize,
        block = %"thread 'main' panicked\nnote: run with RUST_BACKTRACE=1",
        "thread 'main' panicked"
    );
    // Not plugin lines: the host's own records, and its notes about a
    // plugin's output that carry no stream.
    tracing::info!(plugin = PLUGIN, stream = "stderr", "the host's own");
    tracing::debug!(target: "outboard::plugin", plugin = PLUGIN, "reading stderr: closed");
    let lines = book.read(PLUGIN, None, None);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        lines.iter().map(|l| l.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    assert_eq!(lines[0].stream, Stream::Stdout);
    assert_eq!(lines[0].level_name(), "trace");
    assert_eq!(&*lines[0].message, "quiet one");
    assert_eq!(lines[0].fields, None);

    assert_eq!(lines[1].level_name(), "warn");
    assert_eq!(&*lines[1].message, "slow call");
    assert_eq!(lines[1].fields.as_deref(), Some(r#"{"elapsed_ms":12}"#));

    assert_eq!(lines[2].level_name(), "error");
    let report: serde_json::Value =
        serde_json::from_str(lines[2].fields.as_deref().unwrap()).unwrap();
    assert_eq!(report["kind"], "rust-panic");
    assert_eq!(report["lines"], 2);
    assert_eq!(
        report["block"],
        "thread 'main' panicked\nnote: run with RUST_BACKTRACE=1"
    );
}

#[test]
fn fields_that_are_not_json_are_kept_as_text() {
    const PLUGIN: &str = "layer-odd-fields";
    let book = book();
    tracing::info!(
        target: "outboard::plugin",
        plugin = PLUGIN,
        stream = "stderr",
        fields = %r#"{"k":"a\u{9b}b"}"#,
        "odd"
    );
    let lines = book.read(PLUGIN, None, None);
    let fields: serde_json::Value =
        serde_json::from_str(lines[0].fields.as_deref().unwrap()).unwrap();
    assert_eq!(fields["text"], r#"{"k":"a\u{9b}b"}"#);
}
