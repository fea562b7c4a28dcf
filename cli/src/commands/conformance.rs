//! `outboard conformance`: the battery's results for people (a table) or
//! scripts (JSON).

use std::io::Write;

use outboard_conformance::{Options, Setting, run as run_checks};
use outboard_host::{Escaped, sandbox};

use super::target::Target;
use crate::args::{ConformanceArgs, SandboxPreset, Switch};
use crate::exit::EXIT_CHECK_FAILED;
use crate::render::checks::{summary, table};

/// Runs the checks, prints them (a table, or JSON with the summary on
/// stderr), and returns 0 if all passed, else 1.
pub(crate) async fn run(args: ConformanceArgs) -> anyhow::Result<u8> {
    let mut target = Target::from_args(&args.target)?;
    if let Some(switch) = args.fastpath {
        target.spec_mut().fastpath = switch == Switch::On;
    }
    if args.sandbox == Some(SandboxPreset::Strict) {
        let spec = target.spec_mut();
        spec.sandbox = spec.sandbox.strict();
        // What the battery runs under, or why it cannot: the launches would
        // fail with the same error, check after check.
        let walls = sandbox::plan(&spec.name, &spec.sandbox, sandbox::offers())?;
        for wall in walls {
            // A user or group name comes from a plugin.toml, maybe a package's.
            eprintln!(
                "sandbox: {} = {} ({})",
                Escaped::line(&wall.setting),
                Escaped::line(&wall.value),
                Escaped::line(&wall.mechanism)
            );
        }
    }
    let options = match target {
        Target::Configured(spec) => Options {
            handshake_timeout: spec.handshake_timeout,
            spec,
            setting: Setting::Configured,
        },
        Target::Command { spec, config } => Options {
            handshake_timeout: spec.handshake_timeout,
            spec,
            setting: Setting::Command { config },
        },
    };
    let checks = run_checks(&options).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&checks)?)?;
        eprintln!("{}", summary(&checks));
    } else {
        write!(out, "{}", table(&checks))?;
    }
    Ok(if checks.iter().all(|c| c.passed) {
        0
    } else {
        EXIT_CHECK_FAILED
    })
}
