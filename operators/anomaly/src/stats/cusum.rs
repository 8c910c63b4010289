//! Two-sided CUSUM change detection.

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::detector::Statistic;
use crate::threshold::Threshold;

/// Two-sided CUSUM (`kind = "cusum"`) on values standardized by a baseline
/// mean and σ learned from the first `warmup` readings:
/// `S⁺ = max(0, S⁺ + z − k)`, `S⁻ = max(0, S⁻ − z − k)`, with `z`
/// winsorized to ±`clip` so that one spike cannot trip it (spikes are the
/// MAD detector's job). Raw statistic: `max(S⁺, S⁻)`; default alarm level
/// `h`. When a sum reaches `h` the change is taken as real: both sums
/// restart and the baseline mean is learned again from the next `relearn`
/// readings (σ is kept: a shift moves the level, not the noise), so a level
/// shift is reported once, at its start, and its new level becomes normal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CusumConfig {
    /// Allowance, in σ: half the smallest shift worth detecting. Default 0.5.
    #[serde(default = "default_k")]
    pub k: f64,
    /// Decision interval, in σ. Default 10 (in-control run length in the
    /// tens of thousands of readings with a well-estimated σ).
    #[serde(default = "default_h")]
    pub h: f64,
    /// Readings to learn the baseline from. Default 100.
    #[serde(default = "default_warmup")]
    pub warmup: u64,
    /// Readings to learn a new baseline mean from after an alarm. Default 32
    /// (its error, σ/√32, eats into `k`; fewer makes false alarms likelier).
    #[serde(default = "default_relearn")]
    pub relearn: u64,
    /// Largest |z| one reading contributes. Default 4.
    #[serde(default = "default_clip")]
    pub clip: f64,
    /// Flag rule. Default: fixed at `h`.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_k() -> f64 {
    0.5
}
fn default_h() -> f64 {
    10.0
}
fn default_warmup() -> u64 {
    100
}
fn default_relearn() -> u64 {
    32
}
fn default_clip() -> f64 {
    4.0
}

impl Default for CusumConfig {
    fn default() -> Self {
        CusumConfig {
            k: default_k(),
            h: default_h(),
            warmup: default_warmup(),
            relearn: default_relearn(),
            clip: default_clip(),
            threshold: None,
        }
    }
}

impl CusumConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.k >= 0.0
            && self.h > 0.0
            && self.h.is_finite()
            && self.warmup >= 2
            && self.relearn >= 1
            && self.clip > self.k)
        {
            return Err(Error::Config(format!(
                "cusum needs k >= 0, h > 0, warmup >= 2; got k {} h {} warmup {}",
                self.k, self.h, self.warmup
            )));
        }
        Ok(())
    }
}

/// The CUSUM state of one series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CusumState {
    /// Readings in the current learning phase (Welford).
    learned: u64,
    mean: f64,
    m2: f64,
    /// Baseline, once learned.
    base: Option<(f64, f64)>,
    /// Upper sum.
    pub pos: f64,
    /// Lower sum.
    pub neg: f64,
    /// After an alarm: readings still to learn the new mean from, and
    /// their running sum and count.
    relearn: Option<(u64, f64, u64)>,
}

impl Statistic for CusumConfig {
    type State = CusumState;

    fn init(&self) -> CusumState {
        CusumState::default()
    }

    #[inline]
    fn observe(&self, st: &mut CusumState, _ts: Timestamp, value: f64) -> Option<f64> {
        let Some((mu, sigma)) = st.base else {
            st.learned += 1;
            let d = value - st.mean;
            st.mean += d / st.learned as f64;
            st.m2 += d * (value - st.mean);
            if st.learned >= self.warmup {
                let sd = (st.m2 / (st.learned - 1) as f64).sqrt();
                let sd = sd.max(1e-9 * st.mean.abs().max(1.0));
                st.base = Some((st.mean, sd));
            }
            return None;
        };
        if let Some((left, sum, n)) = st.relearn.as_mut() {
            *sum += value;
            *n += 1;
            *left -= 1;
            if *left == 0 {
                st.base = Some((*sum / *n as f64, sigma));
                st.relearn = None;
            }
            return None;
        }
        let z = ((value - mu) / sigma).clamp(-self.clip, self.clip);
        st.pos = (st.pos + z - self.k).max(0.0);
        st.neg = (st.neg - z - self.k).max(0.0);
        let raw = st.pos.max(st.neg);
        if raw >= self.h {
            (st.pos, st.neg) = (0.0, 0.0);
            st.relearn = Some((self.relearn, 0.0, 0));
        }
        Some(raw.min(1e9))
    }

    fn scale(&self) -> f64 {
        self.h
    }
}
