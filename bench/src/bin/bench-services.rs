//! `bench-services`: the benchmark's host-services plugin, written with the
//! Rust SDK, timing its own calls back into the host (items (o) and (p)).
//!
//! - `bench-services kv`: subscribes to `bench_kv`. An invocation whose
//!   context is `{"op": "get" | "set", "calls": N}` makes N calls of that
//!   kind to the host's key-value store (own namespace, key `bench`, a
//!   64-byte value), one after another, and answers with each call's time
//!   in nanoseconds at `/bench/ns`.
//! - `bench-services publish`: subscribes to `bench_publish`. An invocation
//!   `{"event": NAME, "seq": S}` reads `CLOCK_MONOTONIC`, publishes `NAME`
//!   with `{"seq": S, "t0": <that reading, ns>}` and answers with the
//!   `Publish` call's own time at `/bench/publish_ns`.
//! - `bench-services subscribe SOCKET PATTERN`: subscribes to the events
//!   matching `PATTERN`; on each delivery reads `CLOCK_MONOTONIC` first,
//!   then sends `"<instance> <seq> <t0> <t1> <attempt>"` as one datagram to
//!   the Unix socket `SOCKET` (the harness's).
//!
//! `CLOCK_MONOTONIC` is one clock for every process of the machine, so the
//! difference of a reading in the publisher and one in a subscriber is the
//! time between them.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use outboard_plugin::{Config, Event, Invocation, Manifest, Plugin, PluginError, Reply};
use serde_json::{Value, json};

/// The phase of the key-value item.
const KV_PHASE: &str = "bench_kv";

/// The phase that makes the publisher publish.
const PUBLISH_PHASE: &str = "bench_publish";

/// The key every call reads or writes.
const KEY: &str = "bench";

/// The value's size, as (a)'s ping-pong.
const VALUE_SIZE: usize = 64;

/// What this instance does.
enum Role {
    /// Times key-value calls.
    Kv,
    /// Publishes on request.
    Publish,
    /// Reports deliveries to the harness's socket.
    Subscribe {
        socket: PathBuf,
        pattern: String,
        instance: std::sync::OnceLock<String>,
    },
}

impl Plugin for Role {
    fn manifest(&self) -> Manifest {
        let manifest = Manifest::new("bench-services", env!("CARGO_PKG_VERSION"))
            .describe("Times host-service calls, for benchmarks");
        match self {
            Role::Kv => manifest
                .subscribe(KV_PHASE, 10)
                .permission("kv", "the key-value calls it times"),
            Role::Publish => manifest
                .subscribe(PUBLISH_PHASE, 10)
                .permission("event:publish:bench.*", "the events it publishes"),
            Role::Subscribe { pattern, .. } => manifest.subscribe_event(pattern.clone()),
        }
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        if let Role::Subscribe { instance, .. } = self {
            let _ = instance.set(config.instance_name.clone());
        }
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        match self {
            Role::Kv => kv(&invocation).await,
            Role::Publish => publish(&invocation).await,
            Role::Subscribe { .. } => Ok(Reply::ok()),
        }
    }

    async fn on_event(&self, event: Event) -> Result<(), PluginError> {
        let t1 = monotonic_ns();
        let Role::Subscribe {
            socket, instance, ..
        } = self
        else {
            return Err(PluginError::internal("only a subscriber takes events"));
        };
        let field = |name: &str| event.payload.get(name).and_then(Value::as_u64);
        let (Some(seq), Some(t0)) = (field("seq"), field("t0")) else {
            return Err(PluginError::invalid_context(format!(
                "event {} carries no seq and t0: {}",
                event.name, event.payload
            )));
        };
        let who = instance.get().map_or("?", String::as_str);
        let line = format!("{who} {seq} {t0} {t1} {}", event.attempt);
        let sender = UnixDatagram::unbound().map_err(internal)?;
        sender
            .send_to(line.as_bytes(), socket)
            .map_err(|e| PluginError::internal(format!("{}: {e}", socket.display())))?;
        Ok(())
    }
}

fn internal(e: impl std::fmt::Display) -> PluginError {
    PluginError::internal(e.to_string())
}

/// `calls` key-value calls of kind `op`, each timed.
async fn kv(invocation: &Invocation) -> Result<Reply, PluginError> {
    let op = invocation.get("/op").and_then(Value::as_str).unwrap_or("");
    let calls = invocation
        .get("/calls")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let kv = invocation.kv();
    let value = vec![b'x'; VALUE_SIZE];
    if op == "get" && kv.get(KEY).await?.is_none() {
        kv.set(KEY, value.clone(), None).await?;
    }
    let mut took = Vec::with_capacity(calls as usize);
    for _ in 0..calls {
        let started = Instant::now();
        match op {
            "get" => {
                if kv.get(KEY).await?.is_none() {
                    return Err(PluginError::internal("the key written before is gone"));
                }
            }
            "set" => kv.set(KEY, value.clone(), None).await?,
            other => {
                return Err(PluginError::invalid_context(format!(
                    "op must be get or set, not {other:?}"
                )));
            }
        }
        took.push(started.elapsed().as_nanos() as u64);
    }
    Ok(Reply::ok().set("/bench/ns", json!(took)))
}

/// Publishes the event the invocation names, stamped with the clock.
async fn publish(invocation: &Invocation) -> Result<Reply, PluginError> {
    let name = invocation
        .get("/event")
        .and_then(Value::as_str)
        .unwrap_or("bench.none");
    let seq = invocation.get("/seq").cloned().unwrap_or(Value::Null);
    let started = Instant::now();
    let t0 = monotonic_ns();
    invocation
        .events()
        .publish(name, json!({"seq": seq, "t0": t0}))
        .await?;
    let took = started.elapsed().as_nanos() as u64;
    Ok(Reply::ok().set("/bench/publish_ns", took))
}

/// `CLOCK_MONOTONIC`, in nanoseconds: the same clock in every process.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; CLOCK_MONOTONIC always
    // exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["kv"] => Role::Kv,
        ["publish"] => Role::Publish,
        ["subscribe", socket, pattern] => Role::Subscribe {
            socket: socket.into(),
            pattern: pattern.to_owned(),
            instance: std::sync::OnceLock::new(),
        },
        _ => {
            eprintln!(
                "usage: bench-services kv | publish | subscribe SOCKET PATTERN (got {args:?})"
            );
            return ExitCode::from(2);
        }
    };
    outboard_plugin::run(role)
}
