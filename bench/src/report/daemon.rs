//! The daemon's rows and target: (k) a job standalone and through the
//! daemon, (l) `Invoke` through the control API, (m) the daemon's memory.

use super::{Results, Row, Target, memory_row, secs, time};
use crate::stats::Latency;

/// (k), (l) and (m), each or why not.
#[derive(Debug)]
pub(crate) struct DaemonResults {
    /// (k).
    pub job: Result<JobRuns, String>,
    /// (l) one `Invoke` through the control API.
    pub invoke: Result<Latency, String>,
    /// (m) with the example plugins of (k).
    pub examples_rss: Result<Rss, String>,
    /// (m) with `many_count` no-op plugins.
    pub many_rss: Result<Rss, String>,
}

/// (k): `outboard run -- true` with the example config.
#[derive(Debug, Clone)]
pub(crate) struct JobRuns {
    /// The example plugins that ran.
    pub plugins: usize,
    /// The example plugins left out (not built), and why.
    pub missing: Vec<String>,
    /// Standalone: the run starts and stops every plugin.
    pub standalone: Latency,
    /// `--daemon`: the phases run on the daemon's warm plugins.
    pub daemon: Latency,
}

/// (m): a daemon's memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    /// The `outboard up` process, KiB.
    pub daemon_kib: u64,
    /// The sum over its plugins' processes, KiB.
    pub plugins_kib: u64,
}

/// The daemon path's speed-up the issue asks for.
const SPEED_UP: f64 = 10.0;

impl Results {
    /// (k), (l) and (m).
    pub(super) fn daemon_rows(&self) -> Vec<Row> {
        let d = &self.daemon;
        let mut rows = Vec::new();
        match &d.job {
            Ok(job) => {
                let what = |how: &str| {
                    format!(
                        "`outboard run {how}-- true`, {} example plugins",
                        job.plugins
                    )
                };
                for (how, l) in [("", &job.standalone), ("--daemon ", &job.daemon)] {
                    rows.push(Row {
                        ratios: [None; 3],
                        ..self.latency_row("k", what(how), l)
                    });
                }
            }
            Err(why) => rows.push(Self::missing_row("k", "`outboard run -- true`".into(), why)),
        }
        let what = "`Invoke` through the daemon's control API, 1 Rust no-op plugin";
        rows.push(match &d.invoke {
            Ok(l) => self.latency_row("l", what.into(), l),
            Err(why) => Self::missing_row("l", what.into(), why),
        });
        let examples = d
            .job
            .as_ref()
            .map_or("the".to_owned(), |j| j.plugins.to_string());
        for (count, kind, rss) in [
            (examples, "example", &d.examples_rss),
            (self.many_count.to_string(), "no-op", &d.many_rss),
        ] {
            let what = format!("daemon RSS, {count} {kind} plugins");
            match rss {
                Ok(rss) => {
                    rows.push(memory_row("m", what, rss.daemon_kib, None));
                    let what = format!("sum of those {count} plugins' RSS");
                    rows.push(memory_row("m", what, rss.plugins_kib, None));
                }
                Err(why) => rows.push(Self::missing_row("m", what, why)),
            }
        }
        rows
    }

    /// The daemon's target, and (l)'s cost over (c) (no target: reported).
    pub(super) fn daemon_targets(&self) -> Vec<Target> {
        let d = &self.daemon;
        let speed_up = d
            .job
            .as_ref()
            .ok()
            .map(|j| secs(j.standalone.p50) / secs(j.daemon.p50));
        let added = d.invoke.as_ref().ok().map(|l| {
            let extra = l.p50.saturating_sub(self.invoke.p50);
            format!(
                "+{} per call ({:.2}× (c))",
                time(extra),
                secs(l.p50) / secs(self.invoke.p50)
            )
        });
        vec![
            Target {
                what: "`run --daemon -- true` p50 ≥ 10× faster than standalone (k)",
                measured: speed_up.map_or_else(|| "—".to_owned(), |r| format!("{r:.1}×")),
                pass: speed_up.map(|r| r >= SPEED_UP),
            },
            Target {
                what: "control API `Invoke` over in-process `Host::dispatch` (l − c), p50",
                measured: added.unwrap_or_else(|| "—".to_owned()),
                pass: None,
            },
        ]
    }
}

/// Says what (k) left out.
pub(crate) fn note(results: &DaemonResults) -> Option<String> {
    let job = results.job.as_ref().ok()?;
    (!job.missing.is_empty()).then(|| {
        format!(
            "(k) ran without example plugins that are not built: {}",
            job.missing.join(", ")
        )
    })
}
