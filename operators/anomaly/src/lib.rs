//! Streaming anomaly detectors.
//!
//! [`Score::score`] runs a detector per (device, metric) series and emits an
//! [`Alert`](iotflow_types::Alert) for every reading it finds anomalous. The first detector is the
//! EWMA z-score of fleet-v1 ([`Ewma`]): an exponentially weighted mean and
//! variance per series, `z = (v − mean) / sqrt(var)` against the state
//! *before* `v` is folded in, an alert when `|z| > threshold` once the series
//! has seen `warmup` readings and `var > 0`.
//!
//! Order matters for an EWMA, so readings are scored per series in event-time
//! order: the operator buffers readings until the input frontier (the
//! watermark) passes them, then scores them sorted by event time. That makes
//! the alerts the same with 1, 2 or 20 workers, at the price of holding
//! readings for up to the source's maximum disorder. A reading that arrives
//! behind the frontier (possible only when the source lets it through) is
//! scored at once, in arrival order. Where latency matters more than
//! run-to-run identity across workers, [`ScoreOrder::Arrival`] scores every
//! reading the moment it arrives.

#![deny(missing_docs)]

mod ewma;

pub use ewma::{Ewma, EwmaState, Score, ScoreCheckpointed, ScoreOrder, ScoreStreams, ScorerState};
