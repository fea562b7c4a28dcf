//! The wait before a failed delivery's next attempt: exponential, capped,
//! with jitter so that many deliveries failing together do not all come
//! back at the same moment.

use std::time::Duration;

/// The wait after attempt `attempt` (1 for the first) failed: `initial`
/// doubled for each attempt after the first, capped at `max`, then
/// "equal jitter": half of it fixed, the other half scaled by `jitter`
/// (in `[0, 1)`, random in use).
pub(super) fn after_attempt(
    attempt: u32,
    initial: Duration,
    max: Duration,
    jitter: f64,
) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let full = initial
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(max)
        .min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// [`after_attempt`] with a random jitter.
pub(super) fn random_after_attempt(attempt: u32, initial: Duration, max: Duration) -> Duration {
    after_attempt(attempt, initial, max, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_per_attempt_up_to_the_cap() {
        let waits: Vec<Duration> = (1..=6).map(|a| after_attempt(a, S, 10 * S, 1.0)).collect();
        assert_eq!(waits, [S, 2 * S, 4 * S, 8 * S, 10 * S, 10 * S]);
        assert_eq!(after_attempt(u32::MAX, S, 10 * S, 1.0), 10 * S);
        assert_eq!(after_attempt(0, S, 10 * S, 1.0), S);
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        assert_eq!(after_attempt(3, S, 60 * S, 0.0), 2 * S);
        assert_eq!(after_attempt(3, S, 60 * S, 0.5), 3 * S);
        for _ in 0..100 {
            let wait = random_after_attempt(3, S, 60 * S);
            assert!((2 * S..=4 * S).contains(&wait), "{wait:?}");
        }
    }
}
