//! The `prometheus-client` collector: at each scrape it reads a [`Scrape`]
//! and encodes every family from it, so nothing is counted twice and the
//! host never knows Prometheus.
//!
//! Names follow Prometheus' conventions: `outboard_` for the daemon's own
//! families, `process_` for its process (as every client library names
//! them); counters end in `_total` (the encoder adds it), units are
//! `_seconds` and `_bytes`. Labels are bounded: plugin and phase names come
//! from the operator's configuration, the rest from fixed sets (state,
//! outcome, reason, result). Every family is written, with no samples when
//! there is nothing to show, so that the set of families never changes.

use std::fmt;
use std::sync::Arc;

use outboard_host::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::scrape::{Histogram, Scrape, per_bucket};

/// Reads what a scrape shows.
pub(crate) type Read = Arc<dyn Fn() -> Scrape + Send + Sync>;

/// Encodes what `read` gives, at each scrape.
#[derive(Clone)]
pub(crate) struct FiguresCollector {
    read: Read,
}

impl fmt::Debug for FiguresCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiguresCollector").finish_non_exhaustive()
    }
}

impl FiguresCollector {
    /// A collector of what `read` returns at each scrape.
    pub(crate) fn new(read: Read) -> FiguresCollector {
        FiguresCollector { read }
    }
}

impl Collector for FiguresCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let scrape = (self.read)();
        plugins(&scrape, &mut encoder)?;
        calls(&scrape, &mut encoder)?;
        phases(&scrape, &mut encoder)?;
        process(&scrape, &mut encoder)
    }
}

/// Every state a plugin can be in, with its label value.
const STATES: [(State, &str); 8] = [
    (State::Starting, "starting"),
    (State::Ready, "ready"),
    (State::Unhealthy, "unhealthy"),
    (State::Restarting, "restarting"),
    (State::Failed, "failed"),
    (State::Stopping, "stopping"),
    (State::Stopped, "stopped"),
    (State::Disabled, "disabled"),
];

/// A state's label value.
pub(crate) fn state_name(state: State) -> &'static str {
    STATES
        .iter()
        .find(|(s, _)| *s == state)
        .map_or("unknown", |(_, name)| name)
}

/// One family's descriptor.
struct Family {
    /// Its name, without the unit or the `_total` the encoder adds.
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
}

const fn family(name: &'static str, unit: Option<Unit>, help: &'static str) -> Family {
    Family { name, help, unit }
}

/// Labels of one sample.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A family of `kind` with `rows`, each sample's value written by `write`.
fn samples<'a, V>(
    encoder: &mut DescriptorEncoder<'_>,
    family: &Family,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
    write: impl Fn(&mut MetricEncoder<'_>, V) -> fmt::Result,
) -> fmt::Result {
    let mut metric =
        encoder.encode_descriptor(family.name, family.help, family.unit.as_ref(), kind)?;
    for (labels, value) in rows {
        write(&mut metric.encode_family(&labels)?, value)?;
    }
    Ok(())
}

/// A counter family with `rows`.
fn counter<'a, V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder<'_>,
    family: &Family,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> fmt::Result {
    samples(encoder, family, MetricType::Counter, rows, |m, v| {
        m.encode_counter::<NoLabelSet, V, u64>(&v, None)
    })
}

/// A gauge family with `rows`.
fn gauge<'a, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    family: &Family,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> fmt::Result {
    samples(encoder, family, MetricType::Gauge, rows, |m, v| {
        m.encode_gauge(&v)
    })
}

/// A histogram family with `rows`.
fn histogram<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    family: &Family,
    rows: impl IntoIterator<Item = (Labels<'a>, &'a Histogram)>,
) -> fmt::Result {
    samples(encoder, family, MetricType::Histogram, rows, |m, h| {
        m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &per_bucket(h), None)
    })
}

/// Per plugin: up, state, restarts, start duration, log lines, usage.
fn plugins(s: &Scrape, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let live = || s.plugins.iter().filter_map(|p| p.state.map(|st| (p, st)));
    gauge(
        e,
        &family(
            "outboard_plugin_up",
            None,
            "1 if the plugin is ready (running and answering), else 0.",
        ),
        live().map(|(p, st)| (vec![("plugin", &*p.name)], i64::from(st == State::Ready))),
    )?;
    gauge(
        e,
        &family(
            "outboard_plugin_state",
            None,
            "The plugin's supervision state: 1 for the state it is in, 0 for the others.",
        ),
        live().flat_map(|(p, st)| {
            STATES.iter().map(move |(state, name)| {
                (
                    vec![("plugin", &*p.name), ("state", *name)],
                    i64::from(*state == st),
                )
            })
        }),
    )?;
    gauge(
        e,
        &family(
            "outboard_plugin_optional",
            None,
            "1 if the plugin is optional (the daemon's readiness leaves it out), else 0.",
        ),
        live().map(|(p, _)| (vec![("plugin", &*p.name)], i64::from(p.optional))),
    )?;
    counter(
        e,
        &family(
            "outboard_plugin_restarts",
            None,
            "Starts of the plugin after its first, by reason.",
        ),
        s.plugins.iter().flat_map(|p| {
            p.restarts
                .iter()
                .map(|(reason, n)| (vec![("plugin", &*p.name), ("reason", &**reason)], *n))
        }),
    )?;
    gauge(
        e,
        &family(
            "outboard_plugin_start_duration",
            Some(Unit::Seconds),
            "How long the plugin's latest start took, from spawn to ready.",
        ),
        s.plugins.iter().filter_map(|p| {
            p.last_start_duration
                .map(|d| (vec![("plugin", &*p.name)], d.as_secs_f64()))
        }),
    )?;
    counter(
        e,
        &family(
            "outboard_plugin_log_lines",
            None,
            "Lines the plugin wrote to stdout or stderr (and crash reports), as the daemon's log book received them.",
        ),
        s.plugins
            .iter()
            .map(|p| (vec![("plugin", &*p.name)], p.log.lines)),
    )?;
    counter(
        e,
        &family(
            "outboard_plugin_log_lines_dropped",
            None,
            "Of the plugin's log lines, those pushed out of the daemon's bounded log ring (no longer shown by outboard logs).",
        ),
        s.plugins
            .iter()
            .map(|p| (vec![("plugin", &*p.name)], p.log.dropped)),
    )?;
    gauge(
        e,
        &family(
            "outboard_plugin_resident_memory",
            Some(Unit::Bytes),
            "Resident memory of the plugin's process group (every live process in it).",
        ),
        s.plugins
            .iter()
            .filter_map(|p| p.usage.map(|u| (vec![("plugin", &*p.name)], u.rss_bytes))),
    )?;
    counter(
        e,
        &family(
            "outboard_plugin_cpu",
            Some(Unit::Seconds),
            "CPU time (user and system) of the plugin's running process group, its reaped children included; starts again from 0 when the plugin restarts.",
        ),
        s.plugins.iter().filter_map(|p| {
            p.usage
                .map(|u| (vec![("plugin", &*p.name)], u.cpu_time.as_secs_f64()))
        }),
    )
}

/// Per plugin and phase: calls by outcome and their duration.
fn calls(s: &Scrape, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let all = || {
        s.plugins
            .iter()
            .flat_map(|p| p.calls.iter().map(move |c| (&*p.name, c)))
    };
    counter(
        e,
        &family(
            "outboard_plugin_invocations",
            None,
            "Calls of the plugin for a phase, by outcome: ok, vetoed, failed, timed_out, crashed, skipped (not called: the phase had stopped).",
        ),
        all().flat_map(|(plugin, c)| {
            c.outcomes.iter().map(move |(outcome, n)| {
                (
                    vec![
                        ("plugin", plugin),
                        ("phase", &*c.phase),
                        ("outcome", *outcome),
                    ],
                    *n,
                )
            })
        }),
    )?;
    histogram(
        e,
        &family(
            "outboard_plugin_invocation_duration",
            Some(Unit::Seconds),
            "How long the plugin's calls for a phase took, retries included (skipped calls aside).",
        ),
        all().map(|(plugin, c)| (vec![("plugin", plugin), ("phase", &*c.phase)], &c.duration)),
    )
}

/// Per phase: dispatch duration, results and conflicts; jobs by result.
fn phases(s: &Scrape, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    histogram(
        e,
        &family(
            "outboard_phase_dispatch_duration",
            Some(Unit::Seconds),
            "How long a phase's dispatch took: every plugin's call and the merge.",
        ),
        s.phases
            .iter()
            .map(|p| (vec![("phase", &*p.phase)], &p.duration)),
    )?;
    counter(
        e,
        &family(
            "outboard_phase_dispatches",
            None,
            "Dispatches of a phase, by result: passed, vetoed, failed, refused.",
        ),
        s.phases.iter().flat_map(|p| {
            p.results
                .iter()
                .map(|(result, n)| (vec![("phase", &*p.phase), ("result", &**result)], *n))
        }),
    )?;
    counter(
        e,
        &family(
            "outboard_phase_conflicts",
            None,
            "Dispatches of a phase that failed because two plugins' patches touched the same path.",
        ),
        s.phases
            .iter()
            .map(|p| (vec![("phase", &*p.phase)], p.conflicts)),
    )?;
    counter(
        e,
        &family(
            "outboard_jobs",
            None,
            "Jobs run through the daemon, by result.",
        ),
        s.jobs
            .iter()
            .map(|(result, n)| (vec![("result", &**result)], *n)),
    )
}

/// The daemon's own process.
fn process(s: &Scrape, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let p = s.process;
    counter(
        e,
        &family(
            "process_cpu",
            Some(Unit::Seconds),
            "The daemon's CPU time, user and system.",
        ),
        p.map(|p| (Labels::new(), p.cpu_seconds)),
    )?;
    gauge(
        e,
        &family(
            "process_start_time",
            Some(Unit::Seconds),
            "When the daemon started, in seconds since the Unix epoch.",
        ),
        p.map(|p| (Labels::new(), p.start_time_seconds)),
    )?;
    let counts = [
        (
            family(
                "process_resident_memory",
                Some(Unit::Bytes),
                "The daemon's resident memory.",
            ),
            p.map(|p| p.resident_bytes),
        ),
        (
            family(
                "process_virtual_memory",
                Some(Unit::Bytes),
                "The daemon's virtual memory.",
            ),
            p.map(|p| p.virtual_bytes),
        ),
        (
            family(
                "process_open_fds",
                None,
                "The daemon's open file descriptors.",
            ),
            p.map(|p| p.open_fds),
        ),
        (
            family(
                "process_max_fds",
                None,
                "The daemon's limit on open file descriptors (absent when unlimited).",
            ),
            p.and_then(|p| p.max_fds),
        ),
        (
            family("process_threads", None, "The daemon's threads."),
            p.map(|p| p.threads),
        ),
    ];
    for (family, value) in &counts {
        gauge(e, family, value.map(|v| (Labels::new(), v)))?;
    }
    Ok(())
}
