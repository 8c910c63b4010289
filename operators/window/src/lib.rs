//! Event-time windows.
//!
//! [`Windowed::window`] cuts a keyed stream of readings into windows of
//! event time and emits one [`WindowResult`] per key and window:
//!
//! * **tumbling** `[k·size, (k+1)·size)` (window-major, see
//!   [`TumblingState`]), **sliding** `[k·slide, k·slide + size)` (panes
//!   shared between the windows, see [`SlidingState`]),
//!   **session** (per-key gap, merging) and **count** windows ([`WindowSpec`]);
//! * keyed by any function of the reading;
//! * computing [`Stats`] (count, min, max, exact sum, mean) or, with
//!   [`Windowed::window_with`], any [`Aggregate`]: count, sum, min, max,
//!   mean, variance and standard deviation, first and last, percentiles
//!   from a DDSketch, distinct counts from HyperLogLog, tuples of them, a
//!   list named in TOML ([`Aggregates`]), or your own.
//!
//! How it works: readings are exchanged between workers by a stable hash of
//! their key, so each key lives on one worker, which keeps its open windows
//! in a [`WindowState`] (a serde type the checkpoints snapshot, and which
//! splits by key when a job resumes on another number of workers). The input
//! frontier is the watermark + 1 (see [`iotflow_core::event_time`]); input is
//! applied in time order once the frontier has passed it, and a window fires
//! once the frontier has passed its last millisecond: fleet-v1's rule,
//! "fires once watermark ≥ s + size − 1". Results are then the same on any
//! number of workers, in any arrival order, across restarts.
//!
//! **Lateness.** A reading whose window fired is *late*. Within the window's
//! allowed lateness it still goes in, and the window is emitted again marked
//! [`ResultKind::Update`]; beyond it, the reading goes to the late output
//! with the window it missed ([`LateReading`](iotflow_types::LateReading)).
//! The event-time source normally catches those first (configure it with
//! [`WindowSpec::lateness`]); the window's own late output is the safety net
//! that keeps counts conserved whatever the source does.
//!
//! **Early firing.** With [`WindowOptions::early_every`], each key's earliest
//! open window is also emitted periodically, in processing time, marked
//! [`ResultKind::Partial`], for dashboards that cannot wait for the window to
//! close.

#![deny(missing_docs)]

pub mod agg;
mod count;
mod operator;
mod session;
mod sliding;
mod spec;
mod tumbling;
mod tumbling_state;

pub use agg::{Aggregate, AggregateSpec, Aggregates, AggregatesConfig, StatsAggregate};
pub use count::CountState;
pub use iotflow_types::{ResultKind, SeriesKey, Stats, WindowResult};
pub use operator::{WindowState, WindowStreams, Windowed};
pub use session::SessionState;
pub use sliding::SlidingState;
pub use spec::{WindowOptions, WindowSpec};
pub use tumbling::{Tumbling, TumblingCheckpointed, TumblingConfig};
pub use tumbling_state::TumblingState;
