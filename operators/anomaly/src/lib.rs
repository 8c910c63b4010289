//! Streaming anomaly detectors.
//!
//! # Detectors
//!
//! A [`Detector`] keeps a small state per series and turns each reading
//! into a [`Verdict`]: a raw statistic, a score in `[0, 1)` and a flag. Each
//! is a [`Statistic`] (how unusual is this value, given the series so far)
//! joined with a [`Threshold`] (fixed, or learned from the statistic's own
//! past with a streaming quantile). The built-in ones, by
//! [`DetectorConfig`] name:
//!
//! | name | raw statistic | per reading | alarm level |
//! |---|---|---|---|
//! | `zscore` | EWMA z-score \|v − mean\| / sd | O(1) | 5 |
//! | `mad` | robust \|v − median\| / (1.4826 MAD) over a sliding window | O(log w) + a shift of w values | 5 |
//! | `cusum` | two-sided CUSUM max(S⁺, S⁻) in σ | O(1) | h = 10 |
//! | `holt_winters` | \|Holt-Winters residual\| / its RMS | O(1) | 5 |
//! | `flatline` | run of repeated values | O(1) | 8 |
//! | `rate` | \|Δv/Δt\| over the typical rate (or a limit) | O(1) | 5 (1) |
//! | `rcf` (feature `rcf`) | Random Cut Forest score of a shingle | O(trees · log sample) | 2.5 |
//! | `auto` | max of `mad`, `cusum`, `flatline` scores | as `mad` | any part flags |
//!
//! Every statistic is computed for a value against the state *before* it,
//! so a score is causal (it depends on the readings up to it) and an
//! outlier does not mask itself. The score is `1 − 4^(−raw / level)`
//! ([`normalize`]): 0.75 at the detector's default alarm level, the same
//! meaning for every detector, which is what lets `auto` take a maximum.
//! [`replay`] runs a detector over one series outside timely, which is how
//! `iotflow eval-anomaly` scores a CSV file.
//!
//! # Operators
//!
//! [`Detect::detect`] runs any detector per key (`SeriesKey::of` for one
//! state per device and metric, or any key function) and emits an
//! [`Alert`](iotflow_types::Alert) per flagged reading, and with
//! [`Emit::Scores`] every reading's [`Scored`] record too (opt-in: on
//! fleet-v1 it costs about a third of the throughput). [`Score::score`] is
//! the fleet-v1 EWMA z-score special case ([`Ewma`]): alerts only,
//! `|z| > threshold` once warm, exactly the fleet pipeline's rule.
//! [`DetectMultivariate::detect_multivariate`] scores several metrics of a
//! device as one shingled vector ([`multivariate`]: Mahalanobis distance,
//! or RCF); [`ForecastCrossing::forecast`] predicts when each series'
//! trend crosses a threshold ([`forecast`]).
//!
//! Per reading, the detectors' cost is in memory, not arithmetic: on
//! fleet-v1's 40,000 series every state lookup misses the cache. So a
//! series' state lives inline in the operator's hash-map entry (one and
//! three parts, [`AnyDetectorState`]), the MAD window is one allocation
//! (ring and sorted copy), an adaptive threshold's estimator is boxed only
//! when used, and released readings are sorted by a compact key, not moved.
//!
//! Order matters for a stateful detector, so all of them run in one
//! operator shell: readings are buffered until the input frontier (the watermark)
//! passes them, then scored per series in event-time order. That makes the
//! scores the same with 1, 2 or 20 workers, and across checkpoints and
//! restarts, at the price of holding readings for up to the source's
//! maximum disorder. Where latency matters more than run-to-run identity
//! across workers, the EWMA operator offers [`ScoreOrder::Arrival`], which
//! scores every reading the moment it arrives.
//!
//! # State
//!
//! Operator state ([`ScorerState`], [`DetectState`]) is plain serde data
//! under the checkpoint contract of `iotflow_core::state`: keyed by the
//! same stable hash the exchange routes by, so a snapshot written by `W`
//! workers restores on any number of workers.

#![deny(missing_docs)]

mod config;
mod detect;
mod detector;
mod error;
pub mod eval;
mod ewma;
pub mod forecast;
pub mod multivariate;
mod shell;
mod stats;
mod threshold;

pub use config::{AnyDetector, AnyDetectorState, AutoConfig, DETECTORS, DetectorConfig, PartState};
pub use detect::{Detect, DetectState, DetectStreams, Emit, Scored};
pub use detector::{Detector, Statistic, Thresholded, Verdict, normalize, replay};
pub use error::Error;
pub use ewma::{Ewma, EwmaState, Score, ScoreCheckpointed, ScoreOrder, ScoreStreams, ScorerState};
pub use forecast::{
    Direction, Forecast, ForecastConfig, ForecastCrossing, ForecastStreams, KeyedForecast,
    TrendState,
};
pub use multivariate::{
    DetectMultivariate, DeviceScore, MultivariateConfig, MultivariateStreams, VectorDetectorConfig,
    VectorScore,
};
pub use stats::cusum::{CusumConfig, CusumState};
pub use stats::holt_winters::{HoltWintersConfig, HoltWintersState};
pub use stats::mad::{MadConfig, MadState};
pub use stats::mahalanobis::{MahalanobisConfig, MahalanobisState};
pub use stats::orderstats::OrderStats;
#[cfg(feature = "rcf")]
pub use stats::rcf::{Forest, RcfConfig, RcfState};
pub use stats::rules::{FlatlineConfig, FlatlineState, RateConfig, RateState};
pub use stats::zscore::ZScoreConfig;
pub use stats::{AnyStat, AnyState};
pub use threshold::{P2, Threshold, ThresholdState};
