//! Log lines on stderr: the host's and, through it, the plugins' own; and,
//! for the daemon, every plugin line kept in a [`LogBook`] for
//! `outboard logs`.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::OnceLock;

use outboard_daemon::logs::LogBook;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::args::LogFormat;
use crate::telemetry::{self, Telemetry};

/// The book the daemon's plugins write into, when [`init`] was asked to
/// keep their lines.
static LOG_BOOK: OnceLock<LogBook> = OnceLock::new();

/// Installs the global subscriber: plugins' output at info and the host's
/// at warn by default, more with each `-v`; `RUST_LOG` overrides both.
/// With `keep_plugin_logs` (the daemon), every plugin line is also kept in
/// the [`log_book`], at every level, whatever the terminal shows. When the
/// environment asks for traces, the host's spans are exported too (see
/// `telemetry`): the pipeline returned must be shut down before exit. Runs
/// inside the Tokio runtime (the exporter's connection lives on it).
pub(crate) fn init(verbose: u8, format: LogFormat, keep_plugin_logs: bool) -> Option<Telemetry> {
    let default = match verbose {
        0 => "outboard::plugin=info,warn",
        1 => "info",
        _ => "debug,h2=info,tower=info,hyper_util=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        // Spans meant for a trace never show in a log line, whatever
        // RUST_LOG says: the terminal reads the same with traces on or off,
        // and with no trace layer they are disabled callsites.
        .add_directive(
            format!("{}=off", outboard_host::trace::TARGET)
                .parse()
                .expect("a target and a level make a directive"),
        );
    // The filter belongs to the terminal's layer, not to the subscriber:
    // a global one would hide from the book what the terminal does not show.
    let colour = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let terminal = match format {
        LogFormat::Text => terminal.compact().with_filter(filter).boxed(),
        LogFormat::Json => terminal
            .json()
            .flatten_event(true)
            .with_filter(filter)
            .boxed(),
    };
    // Every layer carries its own filter, and none is an absent `Option`
    // (which would count as a layer wanting everything): a callsite no
    // filter wants, a trace span without a trace layer say, is disabled
    // once and for all.
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![terminal];
    if keep_plugin_logs {
        layers.push(LOG_BOOK.get_or_init(LogBook::default).layer().boxed());
    }
    let (telemetry, refused) = match telemetry::start() {
        Ok(Some((layer, telemetry))) => {
            layers.push(layer.boxed());
            (Some(telemetry), None)
        }
        Ok(None) => (None, None),
        Err(why) => (None, Some(why)),
    };
    // Fails only if a subscriber is already installed; the first one stays.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(why) = refused {
        tracing::warn!("{why}");
    }
    if telemetry.is_some()
        && let Some(warning) = telemetry::protocol_warning(|key| std::env::var(key).ok())
    {
        tracing::warn!("{warning}");
    }
    telemetry
}

/// Whether log lines on stderr are coloured: only on a terminal, and not
/// when `NO_COLOR` is set to anything but the empty string (a file, a
/// pipe or a journal would get escape sequences as text).
fn colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The plugins' recent lines, for the control API's `GetLogs`; `None`
/// unless [`init`] was asked to keep them.
pub(crate) fn log_book() -> Option<LogBook> {
    LOG_BOOK.get().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn the_daemon_keeps_plugin_lines_the_terminal_does_not_show() {
        // The only test of this binary that installs the subscriber.
        let _telemetry = init(0, LogFormat::Text, true);
        // Below the terminal's default level for plugin lines.
        tracing::trace!(target: "outboard::plugin", plugin = "quiet", stream = "stderr", "kept");
        let book = log_book().expect("init was asked to keep plugin lines");
        let lines = book.read("quiet", None, None);
        assert_eq!(
            lines.iter().map(|l| &*l.message).collect::<Vec<_>>(),
            ["kept"]
        );
        // With no trace exporter, no layer wants the host's trace spans:
        // their callsites are disabled, whatever level they are at.
        let span = tracing::error_span!(target: outboard_host::trace::TARGET, "outboard.job");
        assert!(span.is_disabled());
    }
}
