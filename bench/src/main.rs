//! `outboard-bench`: Outboard against the transport floor and against
//! HashiCorp go-plugin, measured in one run.
//!
//! ```sh
//! cargo run --release -p outboard-bench -- --markdown target/bench.md
//! cargo run -p outboard-bench -- --quick      # smoke run: every item, few samples
//! cargo run --release -p outboard-bench -- --soak invoke   # one workload, for perf
//! ```
//!
//! It builds what it runs (its sibling binaries with the same cargo
//! profile, the Go example plugin and the go-plugin module), then measures:
//! (a) a raw Unix-socket 64-byte ping-pong; (b) a bare tonic `Invoke` over a
//! Unix socket; (c) Outboard's `Host::dispatch` to one Rust no-op plugin,
//! over the fast path and over gRPC; (d) the same to the Go (gRPC) and
//! Python (both paths) example plugins; (e) fan-out to 1, 4, 16 and 64
//! no-op plugins, parallel and sequential, over both paths; (f) throughput
//! at concurrency 1, 16 and 64, over both paths; (g) cold start of one plugin and of 100 at
//! once; (h) SIGKILL to ready again; (i) host RSS with 0 and 100 plugins and
//! one plugin's RSS; (j) go-plugin: call latency, throughput, cold start
//! of one and of 100 plugins, host and plugin RSS; the daemon, `outboard
//! up`: (k) `outboard run -- true` with the example config, standalone and
//! `--daemon`; (l) one `Invoke` through its control API; (m) its RSS with
//! the example plugins and with 100 no-op plugins; (n) the cost of
//! observability: `Invoke` through three daemons at concurrency 64, with
//! nothing on, with `/metrics` served and scraped, and with traces
//! exported over OTLP too; host services, as a plugin sees them: (o) `KvGet`
//! and `KvSet` timed inside a Rust and a Python plugin, beside the same on
//! the state database from the harness and (a); (p) an event's publish to
//! its delivery, to 1 and to 16 subscriber plugins (`--only services` runs
//! these two alone); (q) spawn to ready of the no-op plugin with no
//! sandbox, with memory and pids limits, and with the strict preset
//! (`--only sandbox` runs it alone); `--only grpc` runs the gRPC
//! Invoke path's figures alone ((b), (c), (d) Go, (e) parallel 16, (f) at
//! 16 and 64), short enough to run builds against each other in turns. The
//! contenders that are
//! compared take their samples in turns, so that load from outside the run
//! falls on all of them alike. It prints the figures, their ratios to (a),
//! (b) and (j), and the targets, as markdown. See BENCHMARKS.md.
//!
//! # Layout
//!
//! - `stats`: percentiles and throughput loops.
//! - `procs`: building and running child programs, RSS, scratch dirs.
//! - `floor`: (a) and (b).
//! - `measure`: the run's steps, contenders in turns.
//! - `outboard`: (c) to (i), through the host library.
//! - `goplugin`: (j), running the Go module in `bench/go-plugin`.
//! - `daemon`: `outboard up` as a child process; `configs`: its configs.
//! - `via_daemon`: (k), (l) and (m).
//! - `observability`: (n).
//! - `grpc`: `--only grpc`.
//! - `services`: (o), and the host with host services that (p) uses too;
//!   `events`: (p).
//! - `sandbox`: (q).
//! - `report`: the tables.

mod configs;
mod daemon;
mod events;
mod floor;
mod goplugin;
mod grpc;
mod measure;
mod observability;
mod outboard;
mod procs;
mod report;
mod sandbox;
mod services;
mod stats;
mod via_daemon;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::procs::Paths;
use crate::report::Results;

/// Outboard's benchmarks, with their baselines, in one run.
#[derive(Debug, Parser)]
struct Args {
    /// A smoke run: every item, with few samples (for CI).
    #[arg(long)]
    quick: bool,
    /// Also write the report (machine, tables) to this markdown file.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Do not build the sibling binaries and the Go programs first.
    #[arg(long)]
    no_build: bool,
    /// For profiling: only keep one workload busy for `--soak-for`
    /// (`tonic`: the bare tonic floor; `invoke`: Outboard with one no-op
    /// plugin over the fast path, `invoke-grpc` over gRPC, each with
    /// `--soak-callers` callers; `fan-out`, `fan-out-grpc`: parallel fan-out
    /// to 16 no-op plugins, one dispatch at a time), print the rate, exit.
    #[arg(long, value_name = "WORKLOAD")]
    soak: Option<String>,
    /// Concurrent callers for `--soak tonic` and `--soak invoke`.
    #[arg(long, value_name = "N", default_value_t = 16)]
    soak_callers: usize,
    /// Run only these items: `services` for (o) and (p), host services'
    /// key-value store and events (with their floors, in their own turns);
    /// `sandbox` for (q), spawn to ready by sandbox; `grpc` for the gRPC
    /// Invoke path's figures alone, to compare builds: (b) and (c) latency,
    /// (b) and (f) throughput at 16 and 64, (d) the Go example, (e) a
    /// parallel fan-out to 16.
    #[arg(long, value_name = "ITEMS")]
    only: Option<String>,
    /// How long `--soak` runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    soak_for: f64,
}

/// How many samples each item takes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Rounds that (a), (b), (c), (j) and (l) take their latency samples in,
    /// in turn, and (b), (f) and (j) their throughput, and (g) and (j)
    /// their cold starts: load from outside the run then falls on all of
    /// them alike.
    rounds: usize,
    /// Timed calls per contender, over all rounds.
    invoke_calls: usize,
    /// Timed dispatches to each example plugin (d).
    example_calls: usize,
    /// Dispatches per fan-out size is `fan_budget / N`, at least `fan_min`.
    fan_budget: usize,
    /// See `fan_budget`.
    fan_min: usize,
    /// How long each contender's throughput is measured, per concurrency.
    throughput_for: Duration,
    /// Cold starts of one plugin, per contender.
    cold_starts: usize,
    /// Starts of 100 plugins at once, per contender.
    many_runs: usize,
    /// SIGKILLs in (h).
    kills: usize,
    /// How long after ready the memory is read.
    settle: Duration,
    /// Jobs `outboard run -- true` per contender in (k).
    job_runs: usize,
    /// Timed key-value calls per contender in (o).
    kv_calls: usize,
    /// Events published per contender (1 and 16 subscribers) in (p).
    events: usize,
}

const FULL: Plan = Plan {
    rounds: 10,
    invoke_calls: 20_000,
    example_calls: 2_000,
    fan_budget: 4_000,
    fan_min: 200,
    throughput_for: Duration::from_secs(4),
    cold_starts: 60,
    many_runs: 5,
    kills: 100,
    settle: Duration::from_secs(1),
    job_runs: 40,
    kv_calls: 4_000,
    events: 500,
};

const QUICK: Plan = Plan {
    rounds: 2,
    invoke_calls: 400,
    example_calls: 30,
    fan_budget: 40,
    fan_min: 5,
    throughput_for: Duration::from_millis(300),
    cold_starts: 4,
    many_runs: 1,
    kills: 3,
    settle: Duration::from_millis(100),
    job_runs: 3,
    kv_calls: 40,
    events: 6,
};

/// The throughput concurrencies.
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Servers in the bare tonic fan-out, the floor of (e) at N = 16.
const FLOOR_FAN_OUT: usize = 16;

/// Plugins in the "many" cold start and memory items.
const MANY: usize = 100;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // On a worker thread, as a server's handlers run (the daemon's do):
    // awaited from `block_on`'s own thread, every answer would take one
    // more hop, from the worker that reads the socket to this thread.
    let code = runtime.block_on(async { tokio::spawn(run(args)).await })??;
    std::process::exit(code)
}

fn paths() -> anyhow::Result<Paths> {
    let exe = std::env::current_exe().context("locating the harness")?;
    let bin_dir = exe.parent().context("the harness's directory")?.to_owned();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?
        .to_owned();
    Ok(Paths { root, bin_dir })
}

fn step(what: &str) {
    eprintln!("outboard-bench: {what}");
}

async fn run(args: Args) -> anyhow::Result<i32> {
    let plan = if args.quick { QUICK } else { FULL };
    let paths = paths()?;
    let began = Instant::now();
    let load_before = load_average();

    let go_env_guard = paths.go_bin("env-guard");
    let go_example_build = if args.no_build {
        Ok(())
    } else {
        build(&paths, &go_env_guard)?
    };

    let scratch = procs::scratch()?;
    if let Some(workload) = &args.soak {
        let duration = Duration::from_secs_f64(args.soak_for);
        soak(
            &paths,
            scratch.path(),
            workload,
            args.soak_callers,
            duration,
        )
        .await?;
        return Ok(0);
    }
    if let Some(only) = &args.only {
        let table = match only.as_str() {
            "services" => measure::host_services(&plan, &paths, scratch.path())
                .await
                .markdown(),
            "sandbox" => report::sandbox_markdown(
                &measure::sandbox_starts(&plan, &paths, scratch.path()).await,
            ),
            "grpc" => {
                let go = go_example_build
                    .is_ok()
                    .then_some(go_env_guard.as_path())
                    .filter(|p| p.exists());
                grpc::measure(&plan, &paths, scratch.path(), go).await?
            }
            _ => anyhow::bail!(
                "--only {only:?}: the items that run alone are `services` ((o) and (p)), \
                 `sandbox` ((q)) and `grpc` ((b), (c), (d) Go, (e) parallel 16, (f) 16 and 64)"
            ),
        };
        drop(scratch);
        let report = format!(
            "{}\n{}",
            machine(&args, "", load_before, began.elapsed()),
            table
        );
        write(&args, &report)?;
        return Ok(0);
    }
    let setup = measure::Setup {
        paths: &paths,
        dir: scratch.path(),
        build: !args.no_build,
        go_example_build,
        go_env_guard: &go_env_guard,
    };
    let results = measure::all(&plan, setup).await?;
    drop(scratch);
    say_what_is_missing(&results);
    write_report(&args, &results, load_before, began.elapsed())?;
    Ok(0)
}

/// Builds the bench binaries, then the Go example plugin; the plugin's
/// build failing is the (d) item's, not the run's.
fn build(paths: &Paths, go_env_guard: &Path) -> anyhow::Result<Result<(), String>> {
    step("building the bench binaries");
    procs::cargo_build(paths)?;
    step("building the Go example plugin");
    Ok(procs::go_build(
        &paths.root.join("plugin-examples/go"),
        go_env_guard,
    ))
}

/// Says which items could not be measured, and why.
fn say_what_is_missing(results: &Results) {
    for (what, result) in [
        ("(d) Go example", results.go_example.as_ref().err()),
        (
            "(d) Python example, fast path",
            results.python_example.as_ref().err(),
        ),
        (
            "(d) Python example, gRPC",
            results.python_example_grpc.as_ref().err(),
        ),
        ("(j) go-plugin", results.goplugin.as_ref().err()),
        (
            "(k) outboard run --daemon",
            results.daemon.job.as_ref().err(),
        ),
        (
            "(l) Invoke through the daemon",
            results.daemon.invoke.as_ref().err(),
        ),
        (
            "(m) daemon RSS, 100 plugins",
            results.daemon.many_rss.as_ref().err(),
        ),
        (
            "(n) the cost of observability",
            results.observability.as_ref().err(),
        ),
        (
            "(q) spawn to ready by sandbox",
            results.sandbox.as_ref().err(),
        ),
    ] {
        if let Some(why) = result {
            step(&format!("{what}: {why}"));
        }
    }
    if let Some(note) = report::daemon_note(&results.daemon) {
        step(&note);
    }
}

/// Prints the report and writes it to `--markdown`'s file.
fn write_report(
    args: &Args,
    results: &Results,
    load_before: String,
    took: Duration,
) -> anyhow::Result<()> {
    let go = results.goplugin.as_ref().map_or_else(
        |_| String::new(),
        |g| {
            format!(
                ", {} with go-plugin {}",
                g.info.go_version, g.info.go_plugin_version
            )
        },
    );
    let report = format!(
        "{}\n{}",
        machine(args, &go, load_before, took),
        results.markdown()
    );
    write(args, &report)
}

/// Prints the report and writes it to `--markdown`'s file.
fn write(args: &Args, report: &str) -> anyhow::Result<()> {
    println!("{report}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, report).with_context(|| format!("writing {}", path.display()))?;
        step(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// `--soak`: one workload, for a profiler to watch.
async fn soak(
    paths: &Paths,
    dir: &Path,
    workload: &str,
    callers: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let rate = match workload {
        "tonic" => {
            let tonic = floor::TonicFloor::start(paths, dir, "tonic").await?;
            tonic.throughput(callers, duration).await?
        }
        "tonic-direct" => floor::soak_direct(paths, dir, callers, duration).await?,
        "invoke" | "invoke-grpc" => {
            let path = if workload == "invoke" {
                outboard::InvokePath::Fast
            } else {
                outboard::InvokePath::Grpc
            };
            let single = outboard::Single::start(paths, dir, path).await?;
            let rate = single.throughput(callers, duration).await;
            single.stop().await;
            rate?
        }
        "fan-out" => {
            outboard::soak_fan_out(paths, dir, 16, outboard::InvokePath::Fast, duration).await?
        }
        "fan-out-grpc" => {
            outboard::soak_fan_out(paths, dir, 16, outboard::InvokePath::Grpc, duration).await?
        }
        other => anyhow::bail!(
            "unknown workload {other:?}: tonic, tonic-direct, invoke, invoke-grpc, fan-out or \
             fan-out-grpc"
        ),
    };
    println!("{workload}: {rate:.0}/s");
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The machine and the run, in a few lines.
fn machine(args: &Args, go: &str, load_before: String, took: Duration) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_owned(), |m| m.trim().to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".to_owned(), |k| k.trim().to_owned());
    format!(
        "Machine: {model}, {cpus} CPUs, {mem_gib:.0} GiB, Linux {kernel}{go}.\n\
         Run: {} build, {} mode, {:.0} s; load average {load_before} before, {} after.\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if args.quick { "quick (smoke)" } else { "full" },
        took.as_secs_f64(),
        load_average(),
    )
}
