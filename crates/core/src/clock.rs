//! Processing time, injected.
//!
//! Event time drives every result; processing time only paces things a
//! person watches, such as early (partial) window results. Operators read it
//! from a [`Clock`] they are given, never from the system directly, so a
//! test moves time by hand with a [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic processing-time clock.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Time elapsed since an arbitrary, fixed origin.
    fn now(&self) -> Duration;
}

/// The machine's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to; clones share the time.
///
/// ```
/// use std::time::Duration;
/// use iotflow_core::clock::{Clock, ManualClock};
/// let clock = ManualClock::default();
/// let seen_by_operator = clock.clone();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(seen_by_operator.now(), Duration::from_millis(1500));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.micros
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
}
