//! A duration histogram with fixed buckets: atomics to record into (no
//! lock, no allocation on the call path), read as cumulative counts.
//!
//! The bounds are the same for every histogram the host keeps, so that
//! plugin calls and phase dispatches can be compared bucket by bucket:
//! from 0.5 ms (a warm call over a Unix socket takes a few hundred
//! microseconds) to 10 s (five times the default call timeout; a call cut
//! off at a longer timeout lands in the overflow bucket, counted in
//! `count`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// The buckets' upper bounds, in seconds, smallest first. A duration is
/// counted in the first bucket whose bound it does not exceed (`le`).
pub const BUCKET_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`BUCKET_BOUNDS`] in nanoseconds, for comparing without floats.
const BOUNDS_NANOS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Durations counted into the fixed buckets.
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    /// Per bucket (not cumulative), then one for what exceeds the last
    /// bound.
    counts: [AtomicU64; BUCKET_BOUNDS.len() + 1],
    /// The sum of every duration recorded, in nanoseconds.
    sum_nanos: AtomicU64,
}

/// A histogram at one moment, as Prometheus reads one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Each bound (seconds) with how many durations were at or below it
    /// (cumulative); the implicit `+Inf` bucket is [`Histogram::count`].
    pub buckets: Vec<(f64, u64)>,
    /// Every duration recorded.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Buckets::default().snapshot()
    }
}

impl Buckets {
    /// Counts `duration` in its bucket.
    pub(crate) fn record(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let slot = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The cumulative counts now. The count is the sum of the buckets read,
    /// so the `+Inf` bucket always equals it, even while calls record.
    pub(crate) fn snapshot(&self) -> Histogram {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(BUCKET_BOUNDS.len());
        for (bound, count) in BUCKET_BOUNDS.iter().zip(&self.counts) {
            running += count.load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let overflow = self.counts[BUCKET_BOUNDS.len()].load(Ordering::Relaxed);
        Histogram {
            buckets,
            count: running + overflow,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nanosecond_bounds_are_the_published_ones() {
        for (nanos, seconds) in BOUNDS_NANOS.iter().zip(BUCKET_BOUNDS) {
            assert_eq!(*nanos as f64 / 1e9, seconds);
        }
        assert!(BOUNDS_NANOS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_duration_counts_in_the_first_bucket_it_does_not_exceed() {
        let buckets = Buckets::default();
        let us = Duration::from_micros;
        // On a bound: that bucket (`le`). Just above: the next one.
        for d in [
            us(0),
            us(500),
            us(501),
            us(1000),
            Duration::from_secs(10),
            Duration::from_secs(11),
        ] {
            buckets.record(d);
        }
        let h = buckets.snapshot();
        let at = |bound: f64| h.buckets.iter().find(|(b, _)| *b == bound).map(|(_, c)| *c);
        assert_eq!(at(0.0005), Some(2));
        assert_eq!(at(0.001), Some(4));
        assert_eq!(at(0.0025), Some(4));
        assert_eq!(at(5.0), Some(4));
        assert_eq!(at(10.0), Some(5));
        // The 11 s one is only in the count (`+Inf`).
        assert_eq!(h.count, 6);
        assert!(
            (h.sum_seconds - 21.002_001).abs() < 1e-9,
            "{}",
            h.sum_seconds
        );
    }

    #[test]
    fn nothing_recorded_is_every_bucket_at_zero() {
        let h = Histogram::default();
        assert_eq!(h.buckets.len(), BUCKET_BOUNDS.len());
        assert!(h.buckets.iter().all(|(_, c)| *c == 0));
        assert_eq!((h.count, h.sum_seconds), (0, 0.0));
    }

    #[test]
    fn a_duration_beyond_u64_nanoseconds_is_counted_not_wrapped() {
        let buckets = Buckets::default();
        buckets.record(Duration::MAX);
        let h = buckets.snapshot();
        assert_eq!(h.count, 1);
        assert_eq!(h.buckets.last().map(|(_, c)| *c), Some(0));
    }
}
