//! Percentiles over sorted samples, and throughput over a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The percentiles of a set of timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    /// How many samples.
    pub n: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
}

impl Latency {
    /// The percentiles of `samples`, which must not be empty.
    pub(crate) fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Latency {
            n: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
        }
    }

    /// Times `calls` runs of `call`, one after another.
    pub(crate) async fn samples<F, Fut>(calls: usize, mut call: F) -> anyhow::Result<Vec<Duration>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            call().await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    /// Times `calls` runs of `call`, one after another, after `calls / 10`
    /// untimed warm-up runs.
    pub(crate) async fn measure<F, Fut>(calls: usize, mut call: F) -> anyhow::Result<Latency>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        Latency::samples(calls / 10, &mut call).await?;
        Ok(Latency::of(Latency::samples(calls, call).await?))
    }
}

/// Completed calls per second with `concurrency` tasks calling `call` in a
/// loop: after a warm-up of a tenth of `duration` (at most 200 ms), the
/// calls that start and finish within the next `duration` are counted.
pub(crate) async fn throughput<F, Fut>(
    concurrency: usize,
    duration: Duration,
    call: F,
) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Ok(load(concurrency, duration, call).await?.rate)
}

/// What [`load`] measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    /// Completed calls per second.
    pub rate: f64,
    /// How long each counted call took, under that load.
    pub took: Vec<Duration>,
}

/// [`throughput`], also keeping how long each counted call took (each
/// task keeps its own, merged at the end: no lock on the way).
pub(crate) async fn load<F, Fut>(
    concurrency: usize,
    duration: Duration,
    call: F,
) -> anyhow::Result<Load>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let call = Arc::new(call);
    let warm_up = (duration / 10).min(Duration::from_millis(200));
    let begin = Instant::now() + warm_up;
    let end = begin + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let call = call.clone();
        tasks.spawn(async move {
            let mut took = Vec::new();
            loop {
                let now = Instant::now();
                if now >= end {
                    return anyhow::Ok(took);
                }
                call().await?;
                let finished = Instant::now();
                if finished < end && now >= begin {
                    took.push(finished - now);
                }
            }
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    Ok(Load {
        rate: all.len() as f64 / duration.as_secs_f64(),
        took: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = (1..=100).map(Duration::from_micros).collect();
        let l = Latency::of(samples);
        assert_eq!(l.n, 100);
        assert_eq!(l.p50, Duration::from_micros(51));
        assert_eq!(l.p99, Duration::from_micros(99));
    }
}
