//! (q) what each wall costs at start: spawn to ready of the no-op Rust
//! plugin with no sandbox, with the memory and pids limits, and with the
//! strict preset, started in turns so that load from outside the run falls
//! on all three alike.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use outboard_host::config::{FilesystemSpec, Network, SandboxSpec};
use outboard_host::{Plugin, PluginSpec, sandbox};

use crate::procs::Paths;
use crate::report::{SandboxResults, SandboxRow};
use crate::stats::Latency;

/// The memory limit of the limited and the strict contenders.
const MEMORY: u64 = 256 << 20;

/// The pids limit of the limited contender: the no-op plugin's runtime
/// needs a few threads, and this leaves room for them.
const PIDS: u32 = 64;

/// One way of starting the plugin.
struct Contender {
    /// Its row's name.
    what: &'static str,
    /// The spec each start uses.
    spec: PluginSpec,
    /// Why the spec is not the one asked for, if it is not.
    note: Option<String>,
    /// Spawn to ready of each counted start.
    samples: Vec<Duration>,
    /// The walls of the latest start, as `setting value (mechanism)`.
    walls: Vec<String>,
}

/// The no-op plugin, with `sandbox`.
fn noop(paths: &Paths, dir: &Path, sandbox: SandboxSpec) -> PluginSpec {
    let mut spec = PluginSpec::new("noop", paths.bin("bench-noop"));
    spec.args = vec!["bench".to_owned()];
    spec.runtime_base = Some(dir.to_owned());
    spec.sandbox = sandbox;
    spec
}

/// The strict preset: `memory = "256Mi"`, `network = "none"`, the
/// filesystem limited to the plugin's own files (and what every plugin is
/// given: its runtime directory, the system libraries).
fn strict() -> SandboxSpec {
    SandboxSpec {
        memory: Some(MEMORY),
        network: Network::None,
        filesystem: Some(FilesystemSpec::default()),
        ..SandboxSpec::default()
    }
}

impl Contender {
    fn new(what: &'static str, spec: PluginSpec) -> Contender {
        Contender {
            what,
            spec,
            note: None,
            samples: Vec::new(),
            walls: Vec::new(),
        }
    }

    /// One start to ready and its stop; the time to ready if `count`.
    async fn start(&mut self, count: bool) -> anyhow::Result<()> {
        let started = Instant::now();
        let plugin = Plugin::start(&self.spec)
            .await
            .with_context(|| format!("{}: starting the no-op plugin", self.what))?;
        let took = started.elapsed();
        self.walls = plugin
            .sandbox()
            .iter()
            .map(|w| format!("{} {} ({})", w.setting, w.value, w.mechanism))
            .collect();
        plugin.stop().await;
        if count {
            self.samples.push(took);
        }
        Ok(())
    }
}

/// (q): `starts` starts of each contender, to ready and stopped, one at a
/// time, in `rounds` turns after an untimed one.
pub(crate) async fn measure(
    paths: &Paths,
    dir: &Path,
    rounds: usize,
    starts: usize,
) -> anyhow::Result<SandboxResults> {
    let limited = SandboxSpec {
        memory: Some(MEMORY),
        pids: Some(PIDS),
        ..SandboxSpec::default()
    };
    let mut contenders = [
        Contender::new("no sandbox", noop(paths, dir, SandboxSpec::default())),
        Contender::new("memory + pids (256Mi, 64)", noop(paths, dir, limited)),
        Contender::new(
            "strict (256Mi, network none, filesystem its own)",
            noop(paths, dir, strict()),
        ),
    ];
    // A host that cannot enforce `filesystem` (no Landlock, or a build
    // without the wall) refuses the strict preset; the row then measures
    // the rest of it and says so.
    let strict = &mut contenders[2];
    if let Err(err) = sandbox::plan("noop", &strict.spec.sandbox, sandbox::offers())
        && err.setting == "filesystem"
    {
        strict.spec.sandbox.filesystem = None;
        strict.note = Some(format!("filesystem left out: {}", err.problem));
    }
    let per_round = (starts / rounds.max(1)).max(1);
    for round in 0..=rounds {
        for k in 0..contenders.len() {
            let who = (round + k) % contenders.len();
            let runs = if round == 0 { 1 } else { per_round };
            for _ in 0..runs {
                contenders[who].start(round > 0).await?;
            }
        }
    }
    Ok(SandboxResults {
        rows: contenders
            .into_iter()
            .map(|c| SandboxRow {
                what: c.what.to_owned(),
                latency: Latency::of(c.samples),
                walls: c.walls,
                note: c.note,
            })
            .collect(),
    })
}
