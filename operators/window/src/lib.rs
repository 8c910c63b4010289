//! Event-time windows.
//!
//! [`Tumbling::tumbling`] cuts a keyed stream of readings into fixed,
//! non-overlapping windows of event time `[s, s + size)` with `s` a multiple
//! of `size`, and emits one [`WindowResult`] per key and window with count,
//! min, max, sum and mean.
//!
//! How it works: readings are exchanged between workers by a stable hash of
//! their key, so each key lives on one worker. Each worker keeps its open
//! windows in a [`TumblingState`] (a serde type: checkpoints snapshot it as
//! is). The input frontier is the watermark + 1 (see
//! [`iotflow_core::event_time`]); a window fires once the frontier has passed
//! its last millisecond plus the allowed lateness — fleet-v1's rule "fires
//! once watermark ≥ s + size − 1". A reading for a window that already fired
//! goes to the late output. When the input ends, every open window fires.
//!
//! The event-time source normally catches late readings first (configure it
//! with [`TumblingConfig::lateness`]); the window's own late output is the
//! safety net that keeps counts conserved whatever the source does.

#![deny(missing_docs)]

pub mod agg;
mod state;
mod tumbling;
mod windows;

pub use agg::{Aggregate, AggregateSpec, Aggregates, AggregatesConfig};
pub use iotflow_types::{SeriesKey, Stats, WindowResult};
pub use state::TumblingState;
pub use tumbling::{Tumbling, TumblingCheckpointed, TumblingConfig, WindowStreams};
pub use windows::{SessionState, SlidingState, WindowSpec, WindowState, Windowed};
