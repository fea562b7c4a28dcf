//! The plugins' recent log lines, kept per plugin for `outboard logs`.
//!
//! Every line a plugin writes becomes a tracing event of the host (target
//! `outboard::plugin`, see `outboard_host`'s output module); a [`LogLayer`]
//! installed beside the terminal's layer hands each to the [`LogBook`],
//! with a filter of its own, so every line is kept whatever `RUST_LOG`
//! shows on the terminal. Each plugin has a ring bounded in lines and in
//! bytes ([`Limits`]); the oldest lines go first, and a line numbered by
//! the plugin's own sequence shows where lines were dropped.
//!
//! A reader takes the last lines, or those since a time
//! ([`LogBook::read`]); a follower takes them and a receiver of every new
//! line under one lock ([`LogBook::follow`]), so no line falls between the
//! two. A follower that falls behind its channel's capacity is told how
//! many lines it missed (`RecvError::Lagged`), and the sequence numbers
//! show the same gap.
//!
//! A plugin's lines stay after it is removed, until [`LogBook::forget`];
//! so do its counts of lines recorded and dropped ([`LogBook::counts`]),
//! which `outboard status` and the metrics show.
//!
//! # Layout
//!
//! - this file: [`LogBook`], [`LogLine`], [`Limits`].
//! - `ring`: one plugin's bounded ring, a pure data structure.
//! - `layer`: [`LogLayer`], the tracing layer that feeds the book.

mod layer;
mod ring;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use outboard_host::Stream;
use tokio::sync::broadcast;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::registry::LookupSpan;

pub use layer::LogLayer;

use ring::Ring;

/// The smallest byte bound a ring takes: room for a line's overhead and a
/// cut marker, with some text.
pub const MIN_BYTES: usize = 1024;

/// One line a plugin wrote, as the host recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The plugin that wrote it.
    pub plugin: Arc<str>,
    /// One more than the plugin's previous line's, from 1; a gap means the
    /// ring (or a lagging follower) dropped the lines in between.
    pub sequence: u64,
    /// When the host read it.
    pub time: SystemTime,
    /// The stream it came from.
    pub stream: Stream,
    /// The line's own level for a JSON line (error for a crash report),
    /// else info.
    pub level: tracing::Level,
    /// Its text, control characters escaped as the host logs them (a crash
    /// report's first line; its whole text is in `fields`).
    pub message: Arc<str>,
    /// A JSON line's other keys, or a crash report's `kind`, `lines` and
    /// `block`, as the text of one JSON object; `None` for a plain line.
    pub fields: Option<Arc<str>>,
}

impl LogLine {
    /// The level's name in lower case, as the control API sends it.
    pub fn level_name(&self) -> &'static str {
        match self.level {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        }
    }
}

/// How many lines of a plugin the book has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogCounts {
    /// Lines recorded (the last line's sequence number).
    pub lines: u64,
    /// Of those, lines evicted from the ring to keep within its line and
    /// byte bounds ([`Limits`]): recorded, but no longer readable. A line
    /// cut to fit is not dropped.
    pub dropped: u64,
}

/// How much of each plugin's output the book keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lines kept per plugin (at least 1).
    pub lines: usize,
    /// Bytes kept per plugin, counting each line's text and a fixed
    /// overhead (at least [`MIN_BYTES`]); a longer line is cut to fit.
    pub bytes: usize,
    /// New lines a follower may fall behind by before it misses some.
    pub follow_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lines: 1000,
            bytes: 1024 * 1024,
            follow_buffer: 256,
        }
    }
}

/// Every plugin's recent lines. Cheap to clone: the clones share the book.
#[derive(Debug, Clone)]
pub struct LogBook {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: Limits,
    /// A plugin's log behind its own lock, so that plugins writing at once
    /// wait only for the map, never for each other's lines.
    plugins: RwLock<HashMap<Arc<str>, Arc<Mutex<PluginLog>>>>,
}

/// One plugin's ring and the channel to its followers.
#[derive(Debug)]
struct PluginLog {
    ring: Ring,
    followers: broadcast::Sender<LogLine>,
}

impl Default for LogBook {
    fn default() -> Self {
        LogBook::new(Limits::default())
    }
}

impl LogBook {
    /// An empty book keeping up to `limits` per plugin (raised to the
    /// minimums where below them).
    pub fn new(limits: Limits) -> LogBook {
        let limits = Limits {
            lines: limits.lines.max(1),
            bytes: limits.bytes.max(MIN_BYTES),
            follow_buffer: limits.follow_buffer.max(1),
        };
        LogBook {
            inner: Arc::new(Inner {
                limits,
                plugins: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// A tracing layer, with its own filter, that records every plugin
    /// line into this book whatever the other layers' filters let through.
    /// Install the terminal's `RUST_LOG` filter on the terminal's layer
    /// (`layer.with_filter(..)`), not globally, or it hides lines from the
    /// book too.
    pub fn layer<S>(&self) -> Filtered<LogLayer, Targets, S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        LogLayer::filtered(self.clone())
    }

    /// Records a line: numbered, stored (the oldest lines dropped to make
    /// room) and sent to the plugin's followers.
    pub fn record(&self, line: LogLine) {
        let log = self.log_of(&line.plugin);
        let mut log = lock(&log);
        let stored = log.ring.push(line);
        // No follower is no error: the line is in the ring.
        let _ = log.followers.send(stored);
    }

    /// `plugin`'s lines at or after `since` (every line if `None`), then
    /// only the last `lines` of them (all if `None`), oldest first. Empty
    /// for a plugin the book does not know.
    pub fn read(
        &self,
        plugin: &str,
        lines: Option<usize>,
        since: Option<SystemTime>,
    ) -> Vec<LogLine> {
        match self.existing(plugin) {
            Some(log) => lock(&log).ring.read(lines, since),
            None => Vec::new(),
        }
    }

    /// [`read`](Self::read), and a receiver of every line recorded after
    /// those: both taken under the plugin's lock, so none is missed or
    /// repeated. A receiver that falls behind by more than
    /// [`Limits::follow_buffer`] lines learns how many it missed. Following
    /// a plugin the book does not know yet waits for its first line.
    pub fn follow(
        &self,
        plugin: &str,
        lines: Option<usize>,
        since: Option<SystemTime>,
    ) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let log = self.log_of(plugin);
        let log = lock(&log);
        (log.ring.read(lines, since), log.followers.subscribe())
    }

    /// How many of `plugin`'s lines the book recorded and dropped; zeros
    /// for a plugin it does not know.
    pub fn counts(&self, plugin: &str) -> LogCounts {
        match self.existing(plugin) {
            Some(log) => lock(&log).ring.counts(),
            None => LogCounts::default(),
        }
    }

    /// Whether the book holds `plugin`'s log (it wrote, or was followed,
    /// since the book began or last forgot it).
    pub fn contains(&self, plugin: &str) -> bool {
        self.existing(plugin).is_some()
    }

    /// The plugins whose logs the book holds, in name order.
    pub fn plugins(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = read_map(&self.inner).keys().cloned().collect();
        names.sort();
        names
    }

    /// Drops `plugin`'s lines (for a plugin removed for good); its
    /// followers' streams end.
    pub fn forget(&self, plugin: &str) {
        write_map(&self.inner).remove(plugin);
    }

    fn existing(&self, plugin: &str) -> Option<Arc<Mutex<PluginLog>>> {
        read_map(&self.inner).get(plugin).cloned()
    }

    /// `plugin`'s log, made on first use.
    fn log_of(&self, plugin: &str) -> Arc<Mutex<PluginLog>> {
        if let Some(log) = self.existing(plugin) {
            return log;
        }
        let limits = self.inner.limits;
        write_map(&self.inner)
            .entry(Arc::from(plugin))
            .or_insert_with(|| {
                Arc::new(Mutex::new(PluginLog {
                    ring: Ring::new(limits),
                    followers: broadcast::channel(limits.follow_buffer).0,
                }))
            })
            .clone()
    }
}

// A panic while a lock is held (there is no code that can panic there)
// leaves the data consistent: every update is a single push or remove.
fn lock(log: &Mutex<PluginLog>) -> std::sync::MutexGuard<'_, PluginLog> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Map = HashMap<Arc<str>, Arc<Mutex<PluginLog>>>;

fn read_map(inner: &Inner) -> std::sync::RwLockReadGuard<'_, Map> {
    inner
        .plugins
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_map(inner: &Inner) -> std::sync::RwLockWriteGuard<'_, Map> {
    inner
        .plugins
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
