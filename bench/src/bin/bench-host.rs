//! `bench-host N NOOP`: a program embedding the Outboard host, for the
//! memory benchmark. It starts `N` instances of the no-op plugin at `NOOP`
//! through [`Host::start`], prints `ready` followed by the plugins' pids,
//! and keeps them supervised until stdin closes; then it stops them.
//!
//! Its RSS is what an application pays for the host library with `N`
//! plugins: the tokio runtime, the supervisors, the gRPC channels.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use outboard_host::Host;
use outboard_host::{HostConfig, PluginSpec};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(noop)) = (args.next(), args.next()) else {
        bail!("usage: bench-host N NOOP");
    };
    let count: usize = count.parse().context("N is a count")?;
    let plugins = (0..count)
        .map(|i| PluginSpec::new(format!("noop-{i:03}"), &noop))
        .collect();
    let config = HostConfig {
        plugins,
        ..HostConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let host = Host::start(&config).await?;
        let pids: Vec<String> = host
            .plugins()
            .iter()
            .filter_map(|p| p.status().pid)
            .map(|p| p.to_string())
            .collect();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "ready {}", pids.join(" "))?;
            out.flush()?;
        }
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        host.stop().await;
        anyhow::Ok(())
    })
}
