//! (j): HashiCorp go-plugin in gRPC mode, the anchor. `bench/go-plugin` is a
//! Go module whose binary is both a go-plugin host and its plugin. The host
//! side starts one plugin and measures on request, one request per line on
//! stdin, one JSON answer per line on stdout, so that the harness can take
//! its samples in turn with Outboard's and the floors', under the same load.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::procs::{self, Paths};

/// The go-plugin host, with its plugin started.
#[derive(Debug)]
pub(crate) struct GoPluginHost {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The Go toolchain and the go-plugin version it was built with.
    pub info: Info,
}

/// What `info` answers.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Info {
    /// `runtime.Version()`.
    pub go_version: String,
    /// The go-plugin module version.
    pub go_plugin_version: String,
    /// The host's RSS before it started any plugin, KiB.
    pub host_rss_idle_kib: u64,
}

/// What `many` answers.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct Many {
    /// Spawn of all to the last first call answered, ns.
    pub ready_ns: u64,
    /// The host's RSS with all of them running, KiB.
    pub host_rss_kib: u64,
}

impl GoPluginHost {
    /// Builds `bench/go-plugin` (unless `build` is false) and starts it.
    pub(crate) fn start(paths: &Paths, build: bool) -> anyhow::Result<GoPluginHost> {
        let binary = paths.go_bin("bench-goplugin");
        if build {
            procs::go_build(&paths.root.join("bench/go-plugin"), &binary)
                .map_err(|e| anyhow::anyhow!(e))?;
        } else if !binary.exists() {
            bail!("not built ({} is missing)", binary.display());
        }
        let mut child = Command::new(&binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("its stdout")?);
        let mut host = GoPluginHost {
            child,
            stdin,
            stdout,
            info: Info {
                go_version: String::new(),
                go_plugin_version: String::new(),
                host_rss_idle_kib: 0,
            },
        };
        host.info = host.ask("info")?;
        Ok(host)
    }

    /// Sends one request and reads its answer. Blocks: call it where
    /// blocking is allowed.
    fn ask<T: for<'de> Deserialize<'de>>(&mut self, request: &str) -> anyhow::Result<T> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        if line.is_empty() {
            bail!("bench-goplugin exited at request {request:?} (its stderr is above)");
        }
        serde_json::from_str(&line)
            .with_context(|| format!("bench-goplugin answered {request:?} with {line:?}"))
    }

    /// `calls` no-op calls, one at a time, each timed.
    pub(crate) fn latency(&mut self, calls: usize) -> anyhow::Result<Vec<Duration>> {
        let ns: Vec<u64> = self.ask(&format!("latency {calls}"))?;
        Ok(ns.into_iter().map(Duration::from_nanos).collect())
    }

    /// Calls per second with `concurrency` goroutines for `duration`.
    pub(crate) fn throughput(
        &mut self,
        concurrency: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        self.ask(&format!(
            "throughput {concurrency} {}",
            duration.as_millis().max(1)
        ))
    }

    /// `starts` cold starts of another plugin instance: spawn to the first
    /// call answered.
    pub(crate) fn cold_starts(&mut self, starts: usize) -> anyhow::Result<Vec<Duration>> {
        let ns: Vec<u64> = self.ask(&format!("cold {starts}"))?;
        Ok(ns.into_iter().map(Duration::from_nanos).collect())
    }

    /// `count` plugins started at once: the time until all answered their
    /// first call, and the host's RSS `settle` later.
    pub(crate) fn many(&mut self, count: usize, settle: Duration) -> anyhow::Result<Many> {
        self.ask(&format!("many {count} {}", settle.as_millis()))
    }

    /// The plugin's RSS in KiB.
    pub(crate) fn plugin_rss_kib(&mut self) -> anyhow::Result<u64> {
        self.ask("rss")
    }
}

impl Drop for GoPluginHost {
    fn drop(&mut self) {
        // Its stdin closing ends the host, which kills its plugin.
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What go-plugin measured.
#[derive(Debug, Clone)]
pub(crate) struct GoPlugin {
    /// The no-op call.
    pub latency: crate::stats::Latency,
    /// Calls per second, by concurrency.
    pub throughput: Vec<(usize, f64)>,
    /// Spawn to the first call answered.
    pub cold: crate::stats::Latency,
    /// The plugin's RSS after the calls, KiB.
    pub plugin_rss_kib: u64,
    /// Many plugins started at once, until all answered.
    pub many: crate::stats::Latency,
    /// The host's RSS with that many plugins, KiB (the last run's).
    pub host_rss_many_kib: u64,
    /// Versions, and the host's RSS before any plugin.
    pub info: Info,
}

impl GoPlugin {
    /// Throughput at `concurrency`, if measured.
    pub(crate) fn throughput(&self, concurrency: usize) -> Option<f64> {
        self.throughput
            .iter()
            .find(|(c, _)| *c == concurrency)
            .map(|(_, r)| *r)
    }
}
