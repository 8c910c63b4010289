//! Exponential backoff with jitter between reconnection attempts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long to wait between reconnection attempts.
///
/// The n-th consecutive failure waits a random time in
/// `[d/2, d]` where `d = min(initial_ms · 2ⁿ⁻¹, max_ms)` ("equal jitter"):
/// clients that lost the same broker do not all come back at once, and a
/// broker that is down for long is retried every `max_ms/2 … max_ms`.
/// A successful connection resets the sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// First delay, ms (default 100).
    pub initial_ms: u64,
    /// Largest delay, ms (default 10 000).
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial_ms: 100,
            max_ms: 10_000,
        }
    }
}

/// The state of one backoff sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A sequence seeded from the clock (seed only varies the jitter).
    pub(crate) fn new(config: BackoffConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Self::with_seed(config, seed)
    }

    /// A sequence with a fixed seed (tests).
    pub(crate) fn with_seed(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            failures: 0,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let max = self.config.max_ms.max(1);
        let shift = (self.failures - 1).min(32);
        let ceiling = self
            .config
            .initial_ms
            .max(1)
            .saturating_mul(1u64 << shift)
            .min(max);
        let half = ceiling / 2;
        let jitter = self.next_random() % (ceiling - half + 1);
        Duration::from_millis(half + jitter)
    }

    /// Consecutive failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let cfg = BackoffConfig {
            initial_ms: 100,
            max_ms: 1_000,
        };
        let mut b = Backoff::with_seed(cfg, 42);
        let ceilings = [100u64, 200, 400, 800, 1_000, 1_000, 1_000];
        for c in ceilings {
            let d = b.next_delay().as_millis() as u64;
            assert!(d >= c / 2 && d <= c, "delay {d} outside [{}, {c}]", c / 2);
        }
        assert_eq!(b.failures(), 7);
        b.reset();
        let d = b.next_delay().as_millis() as u64;
        assert!((50..=100).contains(&d));
    }

    #[test]
    fn jitter_varies_and_huge_failure_counts_do_not_overflow() {
        let mut b = Backoff::with_seed(BackoffConfig::default(), 7);
        let delays: Vec<u64> = (0..200)
            .map(|_| b.next_delay().as_millis() as u64)
            .collect();
        assert!(delays.iter().all(|&d| d <= 10_000));
        let tail: std::collections::BTreeSet<_> = delays[20..].iter().collect();
        assert!(tail.len() > 10, "jitter should spread delays: {tail:?}");
        let mut z = Backoff::with_seed(
            BackoffConfig {
                initial_ms: 0,
                max_ms: 0,
            },
            0,
        );
        assert!(z.next_delay() <= Duration::from_millis(1));
    }
}
