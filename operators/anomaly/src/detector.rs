//! The detector contract: a per-series state machine that turns each
//! reading into a [`Verdict`].
//!
//! A detector is split in two:
//!
//! * a [`Statistic`] computes a raw, non-negative anomaly statistic for a
//!   value against its series' state *before* the value (|z|, robust |z|, a
//!   CUSUM sum, a run length, …), then folds the value in. It knows its
//!   `scale`: the raw value of its default alarm level.
//! * a [`Threshold`] turns the raw statistic into a flag, fixed or learned.
//!
//! [`Thresholded`] joins the two into a [`Detector`], the trait the
//! `.detect(..)` operator and `iotflow eval-anomaly` run. Every score is
//! also mapped to `[0, 1)` the same way, `score = 1 − 4^(−raw / scale)`:
//! monotone in the raw statistic, 0 for a perfectly ordinary value, 0.75 at
//! the default alarm level, and 0 while the statistic is still warming up.

use serde::Serialize;
use serde::de::DeserializeOwned;

use iotflow_types::Timestamp;

use crate::threshold::{Threshold, ThresholdState};

/// What a detector says about one reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Verdict {
    /// Anomaly score in `[0, 1)`, `1 − 4^(−raw / scale)`.
    pub score: f64,
    /// The raw statistic (0 while warming up).
    pub raw: f64,
    /// Whether the reading is flagged anomalous.
    pub flag: bool,
}

/// Maps a raw statistic to `[0, 1)`: 0.75 at `scale`.
#[inline]
pub fn normalize(raw: f64, scale: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 {
        return 0.0;
    }
    // 1 - 4^(-x) = -expm1(-x ln 4); expm1 keeps precision near 0.
    let s = -(-raw / scale * std::f64::consts::LN_2 * 2.0).exp_m1();
    s.clamp(0.0, 1.0)
}

/// A streaming detector: per-series state and an update per reading, in
/// event-time order of the series.
pub trait Detector: Clone + 'static {
    /// The state of one series: plain data, so it can be snapshotted.
    type State: Clone + Serialize + DeserializeOwned + 'static;
    /// The state of a series that has seen nothing.
    fn init(&self) -> Self::State;
    /// Scores `value` at `ts` against the state, then folds it in.
    fn update(&self, st: &mut Self::State, ts: Timestamp, value: f64) -> Verdict;
}

/// A raw anomaly statistic (see the [crate docs](crate)).
pub trait Statistic: Clone + 'static {
    /// The state of one series.
    type State: Clone + Serialize + DeserializeOwned + 'static;
    /// The state of a series that has seen nothing.
    fn init(&self) -> Self::State;
    /// The statistic of `value` against the state before it (`None` while
    /// warming up), after which the value is folded in.
    fn observe(&self, st: &mut Self::State, ts: Timestamp, value: f64) -> Option<f64>;
    /// The raw value of the default alarm level (maps to score 0.75).
    fn scale(&self) -> f64;
}

/// A statistic with a threshold: a [`Detector`].
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholded<S> {
    /// The statistic.
    pub stat: S,
    /// When it flags.
    pub threshold: Threshold,
}

impl<S: Statistic> Thresholded<S> {
    /// `stat` flagging at its own scale (its default alarm level).
    pub fn fixed(stat: S) -> Self {
        let value = stat.scale();
        Thresholded {
            stat,
            threshold: Threshold::Fixed { value },
        }
    }
}

impl<S: Statistic> Detector for Thresholded<S> {
    type State = (S::State, ThresholdState);

    fn init(&self) -> Self::State {
        (self.stat.init(), ThresholdState::default())
    }

    #[inline]
    fn update(&self, st: &mut Self::State, ts: Timestamp, value: f64) -> Verdict {
        match self.stat.observe(&mut st.0, ts, value) {
            None => Verdict::default(),
            Some(raw) => Verdict {
                score: normalize(raw, self.stat.scale()),
                raw,
                flag: self.threshold.flag(&mut st.1, raw),
            },
        }
    }
}

/// Runs `detector` over one series, in order: the scores a causal replay
/// gives (what `iotflow eval-anomaly` writes).
pub fn replay<D: Detector>(
    detector: &D,
    series: impl IntoIterator<Item = (Timestamp, f64)>,
) -> Vec<Verdict> {
    let mut st = detector.init();
    series
        .into_iter()
        .map(|(ts, v)| detector.update(&mut st, ts, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_monotone_and_pinned_at_scale() {
        assert_eq!(normalize(0.0, 5.0), 0.0);
        assert_eq!(normalize(-1.0, 5.0), 0.0);
        assert_eq!(normalize(f64::NAN, 5.0), 0.0);
        assert!((normalize(5.0, 5.0) - 0.75).abs() < 1e-15);
        assert!((normalize(10.0, 5.0) - 0.9375).abs() < 1e-15);
        let mut last = 0.0;
        for i in 1..1000 {
            let s = normalize(f64::from(i) * 0.1, 5.0);
            assert!(s > last && s <= 1.0);
            last = s;
        }
        assert_eq!(normalize(f64::INFINITY, 5.0), 1.0);
    }
}
