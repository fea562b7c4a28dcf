//! The measuring, one step per group of items, in the order the run takes
//! them. Contenders that are compared take their samples in turns, so that
//! load from outside the run falls on all of them alike.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::floor::{self, RawFloor, TonicFloor};
use crate::goplugin::{self, GoPluginHost};
use crate::observability;
use crate::outboard::{self, Example, InvokePath, Single};
use crate::procs::Paths;
use crate::report::{DaemonResults, HostServicesResults, Results, SandboxResults};
use crate::stats::Latency;
use crate::via_daemon::{self, InvokeDaemon};
use crate::{CONCURRENCY, FLOOR_FAN_OUT, MANY, Plan, step};
use crate::{events, sandbox, services};

/// The go-plugin host, or why it could not be started.
type GoHost = Result<GoPluginHost, String>;

/// Calls per second by concurrency.
type Rates = Vec<(usize, f64)>;

/// What the run needs to know besides the plan.
#[derive(Debug)]
pub(crate) struct Setup<'a> {
    /// The workspace and the built binaries.
    pub paths: &'a Paths,
    /// The scratch directory for sockets and configs.
    pub dir: &'a Path,
    /// Whether to build the go-plugin module.
    pub build: bool,
    /// The Go example plugin's build, or why it failed.
    pub go_example_build: Result<(), String>,
    /// Where the Go example plugin is built.
    pub go_env_guard: &'a Path,
}

/// Measures every item of `plan`.
pub(crate) async fn all(plan: &Plan, setup: Setup<'_>) -> anyhow::Result<Results> {
    let Setup { paths, dir, .. } = setup;
    step(
        "starting (a) raw echo, (b) tonic echo, (c) Outboard with one no-op plugin, (j) go-plugin, \
         (l) outboard up with one no-op plugin",
    );
    let mut raw = RawFloor::start(paths, dir)?;
    let tonic = TonicFloor::start(paths, dir, "tonic").await?;
    let single = Single::start(paths, dir, InvokePath::Fast).await?;
    let single_grpc = Single::start(paths, dir, InvokePath::Grpc).await?;
    let mut goplugin = start_goplugin(paths, setup.build).await?;
    let daemon = InvokeDaemon::start(paths, dir)
        .await
        .map_err(|e| format!("{e:#}"));

    step("(a, b, c, j, l) latency, in turns (c over the fast path and over gRPC)");
    let contenders = Contenders {
        raw: &mut raw,
        tonic: &tonic,
        single: &single,
        single_grpc: &single_grpc,
        goplugin: &mut goplugin,
        daemon: daemon.as_ref(),
    };
    let [
        raw_samples,
        tonic_samples,
        invoke_samples,
        invoke_grpc_samples,
        go_samples,
        daemon_samples,
    ] = latency(plan, contenders).await?;
    drop(raw);
    let daemon_invoke = stop_daemon(daemon, daemon_samples);

    step("(b, f, j) throughput at concurrency 1, 16, 64, in turns");
    let [
        tonic_throughput,
        outboard_throughput,
        outboard_grpc_throughput,
        go_throughput,
    ] = throughput(plan, &tonic, [&single, &single_grpc], &mut goplugin).await?;
    drop(tonic);
    let plugin_rss_kib = single.plugin_rss_kib()?;
    single.stop().await;
    single_grpc.stop().await;

    step("(d) Outboard: the Go and Python example plugins");
    let (go_example, python_example) = examples(plan, &setup).await;

    step("(e) fan-out to 1, 4, 16, 64 no-op plugins, the fast path and gRPC in turns");
    let fan_out =
        outboard::fan_out(paths, dir, |n| (plan.fan_budget / n).max(plan.fan_min)).await?;

    step("(b) bare tonic, parallel fan-out to 16 servers");
    let tonic_fan_out = floor::fan_out(
        paths,
        dir,
        FLOOR_FAN_OUT,
        (plan.fan_budget / FLOOR_FAN_OUT).max(plan.fan_min),
    )
    .await?;

    step("(g, j) cold start: one plugin, then 100 at once, in turns");
    let cold = cold_starts(plan, paths, dir, &mut goplugin).await?;

    step("(h) restart: SIGKILL to ready again");
    let restart = outboard::restart(paths, dir, plan.kills).await?;

    step("(i) host RSS with 0 and 100 plugins");
    let (host_rss_none, host_rss_many) = host_rss(paths, plan.settle).await?;

    step("(k, m) outboard run -- true with the example config, standalone and --daemon, in turns");
    let daemon = daemon_items(plan, paths, dir, daemon_invoke).await?;

    step(
        "(n) the cost of observability: daemons with nothing, metrics, metrics and traces on, \
         at concurrency 64, in turns",
    );
    // More and shorter turns than (f)'s: the three differ by a few percent
    // at most, less than the load from outside the run moves in a second.
    let observability = observability::measure(paths, dir, plan.rounds, plan.throughput_for / 4)
        .await
        .map_err(|e| format!("{e:#}"));

    let services = host_services(plan, paths, dir).await;
    let sandbox = sandbox_starts(plan, paths, dir).await;

    let goplugin = match goplugin {
        Ok(go) => Ok(go_results(go, go_samples, go_throughput, cold.go)?),
        Err(e) => Err(e),
    };
    Ok(Results {
        raw: Latency::of(raw_samples),
        tonic: Latency::of(tonic_samples),
        tonic_throughput,
        invoke: Latency::of(invoke_samples),
        invoke_grpc: Latency::of(invoke_grpc_samples),
        outboard_throughput,
        outboard_grpc_throughput,
        plugin_rss_kib,
        go_example,
        python_example: python_example.0,
        python_example_grpc: python_example.1,
        fan_out,
        tonic_fan_out: (FLOOR_FAN_OUT, tonic_fan_out),
        cold_one: Latency::of(cold.one),
        cold_many: Latency::of(cold.many),
        many_count: MANY,
        restart,
        host_rss_none,
        host_rss_many,
        goplugin,
        daemon,
        observability,
        services,
        sandbox,
    })
}

/// (q), failing on its own (a machine that cannot build a wall).
pub(crate) async fn sandbox_starts(
    plan: &Plan,
    paths: &Paths,
    dir: &Path,
) -> Result<SandboxResults, String> {
    step("(q) spawn to ready of the no-op plugin: no sandbox, memory + pids, strict, in turns");
    sandbox::measure(paths, dir, plan.rounds, plan.cold_starts)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// (o) and (p), each failing on its own (a branch without host services'
/// events, a missing venv).
pub(crate) async fn host_services(plan: &Plan, paths: &Paths, dir: &Path) -> HostServicesResults {
    step(
        "(o) host services: KvGet and KvSet from a Rust and a Python plugin, and their floors, in turns",
    );
    let kv = services::measure(paths, dir, plan.rounds, plan.kv_calls)
        .await
        .map_err(|e| format!("{e:#}"));
    step("(p) host services: event publish to delivery, 1 and 16 subscribers, in turns");
    let events = events::measure(paths, dir, plan.rounds, plan.events)
        .await
        .map_err(|e| format!("{e:#}"));
    HostServicesResults { kv, events }
}

/// Starts the go-plugin host; its failure is an item's, not the run's.
async fn start_goplugin(paths: &Paths, build: bool) -> anyhow::Result<GoHost> {
    let paths = paths.clone();
    Ok(
        tokio::task::spawn_blocking(move || GoPluginHost::start(&paths, build))
            .await?
            .map_err(|e| format!("{e:#}")),
    )
}

/// The contenders of the latency items.
struct Contenders<'a> {
    raw: &'a mut RawFloor,
    tonic: &'a TonicFloor,
    single: &'a Single,
    single_grpc: &'a Single,
    goplugin: &'a mut GoHost,
    daemon: Result<&'a InvokeDaemon, &'a String>,
}

/// (a, b, c, j, l) latency samples, taken in turns: raw, tonic, Outboard
/// over the fast path, Outboard over gRPC, go-plugin, the daemon's control
/// API. Round 0 is a warm-up, not counted.
async fn latency(plan: &Plan, c: Contenders<'_>) -> anyhow::Result<[Vec<Duration>; 6]> {
    let per_round = (plan.invoke_calls / plan.rounds).max(1);
    let mut samples: [Vec<Duration>; 6] = Default::default();
    for round in 0..=plan.rounds {
        for k in 0..6 {
            let who = (round + k) % 6;
            let calls = if round == 0 {
                per_round / 4 + 1
            } else {
                per_round
            };
            let taken = match who {
                0 => tokio::task::block_in_place(|| c.raw.samples(calls))?,
                1 => c.tonic.samples(calls).await?,
                2 => c.single.samples(calls).await?,
                3 => c.single_grpc.samples(calls).await?,
                4 => match c.goplugin {
                    Ok(go) => tokio::task::block_in_place(|| go.latency(calls))?,
                    Err(_) => Vec::new(),
                },
                _ => match c.daemon {
                    Ok(daemon) => daemon.samples(calls).await?,
                    Err(_) => Vec::new(),
                },
            };
            if round > 0 {
                samples[who].extend(taken);
            }
        }
    }
    Ok(samples)
}

/// (l): stops its daemon; its latency, or why not (failing to start or to
/// stop is the item's, not the run's).
fn stop_daemon(
    daemon: Result<InvokeDaemon, String>,
    samples: Vec<Duration>,
) -> Result<Latency, String> {
    let daemon = daemon?;
    daemon.stop().map_err(|e| format!("{e:#}"))?;
    Ok(Latency::of(samples))
}

/// (k) and (m), each failing on its own (the daemon or the CLI commands it
/// needs may be missing); `invoke` is (l), measured earlier.
async fn daemon_items(
    plan: &Plan,
    paths: &Paths,
    dir: &Path,
    invoke: Result<Latency, String>,
) -> anyhow::Result<DaemonResults> {
    let (paths, dir, plan) = (paths.clone(), dir.to_owned(), *plan);
    tokio::task::spawn_blocking(move || {
        let failed = |e: anyhow::Error| format!("{e:#}");
        let (job, examples_rss) =
            match via_daemon::job_runs(&paths, &dir, plan.job_runs, plan.settle) {
                Ok((job, rss)) => (Ok(job), Ok(rss)),
                Err(e) => (Err(failed(e)), Err("the daemon of (k) failed".to_owned())),
            };
        step("(m) daemon RSS with 100 no-op plugins");
        let many_rss = via_daemon::many_rss(&paths, &dir, MANY, plan.settle).map_err(failed);
        DaemonResults {
            job,
            invoke,
            examples_rss,
            many_rss,
        }
    })
    .await
    .map_err(Into::into)
}

/// (b, f, j) throughput at each concurrency, in turns: tonic, Outboard
/// over the fast path and over gRPC, go-plugin.
async fn throughput(
    plan: &Plan,
    tonic: &TonicFloor,
    [single, single_grpc]: [&Single; 2],
    goplugin: &mut GoHost,
) -> anyhow::Result<[Rates; 4]> {
    let turns = plan.rounds.min(4);
    let slice = plan.throughput_for / turns as u32;
    let mut all: [Rates; 4] = Default::default();
    for c in CONCURRENCY {
        let mut rates = [0.0f64; 4];
        for round in 0..turns {
            for k in 0..4 {
                let who = (round + k) % 4;
                rates[who] += match who {
                    0 => tonic.throughput(c, slice).await?,
                    1 => single.throughput(c, slice).await?,
                    2 => single_grpc.throughput(c, slice).await?,
                    _ => match goplugin {
                        Ok(go) => tokio::task::block_in_place(|| go.throughput(c, slice))?,
                        Err(_) => 0.0,
                    },
                } / turns as f64;
            }
        }
        for (rates_of, rate) in all.iter_mut().zip(rates) {
            rates_of.push((c, rate));
        }
    }
    Ok(all)
}

/// The Python example's two figures: over the fast path and over gRPC.
type PythonExample = (Result<Latency, String>, Result<Latency, String>);

/// (d) the Go and Python example plugins, each or why not: the Go one over
/// gRPC (it does not offer the fast path), the Python one over both, in
/// turns.
async fn examples(plan: &Plan, setup: &Setup<'_>) -> (Result<Latency, String>, PythonExample) {
    let failed = |e: anyhow::Error| format!("failed: {e:#}");
    let go_config = json!({"required": ["CI"], "forbidden": ["AWS_SECRET_ACCESS_KEY"]});
    let go_example = match &setup.go_example_build {
        Err(why) => Err(format!("not built: {why}")),
        Ok(()) if !setup.go_env_guard.exists() => Err(
            "not built (cd plugin-examples/go && go build -o ../../target/go/env-guard .)".into(),
        ),
        Ok(()) => {
            let example = Example {
                name: "env-guard",
                command: setup.go_env_guard,
                config: &go_config,
                phase: "pre_validation",
            };
            outboard::example(
                setup.dir,
                example,
                &[InvokePath::Fast],
                plan.rounds,
                plan.example_calls,
            )
            .await
            .map(|mut l| l.remove(0))
            .map_err(failed)
        }
    };
    let scrubber = setup.paths.root.join(".tools/venv/bin/secret-scrubber");
    let python_example = if scrubber.exists() {
        let example = Example {
            name: "secret-scrubber",
            command: &scrubber,
            config: &json!({}),
            phase: "pre_container",
        };
        match outboard::example(
            setup.dir,
            example,
            &InvokePath::BOTH,
            plan.rounds,
            plan.example_calls,
        )
        .await
        {
            Ok(mut both) => {
                let grpc = both.pop().ok_or_else(|| "no gRPC figure".to_owned());
                let fast = both.pop().ok_or_else(|| "no fast-path figure".to_owned());
                (fast, grpc)
            }
            Err(e) => (Err(failed(e)), Err("the fast path's host failed".into())),
        }
    } else {
        let why = "not built (run scripts/tools)".to_owned();
        (Err(why.clone()), Err(why))
    };
    (go_example, python_example)
}

/// (g, j) cold starts, Outboard's and go-plugin's.
#[derive(Debug, Default)]
struct ColdStarts {
    /// Outboard, one plugin.
    one: Vec<Duration>,
    /// Outboard, `MANY` plugins at once.
    many: Vec<Duration>,
    /// go-plugin's.
    go: GoCold,
}

/// (j) go-plugin's cold starts.
#[derive(Debug, Default)]
struct GoCold {
    /// One plugin.
    one: Vec<Duration>,
    /// `MANY` plugins at once.
    many: Vec<Duration>,
    /// The host's RSS with `MANY` plugins, KiB (the last run's).
    host_rss_many_kib: u64,
}

/// (g, j) cold start of one plugin, then of `MANY` at once, in turns.
async fn cold_starts(
    plan: &Plan,
    paths: &Paths,
    dir: &Path,
    goplugin: &mut GoHost,
) -> anyhow::Result<ColdStarts> {
    let mut cold = ColdStarts::default();
    let per_round = (plan.cold_starts / plan.rounds).max(1);
    for round in 0..plan.rounds {
        for k in 0..2 {
            if (round + k) % 2 == 0 {
                cold.one
                    .extend(outboard::cold_starts(paths, dir, per_round).await?);
            } else if let Ok(go) = goplugin {
                let starts = tokio::task::block_in_place(|| go.cold_starts(per_round))?;
                cold.go.one.extend(starts);
            }
        }
    }
    for round in 0..plan.many_runs {
        for k in 0..2 {
            if (round + k) % 2 == 0 {
                cold.many
                    .extend(outboard::cold_start_many(paths, dir, MANY, 1).await?);
            } else if let Ok(go) = goplugin {
                let run = tokio::task::block_in_place(|| go.many(MANY, plan.settle))?;
                cold.go.many.push(Duration::from_nanos(run.ready_ns));
                cold.go.host_rss_many_kib = run.host_rss_kib;
            }
        }
    }
    Ok(cold)
}

/// (i) the host's RSS with no plugins and with `MANY`, KiB.
async fn host_rss(paths: &Paths, settle: Duration) -> anyhow::Result<(u64, u64)> {
    let paths = paths.clone();
    tokio::task::spawn_blocking(move || {
        anyhow::Ok((
            outboard::host_rss(&paths, 0, settle)?,
            outboard::host_rss(&paths, MANY, settle)?,
        ))
    })
    .await?
}

/// (j) go-plugin's figures, its plugin's RSS read last.
fn go_results(
    mut go: GoPluginHost,
    latency: Vec<Duration>,
    throughput: Rates,
    cold: GoCold,
) -> anyhow::Result<goplugin::GoPlugin> {
    let rss = tokio::task::block_in_place(|| go.plugin_rss_kib())?;
    Ok(goplugin::GoPlugin {
        latency: Latency::of(latency),
        throughput,
        cold: Latency::of(cold.one),
        plugin_rss_kib: rss,
        many: Latency::of(cold.many),
        host_rss_many_kib: cold.host_rss_many_kib,
        info: go.info.clone(),
    })
}
