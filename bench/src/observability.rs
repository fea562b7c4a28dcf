//! (n) What observability costs per call: `Invoke` through the control API
//! of three `outboard up`s, each with one no-op plugin, at concurrency 64,
//! measured in turns:
//!
//! - **off**: no HTTP listener, no trace export (every `OTEL_*` variable
//!   removed from its environment);
//! - **metrics**: `--http 127.0.0.1:0`, and a scraper in the harness that
//!   `GET`s `/metrics` every [`SCRAPE_EVERY`] while the daemon is measured;
//! - **traced**: the same, and spans exported over OTLP/gRPC to an
//!   in-process receiver (`outboard_test_support::otlp::Receiver`), with
//!   the exporter's defaults otherwise.
//!
//! The host records its figures (the ones `outboard status` and `/metrics`
//! read) whatever the daemon serves, so "metrics on" against "off" is the
//! cost of the listener and of being scraped, not of the counting.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use outboard_test_support::otlp::Receiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::procs::Paths;
use crate::report::{Observability, ObservedLoad};
use crate::stats::{self, Latency, Load};
use crate::via_daemon::InvokeDaemon;

/// Concurrent callers.
pub(crate) const CONCURRENCY: usize = 64;

/// How often the scraper reads `/metrics`: far more often than any
/// Prometheus would (15 s is its default), so that the cost shows.
pub(crate) const SCRAPE_EVERY: Duration = Duration::from_millis(100);

/// The line `outboard up --http` prints its address on.
const HTTP_LINE: &str = "outboard: http http://";

/// The three daemons, in the order of [`Observability`]'s figures.
const MODES: [&str; 3] = ["off", "metrics", "traced"];

/// A daemon of (n) and, with metrics, its scraper.
struct Contender {
    daemon: InvokeDaemon,
    scraper: Option<Scraper>,
}

/// Reads `/metrics` every [`SCRAPE_EVERY`] while its daemon is measured
/// (so that an idle daemon's scrapes do not load the one measured), until
/// dropped.
struct Scraper {
    task: JoinHandle<()>,
    /// True while its daemon is measured.
    active: Arc<AtomicBool>,
    /// Scrapes answered 200, and bytes in the last one.
    ok: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    /// The first failure, if any.
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

/// Measures (n): `turns` rounds of `slice` each per daemon, in turns.
pub(crate) async fn measure(
    paths: &Paths,
    dir: &Path,
    turns: usize,
    slice: Duration,
) -> anyhow::Result<Observability> {
    let receiver = Receiver::start().await;
    let mut contenders = Vec::new();
    for mode in MODES {
        contenders.push(Contender::start(paths, dir, mode, &receiver.endpoint()).await?);
    }
    let measured = run_turns(&contenders, turns, slice).await;
    let scrapes = contenders[1].scraper.as_ref().map(Scraper::summary);
    let mut stopped = Ok(());
    for contender in contenders {
        let result = contender.stop();
        stopped = stopped.and(result);
    }
    let [off, metrics, traced] = measured?;
    stopped?;
    let (scrapes, scrape_bytes) = scrapes.context("the metrics daemon has no scraper")??;
    let spans = receiver.spans();
    let invoke_spans = spans.iter().filter(|s| s.name == "outboard.invoke").count();
    if invoke_spans == 0 {
        bail!(
            "the traced daemon exported no outboard.invoke span to {} ({} spans in all)",
            receiver.endpoint(),
            spans.len()
        );
    }
    Ok(Observability {
        concurrency: CONCURRENCY,
        scrape_every: SCRAPE_EVERY,
        off,
        metrics,
        traced,
        scrapes,
        scrape_bytes,
        spans: spans.len(),
        invoke_spans,
    })
}

/// Each daemon's load in turns; the latencies merged, the rates averaged.
async fn run_turns(
    contenders: &[Contender],
    turns: usize,
    slice: Duration,
) -> anyhow::Result<[ObservedLoad; 3]> {
    let mut loads: [Load; 3] = Default::default();
    for round in 0..turns {
        for k in 0..3 {
            let who = (round + k) % 3;
            let contender = &contenders[who];
            let caller = contender.daemon.caller();
            let call = move || caller.call();
            contender.scraping(true);
            let load = stats::load(CONCURRENCY, slice, call).await;
            contender.scraping(false);
            let load = load?;
            loads[who].rate += load.rate / turns as f64;
            loads[who].took.extend(load.took);
        }
    }
    Ok(loads.map(|load| ObservedLoad {
        rate: load.rate,
        latency: Latency::of(load.took),
    }))
}

impl Contender {
    /// Starts the daemon for `mode` and, with metrics, its scraper.
    async fn start(paths: &Paths, dir: &Path, mode: &str, otlp: &str) -> anyhow::Result<Contender> {
        let name = format!("obs-{mode}");
        // A directory each: a daemon that stops checks that its plugins
        // left no runtime directory, and must not see the others'.
        let dir = dir.join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let daemon = InvokeDaemon::start_with(paths, &dir, &name, |cmd| setup(cmd, mode, otlp))
            .await
            .with_context(|| format!("the {mode} daemon of (n)"))?;
        let scraper = if mode == "off" {
            None
        } else {
            let addr = daemon
                .daemon()
                .said(HTTP_LINE)
                .with_context(|| format!("the {mode} daemon did not print `{HTTP_LINE}ADDR`"))?;
            let addr: SocketAddr = addr
                .trim_end_matches('/')
                .parse()
                .with_context(|| format!("the {mode} daemon's HTTP address {addr:?}"))?;
            Some(Scraper::start(addr).await?)
        };
        Ok(Contender { daemon, scraper })
    }

    /// Starts or pauses its scraper, if it has one.
    fn scraping(&self, on: bool) {
        if let Some(scraper) = &self.scraper {
            scraper.active.store(on, Ordering::Relaxed);
        }
    }

    fn stop(self) -> anyhow::Result<()> {
        drop(self.scraper);
        self.daemon.stop()
    }
}

/// The command line and environment of `mode`'s daemon.
fn setup(cmd: &mut Command, mode: &str, otlp: &str) {
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(var);
        }
    }
    if mode != "off" {
        cmd.args(["--http", "127.0.0.1:0"]);
    }
    if mode == "traced" {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp);
    }
}

impl Scraper {
    /// Checks one scrape answers, then scrapes in the background.
    async fn start(addr: SocketAddr) -> anyhow::Result<Scraper> {
        let first = scrape(addr).await?;
        let ok = Arc::new(AtomicU64::new(1));
        let bytes = Arc::new(AtomicU64::new(first as u64));
        let failed = Arc::new(std::sync::Mutex::new(None));
        let active = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (ok, bytes, failed) = (ok.clone(), bytes.clone(), failed.clone());
            let active = active.clone();
            async move {
                let mut ticks = tokio::time::interval(SCRAPE_EVERY);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    if !active.load(Ordering::Relaxed) {
                        continue;
                    }
                    match scrape(addr).await {
                        Ok(n) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            bytes.store(n as u64, Ordering::Relaxed);
                        }
                        Err(err) => {
                            if let Ok(mut first) = failed.lock() {
                                first.get_or_insert_with(|| format!("{err:#}"));
                            }
                        }
                    }
                }
            }
        });
        Ok(Scraper {
            task,
            active,
            ok,
            bytes,
            failed,
        })
    }

    /// Scrapes answered and the size of the last, or the first failure.
    fn summary(&self) -> anyhow::Result<(u64, u64)> {
        if let Some(why) = self.failed.lock().ok().and_then(|f| f.clone()) {
            bail!("a scrape of /metrics failed: {why}");
        }
        Ok((
            self.ok.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        ))
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One `GET /metrics` over a fresh connection, as Prometheus makes it;
/// the body's length, once the status is 200.
async fn scrape(addr: SocketAddr) -> anyhow::Result<usize> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("GET /metrics answered {status:?}");
    }
    let body = text.find("\r\n\r\n").map_or(0, |at| text.len() - at - 4);
    Ok(body)
}
