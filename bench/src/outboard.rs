//! Outboard itself, through the host library as an embedding program uses
//! it: [`Host::start`], [`Host::dispatch`], [`Host::shutdown`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outboard_host::Host;
use outboard_host::Plugin;
use outboard_host::State;
use outboard_host::{HostConfig, PluginSpec};
use outboard_host::{Mode, PhaseSpec};
use serde_json::{Map, Value, json};

use crate::procs::{self, Paths};
use crate::stats::{self, Latency};

/// The phase the single no-op plugin subscribes to.
const PHASE: &str = "bench";

/// The fan-out sizes.
pub(crate) const FAN_OUT: [usize; 4] = [1, 4, 16, 64];

/// The small context every dispatch carries: a job id and two environment
/// variables.
pub(crate) fn small_context() -> Map<String, Value> {
    match json!({"job_id": "bench-0001", "env": {"CI": "true", "USER": "bench"}}) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// How the host sends `Invoke` to a plugin that offers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvokePath {
    /// The framed fast path (`invoke-fastpath/1`), the host's default.
    Fast,
    /// gRPC: the host does not offer the fast path (`fastpath = false`).
    Grpc,
}

impl InvokePath {
    /// Both, in the order a run takes its turns.
    pub(crate) const BOTH: [InvokePath; 2] = [InvokePath::Fast, InvokePath::Grpc];

    /// How the tables name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            InvokePath::Fast => "fast path",
            InvokePath::Grpc => "gRPC",
        }
    }

    /// `spec`, offered the fast path or not.
    fn apply(self, mut spec: PluginSpec) -> PluginSpec {
        spec.fastpath = self == InvokePath::Fast;
        spec
    }
}

/// A spec for an instance of the no-op plugin, subscribed to `phases`,
/// with its runtime directory in `dir`, called over `path`.
fn noop(paths: &Paths, dir: &Path, name: &str, phases: &[String], path: InvokePath) -> PluginSpec {
    let mut spec = PluginSpec::new(name, paths.bin("bench-noop"));
    spec.args = phases.to_vec();
    spec.runtime_base = Some(dir.to_owned());
    path.apply(spec)
}

fn config(plugins: Vec<PluginSpec>, phases: BTreeMap<String, PhaseSpec>) -> HostConfig {
    let mut plugins = plugins;
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    HostConfig {
        plugins,
        phases,
        ..HostConfig::default()
    }
}

async fn start(config: &HostConfig) -> anyhow::Result<Host> {
    Host::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Dispatches `phase` and fails unless it passed with every plugin ok.
async fn dispatch_ok(host: &Host, phase: &str, context: Map<String, Value>) -> anyhow::Result<()> {
    let report = host.dispatch(phase, context).await;
    if !report.passed() {
        bail!("phase {phase} did not pass: {:?}", report.verdict);
    }
    Ok(())
}

/// (c), (f) and the no-op plugin's RSS for (i): a host with one no-op
/// plugin.
#[derive(Debug)]
pub(crate) struct Single {
    host: Arc<Host>,
    context: Map<String, Value>,
}

impl Single {
    /// Starts the host and its plugin, called over `path`.
    pub(crate) async fn start(
        paths: &Paths,
        dir: &Path,
        path: InvokePath,
    ) -> anyhow::Result<Single> {
        let spec = noop(paths, dir, "noop", &[PHASE.to_owned()], path);
        let host = Arc::new(start(&config(vec![spec], BTreeMap::new())).await?);
        Ok(Single {
            host,
            context: small_context(),
        })
    }

    /// `calls` dispatches, one at a time, each timed.
    pub(crate) async fn samples(&self, calls: usize) -> anyhow::Result<Vec<Duration>> {
        Latency::samples(calls, || {
            dispatch_ok(&self.host, PHASE, self.context.clone())
        })
        .await
    }

    /// Dispatches per second with `concurrency` callers.
    pub(crate) async fn throughput(
        &self,
        concurrency: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let (host, context) = (self.host.clone(), self.context.clone());
        stats::throughput(concurrency, duration, move || {
            let (host, context) = (host.clone(), context.clone());
            async move { dispatch_ok(&host, PHASE, context).await }
        })
        .await
    }

    /// The plugin's RSS, in KiB.
    pub(crate) fn plugin_rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.host.plugin("noop").and_then(|p| p.status().pid);
        procs::rss_kib(pid.context("the no-op plugin is not running")?)
    }

    /// Stops the plugin.
    pub(crate) async fn stop(self) {
        self.host.shutdown().await;
    }
}

/// An example plugin (d): its name, command, config and the phase it is
/// dispatched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Example<'a> {
    /// The instance name.
    pub name: &'a str,
    /// Its executable.
    pub command: &'a Path,
    /// Its config.
    pub config: &'a Value,
    /// The phase it subscribes to.
    pub phase: &'a str,
}

/// (d): `calls` dispatches of `example.phase` to the plugin, over each of
/// `paths` (one host each, taking their samples in `rounds` turns).
pub(crate) async fn example(
    dir: &Path,
    example: Example<'_>,
    paths: &[InvokePath],
    rounds: usize,
    calls: usize,
) -> anyhow::Result<Vec<Latency>> {
    let mut hosts = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let mut spec = PluginSpec::new(format!("{}-{i}", example.name), example.command);
        spec.runtime_base = Some(dir.to_owned());
        // As an operator who installed it would: everything it asks for.
        spec.grant = vec!["*".to_owned()];
        if let Value::Object(map) = example.config {
            spec.config = map.clone();
        }
        hosts.push(start(&config(vec![path.apply(spec)], BTreeMap::new())).await?);
    }
    let context = small_context();
    let rounds = rounds.max(1);
    let per_round = (calls / rounds).max(1);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); hosts.len()];
    let mut failed = None;
    'rounds: for round in 0..=rounds {
        for k in 0..hosts.len() {
            let who = (round + k) % hosts.len();
            // Round 0 warms up, uncounted.
            let calls = if round == 0 {
                per_round / 4 + 1
            } else {
                per_round
            };
            let host = &hosts[who];
            match Latency::samples(calls, || dispatch_ok(host, example.phase, context.clone()))
                .await
            {
                Ok(taken) if round > 0 => samples[who].extend(taken),
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break 'rounds;
                }
            }
        }
    }
    for host in hosts {
        host.shutdown().await;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(samples.into_iter().map(Latency::of).collect()),
    }
}

/// A fan-out figure: its mode, N, the path and the latency.
pub(crate) type FanOut = (Mode, usize, InvokePath, Latency);

/// (e): per path, one host with 64 no-op plugins; instance `i` subscribes to
/// the phases `par_N` (parallel) and `seq_N` (sequential) for every N above
/// `i`, so each phase has exactly N subscribers. Returns, for each mode, N
/// and path, the latency of `calls(N)` dispatches, the paths taking turns
/// at each N.
pub(crate) async fn fan_out(
    paths: &Paths,
    dir: &Path,
    calls: impl Fn(usize) -> usize,
) -> anyhow::Result<Vec<FanOut>> {
    let mut hosts = Vec::new();
    for path in InvokePath::BOTH {
        hosts.push((path, fan_out_host(paths, dir, path).await?));
    }
    let context = small_context();
    let mut results = Vec::new();
    let mut failed = None;
    'all: for mode in FAN_OUT_MODES {
        for n in FAN_OUT {
            let name = fan_out_phase(mode, n);
            for (_, host) in &hosts {
                if host.subscribers(&name).len() != n {
                    failed = Some(anyhow::anyhow!("phase {name} has the wrong subscribers"));
                    break 'all;
                }
            }
            // An uncounted warm-up, then halves in turns: fast, gRPC,
            // fast, gRPC.
            let mut taken: Vec<Vec<Duration>> = vec![Vec::new(); hosts.len()];
            for half in 0..3 {
                for (i, (_, host)) in hosts.iter().enumerate() {
                    let calls = if half == 0 {
                        calls(n) / 10
                    } else {
                        calls(n).div_ceil(2)
                    };
                    match Latency::samples(calls, || dispatch_ok(host, &name, context.clone()))
                        .await
                    {
                        Ok(samples) if half > 0 => taken[i].extend(samples),
                        Ok(_) => {}
                        Err(e) => {
                            failed = Some(e);
                            break 'all;
                        }
                    }
                }
            }
            for ((path, _), samples) in hosts.iter().zip(taken) {
                results.push((mode, n, *path, Latency::of(samples)));
            }
        }
    }
    for (_, host) in hosts {
        host.shutdown().await;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// The modes of (e).
const FAN_OUT_MODES: [Mode; 2] = [Mode::Parallel, Mode::Sequential];

/// (e)'s phase of `mode` with `n` subscribers: `par_16`, `seq_16`.
fn fan_out_phase(mode: Mode, n: usize) -> String {
    format!("{}_{n}", &mode.as_str()[..3])
}

/// (e)'s host: 64 no-op plugins called over `path`.
async fn fan_out_host(paths: &Paths, dir: &Path, path: InvokePath) -> anyhow::Result<Host> {
    let most = FAN_OUT.iter().copied().max().unwrap_or(1);
    let plugins = (0..most)
        .map(|i| {
            let phases: Vec<String> = FAN_OUT
                .iter()
                .filter(|&&n| i < n)
                .flat_map(|&n| FAN_OUT_MODES.map(|m| fan_out_phase(m, n)))
                .collect();
            let name = format!("noop-{}-{i:02}", path_tag(path));
            noop(paths, dir, &name, &phases, path)
        })
        .collect();
    let phases = FAN_OUT
        .iter()
        .flat_map(|&n| FAN_OUT_MODES.map(|m| (fan_out_phase(m, n), m)))
        .map(|(name, mode)| {
            let spec = PhaseSpec {
                mode,
                ..PhaseSpec::default()
            };
            (name, spec)
        })
        .collect();
    start(&config(plugins, phases)).await
}

/// A short tag for instance names: `f` or `g`.
fn path_tag(path: InvokePath) -> &'static str {
    match path {
        InvokePath::Fast => "f",
        InvokePath::Grpc => "g",
    }
}

/// A host with `count` no-op plugins, called over `path`, all subscribed
/// to the parallel phase `soak`.
async fn soak_host(
    paths: &Paths,
    dir: &Path,
    count: usize,
    path: InvokePath,
) -> anyhow::Result<Host> {
    let plugins = (0..count)
        .map(|i| {
            let name = format!("noop-{i:02}");
            noop(paths, dir, &name, &["soak".to_owned()], path)
        })
        .collect();
    let phase = PhaseSpec {
        mode: Mode::Parallel,
        ..PhaseSpec::default()
    };
    start(&config(plugins, [("soak".to_owned(), phase)].into())).await
}

/// `--only grpc`'s fan-out: the latency of `calls` dispatches of a parallel
/// phase with `count` no-op subscribers over gRPC, one at a time.
pub(crate) async fn parallel_fan_out(
    paths: &Paths,
    dir: &Path,
    count: usize,
    calls: usize,
) -> anyhow::Result<Latency> {
    let host = soak_host(paths, dir, count, InvokePath::Grpc).await?;
    let context = small_context();
    let latency = Latency::measure(calls, || dispatch_ok(&host, "soak", context.clone())).await;
    host.shutdown().await;
    latency
}

/// `--soak fan-out`: dispatches per second of a parallel phase with
/// `count` no-op subscribers called over `path`, one dispatch at a time.
pub(crate) async fn soak_fan_out(
    paths: &Paths,
    dir: &Path,
    count: usize,
    path: InvokePath,
    duration: Duration,
) -> anyhow::Result<f64> {
    let host = Arc::new(soak_host(paths, dir, count, path).await?);
    let context = small_context();
    let rate = {
        let host = host.clone();
        stats::throughput(1, duration, move || {
            let (host, context) = (host.clone(), context.clone());
            async move { dispatch_ok(&host, "soak", context).await }
        })
        .await
    };
    host.shutdown().await;
    rate
}

/// (g), one plugin: `runs` starts of the no-op plugin to ready, one at a
/// time, each stopped before the next. Timed around [`Plugin::start`]:
/// runtime directory, spawn, handshake, connect, `Describe`, `Configure`,
/// health check.
pub(crate) async fn cold_starts(
    paths: &Paths,
    dir: &Path,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let spec = noop(paths, dir, "noop", &[PHASE.to_owned()], InvokePath::Fast);
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let plugin = Plugin::start(&spec).await?;
        samples.push(started.elapsed());
        plugin.stop().await;
    }
    Ok(samples)
}

/// (g), many plugins: `runs` times, `count` no-op plugins started at once
/// with [`Host::start`], timed until every one is ready.
pub(crate) async fn cold_start_many(
    paths: &Paths,
    dir: &Path,
    count: usize,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let plugins: Vec<PluginSpec> = (0..count)
        .map(|i| {
            let name = format!("noop-{i:03}");
            noop(paths, dir, &name, &[PHASE.to_owned()], InvokePath::Fast)
        })
        .collect();
    let config = config(plugins, BTreeMap::new());
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let host = start(&config).await?;
        samples.push(started.elapsed());
        host.stop().await;
    }
    Ok(samples)
}

/// (h): `kills` SIGKILLs of a supervised no-op plugin, each timed until the
/// supervisor reports a new instance ready. Each is a first restart (the
/// backoff resets after 1 ms up), which is immediate by design.
pub(crate) async fn restart(paths: &Paths, dir: &Path, kills: usize) -> anyhow::Result<Latency> {
    let mut spec = noop(paths, dir, "victim", &[PHASE.to_owned()], InvokePath::Fast);
    spec.supervision.backoff_reset_after = Duration::from_millis(1);
    spec.supervision.crash_loop_starts = u32::MAX;
    let host = start(&config(vec![spec], BTreeMap::new())).await?;
    let result = async {
        let sup = host.plugin("victim").context("the plugin")?.clone();
        let mut samples = Vec::with_capacity(kills);
        for _ in 0..kills {
            let old = sup.status().pid.context("not ready")?;
            let killed = Instant::now();
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(old as libc::pid_t, libc::SIGKILL) };
            loop {
                let status = sup.status();
                if status.state == State::Ready && status.pid.is_some_and(|p| p != old) {
                    break;
                }
                if killed.elapsed() > Duration::from_secs(10) {
                    bail!("not ready again 10 s after SIGKILL: {status:?}");
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            samples.push(killed.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Latency::of(samples))
    }
    .await;
    host.shutdown().await;
    result
}

/// (i): the RSS of `bench-host` (a program embedding the host) once
/// `count` no-op plugins are ready, after `settle`, in KiB.
pub(crate) fn host_rss(paths: &Paths, count: usize, settle: Duration) -> anyhow::Result<u64> {
    let count_arg = count.to_string();
    let noop_arg = paths.bin("bench-noop");
    let peer = procs::Peer::start(
        &paths.bin("bench-host"),
        &[&count_arg, &noop_arg.to_string_lossy()],
    )?;
    if !peer.ready_line.starts_with("ready") {
        bail!("bench-host said {:?}", peer.ready_line);
    }
    let plugins = peer.ready_line.split_whitespace().skip(1).count();
    if plugins != count {
        bail!("bench-host has {plugins} plugins ready, not {count}");
    }
    std::thread::sleep(settle);
    procs::rss_kib(peer.pid())
}
