//! `--only grpc`: the figures of the gRPC Invoke path alone, short enough
//! to run many times in turns with another build: (b) and (c) latency in
//! turns, (b) and (f) throughput at 16 and 64 callers in turns, (d) the Go
//! example, and (e) a parallel fan-out to 16 no-op plugins. Each figure is
//! printed as a row and, on the last line, as `key=value` pairs for a
//! script to compare builds.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::floor::TonicFloor;
use crate::outboard::{self, Example, InvokePath, Single};
use crate::procs::Paths;
use crate::stats::Latency;
use crate::{Plan, step};

/// The concurrencies of the throughput figures.
const CONCURRENCY: [usize; 2] = [16, 64];

/// Plugins in the fan-out figure.
const FAN_OUT: usize = 16;

/// Measures the gRPC path's figures; `go_env_guard` is the Go example's
/// binary, if it was built.
pub(crate) async fn measure(
    plan: &Plan,
    paths: &Paths,
    dir: &Path,
    go_env_guard: Option<&Path>,
) -> anyhow::Result<String> {
    let mut figures: Vec<(&str, String, f64)> = Vec::new();

    step("(b) tonic echo and (c) Outboard with one no-op plugin: latency, in turns");
    let tonic = TonicFloor::start(paths, dir, "tonic").await?;
    let single = Single::start(paths, dir, InvokePath::Grpc).await?;
    let per_round = (plan.invoke_calls / plan.rounds).max(1);
    let (mut b, mut c) = (Vec::new(), Vec::new());
    for round in 0..=plan.rounds {
        let calls = if round == 0 {
            per_round / 4 + 1
        } else {
            per_round
        };
        for k in 0..2 {
            let (samples, into) = if (round + k) % 2 == 0 {
                (tonic.samples(calls).await?, &mut b)
            } else {
                (single.samples(calls).await?, &mut c)
            };
            if round > 0 {
                into.extend(samples);
            }
        }
    }
    let (b, c) = (Latency::of(b), Latency::of(c));
    figures.push(("b_p50_us", "(b) bare tonic p50".into(), micros(b.p50)));
    figures.push((
        "c_p50_us",
        "(c) Host::dispatch, 1 no-op plugin, p50".into(),
        micros(c.p50),
    ));
    figures.push((
        "c_p99_us",
        "(c) Host::dispatch, 1 no-op plugin, p99".into(),
        micros(c.p99),
    ));

    step("(b, f) throughput at concurrency 16 and 64, in turns");
    let turns = plan.rounds.min(4);
    let slice = plan.throughput_for / turns as u32;
    for (concurrency, keys) in CONCURRENCY
        .into_iter()
        .zip([["b16", "f16"], ["b64", "f64"]])
    {
        let mut rates = [0.0f64; 2];
        for round in 0..turns {
            for k in 0..2 {
                let who = (round + k) % 2;
                rates[who] += if who == 0 {
                    tonic.throughput(concurrency, slice).await?
                } else {
                    single.throughput(concurrency, slice).await?
                } / turns as f64;
            }
        }
        figures.push((
            keys[0],
            format!("(b) bare tonic, {concurrency} callers, /s"),
            rates[0],
        ));
        figures.push((
            keys[1],
            format!("(f) Outboard, {concurrency} callers, /s"),
            rates[1],
        ));
    }
    drop(tonic);
    single.stop().await;

    match go_env_guard {
        Some(command) => {
            step("(d) the Go example env-guard");
            let config = json!({"required": ["CI"], "forbidden": ["AWS_SECRET_ACCESS_KEY"]});
            let example = Example {
                name: "env-guard",
                command,
                config: &config,
                phase: "pre_validation",
            };
            let go = outboard::example(
                dir,
                example,
                &[InvokePath::Grpc],
                plan.rounds,
                plan.example_calls,
            )
            .await?
            .remove(0);
            figures.push(("d_go_p50_us", "(d) Go env-guard p50".into(), micros(go.p50)));
        }
        None => step("(d) the Go example is not built: skipped"),
    }

    step("(e) parallel fan-out to 16 no-op plugins");
    let calls = (plan.fan_budget / 4).max(plan.fan_min);
    let fan = outboard::parallel_fan_out(paths, dir, FAN_OUT, calls).await?;
    figures.push((
        "e16_p50_us",
        "(e) parallel fan-out to 16, p50".into(),
        micros(fan.p50),
    ));

    let mut out = String::from("| figure | value |\n| --- | ---: |\n");
    for (_, label, value) in &figures {
        let _ = writeln!(out, "| {label} | {value:.1} |");
    }
    out.push_str("\ngrpc:");
    for (key, _, value) in &figures {
        let _ = write!(out, " {key}={value:.1}");
    }
    out.push('\n');
    Ok(out)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
