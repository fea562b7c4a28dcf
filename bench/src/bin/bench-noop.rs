//! `bench-noop`: the benchmark's no-op plugin, written with the Rust SDK.
//! It subscribes to each phase given as an argument (`bench-noop PHASE...`,
//! default `bench`) with priority 10 and answers every invocation with
//! `CONTINUE` and an empty patch.

use std::process::ExitCode;

use outboard_plugin::{Invocation, Manifest, Plugin, PluginError, Reply};

/// The plugin: the phases it subscribes to.
struct Noop {
    /// Phase names from the command line.
    phases: Vec<String>,
}

impl Plugin for Noop {
    fn manifest(&self) -> Manifest {
        self.phases.iter().fold(
            Manifest::new("bench-noop", env!("CARGO_PKG_VERSION"))
                .describe("Does nothing, for benchmarks"),
            |manifest, phase| manifest.subscribe(phase.clone(), 10),
        )
    }

    async fn invoke(&self, _invocation: Invocation) -> Result<Reply, PluginError> {
        Ok(Reply::ok())
    }
}

fn main() -> ExitCode {
    let mut phases: Vec<String> = std::env::args().skip(1).collect();
    if phases.is_empty() {
        phases.push("bench".to_owned());
    }
    outboard_plugin::run(Noop { phases })
}
