//! Rule detectors: a stuck sensor (flatline) and an implausible rate of
//! change.

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::detector::Statistic;
use crate::threshold::Threshold;

/// Stuck sensor (`kind = "flatline"`): the number of consecutive readings
/// equal (within `tolerance`) to the one before. Raw statistic: that run
/// length; default alarm level `min_run`. A live sensor's noise makes exact
/// repeats rare; a frozen one repeats its last value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatlineConfig {
    /// Largest change still counted as "the same value". Default 0.
    #[serde(default)]
    pub tolerance: f64,
    /// Repeats that make a flatline. Default 8.
    #[serde(default = "default_min_run")]
    pub min_run: u64,
    /// Flag rule. Default: fixed at `min_run`.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_min_run() -> u64 {
    8
}

impl Default for FlatlineConfig {
    fn default() -> Self {
        FlatlineConfig {
            tolerance: 0.0,
            min_run: default_min_run(),
            threshold: None,
        }
    }
}

impl FlatlineConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min_run == 0 || self.tolerance.is_nan() || self.tolerance < 0.0 {
            return Err(Error::Config(format!(
                "flatline needs min_run >= 1 and tolerance >= 0, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// Flatline state of one series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlatlineState {
    prev: Option<f64>,
    run: u64,
}

impl Statistic for FlatlineConfig {
    type State = FlatlineState;

    fn init(&self) -> FlatlineState {
        FlatlineState::default()
    }

    #[inline]
    fn observe(&self, st: &mut FlatlineState, _ts: Timestamp, value: f64) -> Option<f64> {
        let prev = st.prev.replace(value)?;
        if (value - prev).abs() <= self.tolerance {
            st.run += 1;
        } else {
            st.run = 0;
        }
        Some(st.run as f64)
    }

    fn scale(&self) -> f64 {
        self.min_run as f64
    }
}

/// Rate of change (`kind = "rate"`): `|Δvalue / Δt|` per second between
/// consecutive readings. With `max_per_s` the raw statistic is the rate
/// over that physical limit (alarm level 1); without it, the rate over the
/// series' exponentially weighted mean absolute rate (alarm level 5), so
/// the rule needs no units. Readings with the same timestamp as the one
/// before are not scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Physical limit, units per second. Default: none (learned).
    #[serde(default)]
    pub max_per_s: Option<f64>,
    /// Smoothing of the learned typical rate. Default 0.02.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Rates to learn from before scoring (learned mode). Default 30.
    #[serde(default = "default_warmup")]
    pub warmup: u64,
    /// Flag rule. Default: fixed at the alarm level.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_alpha() -> f64 {
    0.02
}
fn default_warmup() -> u64 {
    30
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            max_per_s: None,
            alpha: default_alpha(),
            warmup: default_warmup(),
            threshold: None,
        }
    }
}

impl RateConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        let bad_max = self.max_per_s.is_some_and(|m| !m.is_finite() || m <= 0.0);
        if bad_max || self.alpha.is_nan() || self.alpha <= 0.0 || self.alpha > 1.0 {
            return Err(Error::Config(format!("bad rate parameters {self:?}")));
        }
        Ok(())
    }
}

/// Rate state of one series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateState {
    prev: Option<(Timestamp, f64)>,
    n: u64,
    mean_abs: f64,
}

impl Statistic for RateConfig {
    type State = RateState;

    fn init(&self) -> RateState {
        RateState::default()
    }

    #[inline]
    fn observe(&self, st: &mut RateState, ts: Timestamp, value: f64) -> Option<f64> {
        let (pts, pv) = st.prev.replace((ts, value))?;
        if ts <= pts {
            return None;
        }
        let rate = ((value - pv) / ((ts - pts) as f64 / 1000.0)).abs();
        if let Some(max) = self.max_per_s {
            return Some(rate / max);
        }
        let raw = (st.n >= self.warmup).then(|| {
            let typical = st.mean_abs.max(1e-12);
            (rate / typical).min(1e9)
        });
        st.n += 1;
        st.mean_abs = if st.n == 1 {
            rate
        } else {
            st.mean_abs + self.alpha * (rate - st.mean_abs)
        };
        raw
    }

    fn scale(&self) -> f64 {
        if self.max_per_s.is_some() { 1.0 } else { 5.0 }
    }
}
