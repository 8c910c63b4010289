//! Which windows to cut, and when they fire.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use iotflow_core::clock::{Clock, SystemClock};
use iotflow_core::event_time::Lateness;
use serde::{Deserialize, Serialize};

use crate::count::CountState;
use crate::operator::WindowState;
use crate::session::SessionState;
use crate::sliding::SlidingState;
use crate::tumbling_state::TumblingState;

/// Which windows to cut (the `[window]` of a job in TOML, with `kind`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSpec {
    /// Fixed windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window size (ms).
        size_ms: u64,
        /// How long after the watermark passed a window it still takes
        /// readings, each re-emitting the window as an update (ms).
        #[serde(default)]
        allowed_lateness_ms: u64,
    },
    /// Overlapping windows `[k·slide, k·slide + size)`; `size` must be a
    /// multiple of `slide`.
    Sliding {
        /// Window size (ms).
        size_ms: u64,
        /// Distance between window starts (ms).
        slide_ms: u64,
        /// Allowed lateness (ms).
        #[serde(default)]
        allowed_lateness_ms: u64,
    },
    /// Per-key sessions closed by `gap` ms without readings.
    Session {
        /// Inactivity that ends a session (ms).
        gap_ms: u64,
        /// Allowed lateness (ms).
        #[serde(default)]
        allowed_lateness_ms: u64,
    },
    /// Every `size` readings of a key, in event-time order, form a window
    /// `[first ts, last ts + 1)`. At the end of the input each key's last,
    /// shorter window fires too, so every reading is in a window.
    Count {
        /// Readings per window.
        size: u64,
    },
}

impl WindowSpec {
    /// Sliding windows of `size`, every `slide`.
    pub fn sliding(size_ms: u64, slide_ms: u64) -> Self {
        WindowSpec::Sliding {
            size_ms,
            slide_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Sessions closed by `gap_ms` of inactivity.
    pub fn session(gap_ms: u64) -> Self {
        WindowSpec::Session {
            gap_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Tumbling windows of `size_ms`.
    pub fn tumbling(size_ms: u64) -> Self {
        WindowSpec::Tumbling {
            size_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Windows of `size` readings per key.
    pub fn count(size: u64) -> Self {
        WindowSpec::Count { size }
    }

    /// The same windows, open `allowed_ms` after they fire for late readings
    /// that update them (no effect on count windows, which are never late).
    pub fn with_allowed_lateness(mut self, allowed_ms: u64) -> Self {
        match &mut self {
            WindowSpec::Tumbling {
                allowed_lateness_ms,
                ..
            }
            | WindowSpec::Sliding {
                allowed_lateness_ms,
                ..
            }
            | WindowSpec::Session {
                allowed_lateness_ms,
                ..
            } => *allowed_lateness_ms = allowed_ms,
            WindowSpec::Count { .. } => {}
        }
        self
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), iotflow_core::Error> {
        let bad = |m: String| Err(iotflow_core::Error::Config(m));
        match *self {
            WindowSpec::Tumbling { size_ms: 0, .. } => bad("window size must be > 0".into()),
            WindowSpec::Sliding {
                size_ms, slide_ms, ..
            } => {
                if slide_ms == 0 || size_ms == 0 {
                    bad("sliding window size and slide must be > 0".into())
                } else if size_ms % slide_ms != 0 {
                    bad(format!(
                        "sliding window size {size_ms} ms must be a multiple of its slide {slide_ms} ms"
                    ))
                } else {
                    Ok(())
                }
            }
            WindowSpec::Session { gap_ms: 0, .. } => bad("session gap must be > 0".into()),
            WindowSpec::Count { size: 0 } => bad("count window size must be > 0".into()),
            _ => Ok(()),
        }
    }

    /// The lateness rule an event-time source in front of these windows
    /// should apply: a reading is late once the earliest window it belongs
    /// to has fired and its allowed lateness has passed.
    pub fn lateness(&self) -> Lateness {
        match *self {
            WindowSpec::Tumbling {
                size_ms,
                allowed_lateness_ms,
            } => Lateness::Window {
                size_ms,
                allowed_ms: allowed_lateness_ms,
            },
            WindowSpec::Sliding {
                size_ms,
                slide_ms,
                allowed_lateness_ms,
            } => Lateness::Sliding {
                size_ms,
                slide_ms,
                allowed_ms: allowed_lateness_ms,
            },
            WindowSpec::Session {
                gap_ms,
                allowed_lateness_ms,
            } => Lateness::Gap {
                gap_ms,
                allowed_ms: allowed_lateness_ms,
            },
            WindowSpec::Count { .. } => Lateness::Never,
        }
    }

    pub(crate) fn state<K: Eq + Hash + Clone, C: Clone>(&self) -> WindowState<K, C> {
        match *self {
            WindowSpec::Tumbling {
                size_ms,
                allowed_lateness_ms,
            } => WindowState::Tumbling(TumblingState::new(size_ms, allowed_lateness_ms)),
            WindowSpec::Sliding {
                size_ms,
                slide_ms,
                allowed_lateness_ms,
            } => WindowState::Sliding(SlidingState::new(size_ms, slide_ms, allowed_lateness_ms)),
            WindowSpec::Session {
                gap_ms,
                allowed_lateness_ms,
            } => WindowState::Session(SessionState::new(gap_ms, allowed_lateness_ms)),
            WindowSpec::Count { size } => WindowState::Count(CountState::new(size)),
        }
    }
}

/// How a window operator fires beyond its [`WindowSpec`]: early (partial)
/// results for dashboards, paced by processing time.
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    pub(crate) early: Option<Duration>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
}

impl WindowOptions {
    /// Every `every` of processing time, emit each key's earliest open
    /// window as it stands, marked [`ResultKind::Partial`](iotflow_types::ResultKind);
    /// its final result follows when it closes. Off by default.
    pub fn early_every(mut self, every: Duration) -> Self {
        self.early = (!every.is_zero()).then_some(every);
        self
    }

    /// The processing-time clock early firing reads (the system's monotonic
    /// clock by default; a [`ManualClock`](iotflow_core::clock::ManualClock)
    /// in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub(crate) fn early_clock(&self) -> Option<(Duration, Arc<dyn Clock>)> {
        let every = self.early?;
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock::default()));
        Some((every, clock))
    }
}
