//! Exponential backoff with jitter, for throttling and transient errors.
//!
//! The delay before retry `n` (0-based) is drawn uniformly from
//! `[cap/2, cap]` with `cap = min(max, base · 2ⁿ)` ("equal jitter"): it
//! grows like plain exponential backoff but readers throttled together
//! (several workers, several shards) spread their retries instead of
//! hitting the limit again in step.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Retry delays for one kind of retry (one shard's reads, one sink's
/// requests).
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// Delays from `base` up to `max`, seeded from the clock and the thread.
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        use std::hash::{BuildHasher, RandomState};
        // RandomState is seeded per process and per instance: enough to
        // spread workers; no cryptographic quality needed.
        let seed = RandomState::new().hash_one(std::thread::current().id());
        Backoff::with_seed(base, max, seed)
    }

    /// Delays with a fixed seed (tests).
    pub(crate) fn with_seed(base: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The cap of the next delay: `min(max, base · 2^attempt)`.
    fn cap(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next retry; each call doubles the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let cap = self.cap();
        self.attempt = self.attempt.saturating_add(1);
        let half = cap / 2;
        let jitter_ns = u64::try_from((cap - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.rng.random_range(0..=jitter_ns))
    }

    /// Retries since the last success.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success: the next delay starts from `base` again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delays_double_within_jitter_and_stop_at_max() {
        let mut b = Backoff::with_seed(ms(100), ms(1000), 7);
        let caps = [100, 200, 400, 800, 1000, 1000, 1000];
        for cap in caps {
            let d = b.next_delay();
            assert!(
                d >= ms(cap / 2) && d <= ms(cap),
                "{d:?} outside [{}, {cap}] ms",
                cap / 2
            );
        }
        assert_eq!(b.attempts(), 7);
    }

    #[test]
    fn reset_starts_over_from_base() {
        let mut b = Backoff::with_seed(ms(50), ms(10_000), 1);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= ms(50));
    }

    #[test]
    fn jitter_spreads_readers_throttled_together() {
        // Eight readers throttled at once must not all retry at one instant.
        let delays: std::collections::BTreeSet<Duration> = (0..8)
            .map(|seed| {
                let mut b = Backoff::with_seed(ms(1000), ms(1000), seed);
                b.next_delay()
            })
            .collect();
        assert!(delays.len() >= 6, "{delays:?}");
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut b = Backoff::with_seed(ms(100), ms(30_000), 3);
        for _ in 0..200 {
            assert!(b.next_delay() <= ms(30_000));
        }
    }
}
