//! (o) Host services' key-value store, as a plugin sees it: `KvGet` and
//! `KvSet` timed inside a Rust plugin (`bench-services kv`, the Rust SDK's
//! client) and inside a Python one (`bench/python/bench_kv.py`, the Python
//! SDK's), each call a gRPC round trip over the instance's host socket to
//! the `HostService` of [`Services`], started as `outboard run` and `up`
//! start it: [`Services::open`] on a fresh state directory, the host
//! started with [`Services::launcher`], then [`Services::serve`]. For
//! scale, in the same turns: the same get and set on the same
//! [`Database`] from the harness, on the blocking pool (the storage
//! floor), and (a)'s raw socket ping-pong.
//!
//! A plugin times its calls itself (a dispatch carries `{"op", "calls"}`
//! and its patch brings back each call's nanoseconds), so the figures hold
//! no dispatch and no patch: only the SDK's call, the socket, the host's
//! handler and the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outboard_host::{Host, HostConfig, PluginSpec};
use outboard_services::{Services, ServicesOptions};
use outboard_state::{Database, KvLimits, KvStore};
use serde_json::{Map, Value, json};

use crate::floor::RawFloor;
use crate::procs::Paths;
use crate::report::KvResults;
use crate::stats::Latency;

/// The Rust plugin's phase (see `bench-services`).
const RUST_PHASE: &str = "bench_kv";

/// The Python plugin's phase (see `bench/python/bench_kv.py`).
const PYTHON_PHASE: &str = "bench_kv_py";

/// The namespace of the harness's own calls: apart from the plugins'.
const FLOOR_NAMESPACE: &str = "bench:floor";

/// The key and value size every contender uses.
const KEY: &str = "bench";
const VALUE_SIZE: usize = 64;

/// A host with host services and plugins, as the CLI starts one.
pub(crate) struct ServicesHost {
    /// The services: the state database, the host sockets.
    pub services: Arc<Services>,
    /// The host.
    pub host: Arc<Host>,
}

impl ServicesHost {
    /// Opens services on `state_dir` (created) and starts `plugins` with
    /// their launcher.
    pub(crate) async fn start(
        state_dir: &Path,
        plugins: Vec<PluginSpec>,
    ) -> anyhow::Result<ServicesHost> {
        let services = Services::open(ServicesOptions::new(state_dir))
            .with_context(|| format!("opening host services in {}", state_dir.display()))?;
        let mut plugins = plugins;
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        let config = HostConfig {
            plugins,
            ..HostConfig::default()
        };
        let host = Host::start_with(&config, services.launcher())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        services.serve(&host);
        Ok(ServicesHost {
            services,
            host: Arc::new(host),
        })
    }

    /// Dispatches `phase` and returns the context after its patches, once
    /// every plugin passed.
    pub(crate) async fn dispatch(
        &self,
        phase: &str,
        context: Map<String, Value>,
    ) -> anyhow::Result<Value> {
        let report = self.host.dispatch(phase, context).await;
        if !report.passed() {
            bail!("phase {phase} did not pass: {:?}", report.verdict);
        }
        Ok(report.context)
    }

    /// Stops the host, then the services.
    pub(crate) async fn stop(self) {
        self.host.shutdown().await;
        self.services.shutdown().await;
    }
}

/// A plugin of (o) or (p), granted everything it asks for.
pub(crate) fn plugin(name: &str, command: PathBuf, args: Vec<String>, dir: &Path) -> PluginSpec {
    let mut spec = PluginSpec::new(name, command);
    spec.args = args;
    spec.runtime_base = Some(dir.to_owned());
    spec.grant = vec!["*".to_owned()];
    // One dispatch makes a round's calls, a second or more of fsyncs.
    spec.call_timeout = Duration::from_secs(120);
    spec
}

/// The Python interpreter of the repository's venv and the script, with
/// this tree's SDK first on the path; `None` when the venv is missing.
fn python_plugin(paths: &Paths, dir: &Path) -> Option<PluginSpec> {
    let python = paths.root.join(".tools/venv/bin/python");
    if !python.exists() {
        return None;
    }
    let script = paths.root.join("bench/python/bench_kv.py");
    let mut spec = plugin(
        "bench-kv-py",
        python,
        vec![script.to_string_lossy().into_owned()],
        dir,
    );
    spec.env.insert(
        "PYTHONPATH".to_owned(),
        paths
            .root
            .join("plugin-sdk-py/src")
            .to_string_lossy()
            .into_owned(),
    );
    Some(spec)
}

/// The contenders of (o), in the order of their samples.
const CONTENDERS: usize = 7;

/// Measures (o): `calls` timed calls per contender over `rounds` turns.
pub(crate) async fn measure(
    paths: &Paths,
    dir: &Path,
    rounds: usize,
    calls: usize,
) -> anyhow::Result<KvResults> {
    let dir = dir.join("kv");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let python = python_plugin(paths, &dir);
    let mut plugins = vec![plugin(
        "bench-kv-rs",
        paths.bin("bench-services"),
        vec!["kv".to_owned()],
        &dir,
    )];
    plugins.extend(python.clone());
    let mut raw = RawFloor::start(paths, &dir)?;
    let host = ServicesHost::start(&dir.join("state"), plugins).await?;
    let database = host.services.database().clone();
    let samples = in_turns(&host, &database, &mut raw, python.is_some(), rounds, calls).await;
    host.stop().await;
    let [raw, db_get, db_set, rust_get, rust_set, py_get, py_set] = samples?;
    let python = if python.is_some() {
        Ok((Latency::of(py_get), Latency::of(py_set)))
    } else {
        Err("not built (run scripts/tools)".to_owned())
    };
    Ok(KvResults {
        raw: Latency::of(raw),
        db_get: Latency::of(db_get),
        db_set: Latency::of(db_set),
        rust_get: Latency::of(rust_get),
        rust_set: Latency::of(rust_set),
        python,
    })
}

/// Every contender's samples, taken in rotating turns; round 0 is a
/// warm-up (the plugins' first calls connect), not counted.
async fn in_turns(
    host: &ServicesHost,
    database: &Arc<Database>,
    raw: &mut RawFloor,
    python: bool,
    rounds: usize,
    calls: usize,
) -> anyhow::Result<[Vec<Duration>; CONTENDERS]> {
    let per_round = (calls / rounds).max(1);
    let value = vec![b'x'; VALUE_SIZE];
    database
        .set(FLOOR_NAMESPACE, KEY, &value, None, &KvLimits::default())
        .context("the first write of the floor")?;
    let mut samples: [Vec<Duration>; CONTENDERS] = Default::default();
    for round in 0..=rounds {
        let n = if round == 0 {
            per_round / 4 + 1
        } else {
            per_round
        };
        for k in 0..CONTENDERS {
            let who = (round + k) % CONTENDERS;
            let taken = match who {
                0 => tokio::task::block_in_place(|| raw.samples(n))?,
                // On the blocking pool, as the services' handlers run it.
                1 | 2 => {
                    let (database, value) = (database.clone(), value.clone());
                    tokio::task::spawn_blocking(move || floor(&database, who == 2, &value, n))
                        .await??
                }
                3 | 4 => plugin_samples(host, RUST_PHASE, who == 4, n).await?,
                _ if python => plugin_samples(host, PYTHON_PHASE, who == 6, n).await?,
                _ => Vec::new(),
            };
            if round > 0 {
                samples[who].extend(taken);
            }
        }
    }
    Ok(samples)
}

/// `n` gets (or sets) on the database itself, each timed.
fn floor(database: &Database, set: bool, value: &[u8], n: usize) -> anyhow::Result<Vec<Duration>> {
    let limits = KvLimits::default();
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        if set {
            database.set(FLOOR_NAMESPACE, KEY, value, None, &limits)?;
        } else if database.get(FLOOR_NAMESPACE, KEY)?.is_none() {
            bail!("the floor's key is gone from the database");
        }
        took.push(started.elapsed());
    }
    Ok(took)
}

/// `n` gets (or sets) made and timed by the plugin on `phase`.
async fn plugin_samples(
    host: &ServicesHost,
    phase: &str,
    set: bool,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let op = if set { "set" } else { "get" };
    let context = match json!({"op": op, "calls": n}) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let after = host.dispatch(phase, context).await?;
    let took = after
        .pointer("/bench/ns")
        .and_then(Value::as_array)
        .with_context(|| format!("the plugin on {phase} answered no /bench/ns"))?;
    let took: Vec<Duration> = took
        .iter()
        .filter_map(Value::as_u64)
        .map(Duration::from_nanos)
        .collect();
    if took.len() != n {
        bail!("the plugin on {phase} timed {} calls, not {n}", took.len());
    }
    Ok(took)
}
