#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outboard_host::State;

use super::scrape::{
    CallScrape, Histogram, PhaseScrape, PluginScrape, ProcessScrape, Scrape, per_bucket,
};
use super::{Format, OPENMETRICS, encode, registry};
use crate::logs::LogCounts;
use crate::usage::GroupUsage;

/// Two plugins (one ready, one quarantined), a phase, jobs and a process.
fn sample() -> Scrape {
    let outcomes = |ok, vetoed, crashed| {
        [
            ("ok", ok),
            ("vetoed", vetoed),
            ("failed", 0),
            ("timed_out", 0),
            ("crashed", crashed),
            ("skipped", 0),
        ]
    };
    let histogram = Histogram {
        buckets: vec![(0.001, 1), (0.01, 3), (0.1, 3)],
        count: 4,
        sum_seconds: 0.5,
    };
    Scrape {
        plugins: vec![
            PluginScrape {
                name: "alpha".into(),
                state: Some(State::Ready),
                optional: false,
                restarts: BTreeMap::from([("crashed".into(), 2), ("operator".into(), 1)]),
                last_start_duration: Some(Duration::from_millis(250)),
                calls: vec![CallScrape {
                    phase: "build".into(),
                    outcomes: outcomes(3, 1, 0),
                    duration: histogram.clone(),
                }],
                log: LogCounts {
                    lines: 10,
                    dropped: 2,
                },
                usage: Some(GroupUsage {
                    processes: 1,
                    rss_bytes: 4096,
                    cpu_time: Duration::from_millis(1500),
                    cpu_percent: 0.0,
                }),
            },
            PluginScrape {
                name: "beta".into(),
                state: Some(State::Failed),
                optional: true,
                calls: vec![CallScrape {
                    phase: "build".into(),
                    outcomes: outcomes(0, 0, 1),
                    duration: Histogram::default(),
                }],
                ..PluginScrape::default()
            },
        ],
        phases: vec![PhaseScrape {
            phase: "build".into(),
            duration: histogram,
            results: BTreeMap::from([("passed".into(), 3), ("vetoed".into(), 1)]),
            conflicts: 1,
        }],
        jobs: BTreeMap::from([("succeeded".into(), 2), ("vetoed".into(), 1)]),
        process: Some(ProcessScrape {
            cpu_seconds: 1.25,
            resident_bytes: 1 << 20,
            virtual_bytes: 1 << 30,
            open_fds: 12,
            max_fds: Some(1024),
            start_time_seconds: 1_700_000_000.5,
            threads: 4,
        }),
    }
}

fn encoded(scrape: Scrape, format: Format) -> String {
    let registry = registry(Arc::new(move || scrape.clone()));
    encode(&registry, format).unwrap()
}

/// The sample lines of `body` that start with `prefix`.
fn lines<'a>(body: &'a str, prefix: &str) -> Vec<&'a str> {
    body.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn every_family_is_encoded_with_its_labels_and_values() {
    let body = encoded(sample(), Format::Prometheus);
    let has = |line: &str| {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        )
    };
    has("outboard_plugin_up{plugin=\"alpha\"} 1");
    has("outboard_plugin_up{plugin=\"beta\"} 0");
    has("outboard_plugin_state{plugin=\"beta\",state=\"failed\"} 1");
    has("outboard_plugin_optional{plugin=\"alpha\"} 0");
    has("outboard_plugin_optional{plugin=\"beta\"} 1");
    has("outboard_plugin_state{plugin=\"beta\",state=\"ready\"} 0");
    assert_eq!(lines(&body, "outboard_plugin_state{").len(), 16);
    has("outboard_plugin_restarts_total{plugin=\"alpha\",reason=\"crashed\"} 2");
    has("outboard_plugin_restarts_total{plugin=\"alpha\",reason=\"operator\"} 1");
    has("outboard_plugin_start_duration_seconds{plugin=\"alpha\"} 0.25");
    has("outboard_plugin_log_lines_total{plugin=\"alpha\"} 10");
    has("outboard_plugin_log_lines_dropped_total{plugin=\"alpha\"} 2");
    has("outboard_plugin_resident_memory_bytes{plugin=\"alpha\"} 4096");
    has("outboard_plugin_cpu_seconds_total{plugin=\"alpha\"} 1.5");
    has("outboard_plugin_invocations_total{plugin=\"alpha\",phase=\"build\",outcome=\"ok\"} 3");
    has("outboard_plugin_invocations_total{plugin=\"alpha\",phase=\"build\",outcome=\"vetoed\"} 1");
    has("outboard_plugin_invocations_total{plugin=\"beta\",phase=\"build\",outcome=\"crashed\"} 1");
    assert_eq!(lines(&body, "outboard_plugin_invocations_total{").len(), 12);
    // Cumulative buckets as the host gave them, and +Inf = count.
    has(
        "outboard_plugin_invocation_duration_seconds_bucket{plugin=\"alpha\",phase=\"build\",le=\"0.001\"} 1",
    );
    has(
        "outboard_plugin_invocation_duration_seconds_bucket{plugin=\"alpha\",phase=\"build\",le=\"0.01\"} 3",
    );
    has(
        "outboard_plugin_invocation_duration_seconds_bucket{plugin=\"alpha\",phase=\"build\",le=\"0.1\"} 3",
    );
    has(
        "outboard_plugin_invocation_duration_seconds_bucket{plugin=\"alpha\",phase=\"build\",le=\"+Inf\"} 4",
    );
    has("outboard_plugin_invocation_duration_seconds_count{plugin=\"alpha\",phase=\"build\"} 4");
    has("outboard_plugin_invocation_duration_seconds_sum{plugin=\"alpha\",phase=\"build\"} 0.5");
    has("outboard_phase_dispatch_duration_seconds_count{phase=\"build\"} 4");
    has("outboard_phase_dispatches_total{phase=\"build\",result=\"vetoed\"} 1");
    has("outboard_phase_conflicts_total{phase=\"build\"} 1");
    has("outboard_jobs_total{result=\"succeeded\"} 2");
    has("process_cpu_seconds_total 1.25");
    has("process_resident_memory_bytes 1048576");
    has("process_virtual_memory_bytes 1073741824");
    has("process_open_fds 12");
    has("process_max_fds 1024");
    has("process_start_time_seconds 1700000000.5");
    has("process_threads 4");
    // A plugin that does not run has no usage samples.
    assert!(
        lines(
            &body,
            "outboard_plugin_resident_memory_bytes{plugin=\"beta\""
        )
        .is_empty()
    );
    // Every family has its HELP and TYPE.
    assert_eq!(lines(&body, "# HELP ").len(), lines(&body, "# TYPE ").len());
    has("# TYPE outboard_plugin_invocations_total counter");
    has("# TYPE outboard_plugin_invocation_duration_seconds histogram");
}

#[test]
fn openmetrics_ends_in_eof_and_declares_units() {
    let body = encoded(sample(), Format::OpenMetrics);
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE outboard_plugin_invocations counter\n"),
        "{body}"
    );
    assert!(
        body.contains("# UNIT outboard_plugin_cpu_seconds seconds\n"),
        "{body}"
    );
    assert!(body.contains(
        "outboard_plugin_invocations_total{plugin=\"alpha\",phase=\"build\",outcome=\"ok\"} 3\n"
    ));
}

#[test]
fn a_daemon_still_starting_shows_every_family_and_only_its_process() {
    let body = encoded(
        Scrape {
            process: sample().process,
            ..Scrape::default()
        },
        Format::Prometheus,
    );
    assert!(lines(&body, "outboard_").is_empty(), "{body}");
    assert!(body.contains("# TYPE outboard_plugin_up gauge"));
    assert!(body.contains("process_threads 4"));
}

#[test]
fn the_format_follows_the_accept_header() {
    assert_eq!(Format::negotiate(None), Format::Prometheus);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text; version=1.0.0")),
        Format::OpenMetrics
    );
    // What Prometheus sends.
    assert_eq!(
        Format::negotiate(Some(
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;\
             version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.1")),
        Format::Prometheus
    );
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text;q=0")),
        Format::Prometheus
    );
    assert_eq!(Format::OpenMetrics.content_type(), OPENMETRICS);
    assert!(
        Format::Prometheus
            .content_type()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[test]
fn cumulative_buckets_become_each_buckets_own_count_with_inf() {
    let h = Histogram {
        buckets: vec![(1.0, 2), (2.0, 2), (5.0, 7)],
        count: 9,
        sum_seconds: 20.0,
    };
    assert_eq!(
        per_bucket(&h),
        vec![(1.0, 2), (2.0, 0), (5.0, 5), (f64::INFINITY, 2)]
    );
    assert_eq!(
        per_bucket(&Histogram {
            buckets: Vec::new(),
            count: 0,
            sum_seconds: 0.0
        }),
        vec![(f64::INFINITY, 0)]
    );
}
