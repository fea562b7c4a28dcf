//! (n)'s table and target: the cost of observability per call, each
//! configuration against the one with everything off.

use std::time::Duration;

use super::{Results, Target, rate, ratio, secs, table, time};
use crate::stats::Latency;

/// (n): three daemons under the same load.
#[derive(Debug, Clone)]
pub(crate) struct Observability {
    /// Concurrent callers.
    pub concurrency: usize,
    /// How often `/metrics` was scraped.
    pub scrape_every: Duration,
    /// No listener, no export.
    pub off: ObservedLoad,
    /// `--http`, scraped.
    pub metrics: ObservedLoad,
    /// `--http`, scraped, and spans exported over OTLP.
    pub traced: ObservedLoad,
    /// Scrapes answered, over the whole run.
    pub scrapes: u64,
    /// The last scrape's body, bytes.
    pub scrape_bytes: u64,
    /// Spans the receiver got.
    pub spans: usize,
    /// Of which `outboard.invoke`.
    pub invoke_spans: usize,
}

/// One configuration's figures under load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObservedLoad {
    /// Completed calls per second.
    pub rate: f64,
    /// Each call's time, under that load.
    pub latency: Latency,
}

/// What "a few percent" is held to: p50 and throughput with metrics on
/// within this fraction of off.
const FEW_PERCENT: f64 = 0.05;

impl Observability {
    /// `load`'s p50, p99 and rate as ratios to off's.
    fn ratios(&self, load: &ObservedLoad) -> [f64; 3] {
        [
            secs(load.latency.p50) / secs(self.off.latency.p50),
            secs(load.latency.p99) / secs(self.off.latency.p99),
            load.rate / self.off.rate,
        ]
    }
}

impl Results {
    /// (n)'s table, under its own heading line, or why it is missing.
    pub(super) fn observability_markdown(&self) -> String {
        let mut out = String::from(
            "(n) the cost of observability: `Invoke` through the control API, 1 Rust no-op \
             plugin, ",
        );
        let o = match &self.observability {
            Ok(o) => o,
            Err(why) => {
                out.push_str(&format!("not measured: {why}\n"));
                return out;
            }
        };
        out.push_str(&format!(
            "concurrency {}, the three daemons in turns\n\n",
            o.concurrency
        ));
        let mut rows = vec![
            [
                "configuration",
                "n",
                "p50",
                "p99",
                "throughput",
                "p50 × off",
                "p99 × off",
                "throughput × off",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        let scraped = format!(
            "metrics: `--http`, `/metrics` scraped every {} ms ({} scrapes, {:.1} kB each)",
            o.scrape_every.as_millis(),
            o.scrapes,
            o.scrape_bytes as f64 / 1e3
        );
        let traced = format!(
            "metrics + traces: as above, and OTLP export ({} spans received, {} `outboard.invoke`)",
            o.spans, o.invoke_spans
        );
        for (what, load) in [
            ("off: no HTTP listener, no trace export".to_owned(), &o.off),
            (scraped, &o.metrics),
            (traced, &o.traced),
        ] {
            let [p50, p99, tp] = o.ratios(load);
            rows.push(vec![
                what,
                load.latency.n.to_string(),
                time(load.latency.p50),
                time(load.latency.p99),
                rate(load.rate),
                ratio(Some(p50)),
                ratio(Some(p99)),
                ratio(Some(tp)),
            ]);
        }
        table(
            &mut out,
            &rows,
            &[false, true, true, true, true, true, true, true],
        );
        out
    }

    /// "Metrics on costs no more than a few percent", and what traces add
    /// (reported, no target).
    pub(super) fn observability_targets(&self) -> Vec<Target> {
        let o = self.observability.as_ref().ok();
        let metrics = o.map(|o| o.ratios(&o.metrics));
        let traced = o.map(|o| o.ratios(&o.traced));
        let cost = |r: [f64; 3]| {
            format!(
                "p50 {:+.1} %, throughput {:+.1} %",
                (r[0] - 1.0) * 100.0,
                (r[2] - 1.0) * 100.0
            )
        };
        vec![
            Target {
                what: "metrics on: p50 and throughput at concurrency 64 within 5 % of off (n)",
                measured: metrics.map_or_else(|| "—".to_owned(), cost),
                pass: metrics.map(|r| r[0] <= 1.0 + FEW_PERCENT && r[2] >= 1.0 - FEW_PERCENT),
            },
            Target {
                what: "metrics and traces on, against off (n)",
                measured: traced.map_or_else(|| "—".to_owned(), cost),
                pass: None,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(p50_us: u64, rate: f64) -> ObservedLoad {
        ObservedLoad {
            rate,
            latency: Latency {
                n: 100,
                p50: Duration::from_micros(p50_us),
                p99: Duration::from_micros(p50_us * 2),
            },
        }
    }

    #[test]
    fn ratios_are_against_off() {
        let o = Observability {
            concurrency: 64,
            scrape_every: Duration::from_millis(100),
            off: load(1000, 4000.0),
            metrics: load(1020, 3960.0),
            traced: load(1500, 3000.0),
            scrapes: 50,
            scrape_bytes: 4000,
            spans: 900,
            invoke_spans: 300,
        };
        let [p50, p99, tp] = o.ratios(&o.metrics);
        assert!((p50 - 1.02).abs() < 1e-9);
        assert!((p99 - 1.02).abs() < 1e-9);
        assert!((tp - 0.99).abs() < 1e-9);
        assert_eq!(o.ratios(&o.off), [1.0, 1.0, 1.0]);
    }
}
