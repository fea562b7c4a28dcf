//! (k), (l) and (m): the daemon, `outboard up`, as the CLI and a control
//! API client use it. (k) `outboard run -- true` standalone against
//! `outboard run --daemon -- true`; (l) one `Invoke` through the control
//! API (its samples are taken in turns with (c)'s `Host::dispatch`, see
//! `measure`); (m) the daemon's RSS and its plugins'.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outboard_proto::control::v1::control_service_client::ControlServiceClient;
use outboard_proto::control::v1::{InvokeRequest, verdict};
use tonic::transport::Channel;

use crate::configs;
use crate::daemon::{self, Daemon};
use crate::floor;
use crate::procs::Paths;
use crate::report::{JobRuns, Rss};
use crate::stats::Latency;

/// The phase (l)'s no-op plugin subscribes to, as (c)'s does.
const PHASE: &str = "bench";

/// (l): a daemon with one no-op plugin and a control API client on its
/// socket.
#[derive(Debug)]
pub(crate) struct InvokeDaemon {
    daemon: Daemon,
    caller: Caller,
}

/// Invokes (l)'s phase on a daemon; cheap to clone, one per caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    client: ControlServiceClient<Channel>,
    request: InvokeRequest,
}

impl InvokeDaemon {
    /// Starts the daemon and connects to its control socket.
    pub(crate) async fn start(paths: &Paths, dir: &Path) -> anyhow::Result<InvokeDaemon> {
        InvokeDaemon::start_with(paths, dir, "invoke", |_| {}).await
    }

    /// Like [`InvokeDaemon::start`], for a daemon called `name` (its config
    /// and socket files), `setup` adding to its command first.
    pub(crate) async fn start_with(
        paths: &Paths,
        dir: &Path,
        name: &str,
        setup: impl FnOnce(&mut std::process::Command),
    ) -> anyhow::Result<InvokeDaemon> {
        let config = configs::noops(paths, dir, name, 1, PHASE)?;
        let daemon =
            tokio::task::block_in_place(|| Daemon::start_with(paths, dir, &config, name, setup))?;
        let client = ControlServiceClient::new(floor::connect(daemon.socket.clone()).await?);
        let request = InvokeRequest {
            phase: PHASE.to_owned(),
            context: Some(outboard_proto::json::json_to_struct(
                &crate::outboard::small_context(),
            )),
        };
        Ok(InvokeDaemon {
            daemon,
            caller: Caller { client, request },
        })
    }

    /// `calls` invocations, one at a time, each timed and checked to have
    /// passed.
    pub(crate) async fn samples(&self, calls: usize) -> anyhow::Result<Vec<Duration>> {
        Latency::samples(calls, || self.caller.call()).await
    }

    /// A caller of its phase.
    pub(crate) fn caller(&self) -> Caller {
        self.caller.clone()
    }

    /// The daemon.
    pub(crate) fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// Stops the daemon (SIGTERM, waited for).
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        drop(self.caller);
        tokio::task::block_in_place(|| self.daemon.stop())
    }
}

impl Caller {
    /// One invocation, checked to have passed; owns what it needs, so
    /// that many can run at once.
    pub(crate) fn call(&self) -> impl Future<Output = anyhow::Result<()>> + Send + use<> {
        let (mut client, request) = (self.client.clone(), self.request.clone());
        async move {
            let response = client.invoke(request).await?.into_inner();
            let result = response
                .report
                .and_then(|r| r.verdict)
                .and_then(|v| v.result);
            if !matches!(result, Some(verdict::Result::Passed(_))) {
                bail!("Invoke {PHASE} through the daemon did not pass: {result:?}");
            }
            Ok(())
        }
    }
}

/// (k) and (m) with the example plugins: `runs` jobs `outboard run --
/// true` standalone and as many through a daemon started once, in turns
/// (after one of each untimed), and the daemon's RSS `settle` after it is
/// ready.
pub(crate) fn job_runs(
    paths: &Paths,
    dir: &Path,
    runs: usize,
    settle: Duration,
) -> anyhow::Result<(JobRuns, Rss)> {
    let examples = configs::examples(paths, dir)?;
    let daemon = Daemon::start(paths, dir, &examples.config, "examples")?;
    let result = (|| {
        std::thread::sleep(settle);
        let rss = Rss::of(&daemon)?;
        let standalone = || {
            job(paths, dir, |cmd| {
                cmd.arg("--config").arg(&examples.config);
            })
        };
        let through_daemon = || {
            job(paths, dir, |cmd| {
                cmd.arg("--daemon")
                    .arg("--control-socket")
                    .arg(&daemon.socket);
            })
        };
        let mut samples: [Vec<Duration>; 2] = Default::default();
        for round in 0..=runs {
            for k in 0..2 {
                let who = (round + k) % 2;
                let took = if who == 0 {
                    standalone()?
                } else {
                    through_daemon()?
                };
                if round > 0 {
                    samples[who].push(took);
                }
            }
        }
        let [standalone, daemon] = samples;
        anyhow::Ok((
            JobRuns {
                plugins: examples.plugins,
                missing: examples.missing.clone(),
                standalone: Latency::of(standalone),
                daemon: Latency::of(daemon),
            },
            rss,
        ))
    })();
    let stopped = daemon.stop();
    let measured = result?;
    stopped?;
    Ok(measured)
}

/// One `outboard run ARGS -- true`, timed from spawn to exit; it must
/// succeed.
fn job(
    paths: &Paths,
    dir: &Path,
    args: impl FnOnce(&mut std::process::Command),
) -> anyhow::Result<Duration> {
    let mut cmd = daemon::outboard_command(paths, dir);
    cmd.arg("run");
    args(&mut cmd);
    cmd.args(["--", "true"]);
    let started = Instant::now();
    let output = cmd.output().context("running outboard run")?;
    let took = started.elapsed();
    check(&cmd, &output)?;
    Ok(took)
}

fn check(cmd: &std::process::Command, output: &Output) -> anyhow::Result<()> {
    if output.status.success() {
        return Ok(());
    }
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    bail!(
        "outboard {} exited {}: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// (m) with `count` no-op plugins: the daemon's RSS and its plugins'
/// `settle` after it is ready.
pub(crate) fn many_rss(
    paths: &Paths,
    dir: &Path,
    count: usize,
    settle: Duration,
) -> anyhow::Result<Rss> {
    let config = configs::noops(paths, dir, "many", count, PHASE)?;
    let daemon = Daemon::start(paths, dir, &config, "many")?;
    std::thread::sleep(settle);
    let rss = Rss::of(&daemon);
    daemon.stop()?;
    rss
}

impl Rss {
    /// The daemon's RSS and its plugins' now.
    fn of(daemon: &Daemon) -> anyhow::Result<Rss> {
        let (daemon_kib, plugins_kib) = daemon.rss_kib()?;
        Ok(Rss {
            daemon_kib,
            plugins_kib,
        })
    }
}
