//! Robust z-score against the median and MAD of a sliding window.

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use super::orderstats::{insert_sorted, median_mad, remove_sorted};
use crate::Error;
use crate::detector::Statistic;
use crate::threshold::Threshold;

/// 1 / Φ⁻¹(3/4): makes the MAD of Gaussian data an estimate of σ.
const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Robust z-score (`kind = "mad"`): `|v − median| / (1.4826 · MAD)` over the
/// last `window` readings of the series before `v`. A spike, or a level
/// shift's first readings, barely move the median and MAD, so they stand
/// out where a mean/variance detector is dragged along. The σ used is
/// never below a slow average of past σ estimates, so the collapse of the
/// MAD under a stuck sensor does not turn its recovery into alarms (a
/// series that is *always* constant still scores any change high). Raw statistic:
/// robust |z|; default alarm level 5. Per reading: O(log w) for the
/// median and MAD and a shift of up to `window` values (a sorted window;
/// see `OrderStats`), so the window is capped at 16,384.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MadConfig {
    /// Readings in the window. Default 64.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Readings in the window before the first score. Default 16.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Flag rule. Default: fixed at robust |z| >= 5.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

/// Largest window: a reading costs a shift of up to this many values.
const MAX_WINDOW: usize = 16_384;

fn default_window() -> usize {
    64
}
fn default_warmup() -> usize {
    16
}

impl Default for MadConfig {
    fn default() -> Self {
        MadConfig {
            window: default_window(),
            warmup: default_warmup(),
            threshold: None,
        }
    }
}

impl MadConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if self.window < 2 || self.warmup > self.window || self.warmup < 2 {
            return Err(Error::Config(format!(
                "mad needs 2 <= warmup <= window, got warmup {} window {}",
                self.warmup, self.window
            )));
        }
        if self.window > MAX_WINDOW {
            return Err(Error::Config(format!(
                "mad window {} is above {MAX_WINDOW}: each reading shifts up to `window` values",
                self.window
            )));
        }
        Ok(())
    }
}

/// The window of one series, in one allocation: `buf[..window]` is a
/// ring of the last values in arrival order (the oldest at `head`), and
/// `buf[window..]` the same values sorted. A reading touches the series'
/// map entry and this one buffer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MadState {
    buf: Vec<f64>,
    /// Ring slots (the window the state was made for).
    ring: u32,
    /// Values held.
    len: u32,
    /// Ring slot of the oldest value.
    head: u32,
    /// Slow exponentially weighted average of the window's σ estimate.
    long_sigma: f64,
}

impl MadState {
    /// Median and MAD of the window.
    pub fn median_mad(&self) -> Option<(f64, f64)> {
        median_mad(self.buf.get(self.ring as usize..)?)
    }

    /// Values in the window.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value`, dropping the oldest when `window` values are held.
    fn push(&mut self, window: usize, value: f64) {
        if self.ring as usize != window || self.buf.len() != window + self.len as usize {
            // A new series, or a state made for another window size.
            *self = MadState {
                buf: Vec::with_capacity(2 * window),
                ring: window as u32,
                ..MadState::default()
            };
            self.buf.resize(window, 0.0);
        }
        let w = window;
        if self.len as usize == w {
            let slot = self.head as usize;
            let old = std::mem::replace(&mut self.buf[slot], value);
            remove_sorted(&mut self.buf, w, old);
            self.head = ((slot + 1) % w) as u32;
        } else {
            let slot = (self.head as usize + self.len as usize) % w;
            self.buf[slot] = value;
            self.len += 1;
        }
        insert_sorted(&mut self.buf, w, value);
    }
}

/// Smoothing of the long-run σ (about 500 readings).
const LONG_ALPHA: f64 = 0.002;

/// Robust |z| of `v` given the median and a σ estimate, floored relative
/// to the median so a series of equal values scores high but finite.
pub(crate) fn robust_z(v: f64, median: f64, sigma: f64) -> f64 {
    let sigma = sigma.max(1e-9 * median.abs().max(1.0));
    ((v - median).abs() / sigma).min(1e9)
}

impl Statistic for MadConfig {
    type State = MadState;

    fn init(&self) -> MadState {
        MadState::default()
    }

    #[inline]
    fn observe(&self, st: &mut MadState, _ts: Timestamp, value: f64) -> Option<f64> {
        let raw = if st.len() >= self.warmup {
            st.median_mad().map(|(m, mad)| {
                let sigma = mad * MAD_TO_SIGMA;
                // σ never drops below the series' long-run σ: when a sensor
                // sticks, its window's MAD collapses to 0, and the first
                // live readings after it would otherwise all look infinite.
                let floor = st.long_sigma;
                st.long_sigma += LONG_ALPHA * (sigma - st.long_sigma);
                robust_z(value, m, sigma.max(floor))
            })
        } else {
            None
        };
        st.push(self.window, value);
        raw
    }

    fn scale(&self) -> f64 {
        5.0
    }
}
