//! Seasonal detector: the residual of additive Holt-Winters.

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::detector::Statistic;
use crate::threshold::Threshold;

/// Holt-Winters residual (`kind = "holt_winters"`): additive level, trend
/// and a season of `period` readings forecast each value one step ahead;
/// the residual is standardized by its own exponentially weighted RMS.
/// Raw statistic: |residual| / RMS; default alarm level 5. The first period
/// initializes the season, the second learns the residual scale; scoring
/// starts after that. O(1) per reading, O(period) state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoltWintersConfig {
    /// Season length in readings (e.g. 1440 for a daily cycle of minutely
    /// readings). Default 24.
    #[serde(default = "default_period")]
    pub period: usize,
    /// Level smoothing. Default 0.2.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Trend smoothing. Default 0.01.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Season smoothing. Default 0.1.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Smoothing of the residual's mean square. Default 0.05.
    #[serde(default = "default_resid")]
    pub residual_alpha: f64,
    /// Flag rule. Default: fixed at 5.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_period() -> usize {
    24
}
fn default_alpha() -> f64 {
    0.2
}
fn default_beta() -> f64 {
    0.01
}
fn default_gamma() -> f64 {
    0.1
}
fn default_resid() -> f64 {
    0.05
}

impl Default for HoltWintersConfig {
    fn default() -> Self {
        HoltWintersConfig {
            period: default_period(),
            alpha: default_alpha(),
            beta: default_beta(),
            gamma: default_gamma(),
            residual_alpha: default_resid(),
            threshold: None,
        }
    }
}

impl HoltWintersConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        if self.period < 1
            || !unit(self.alpha)
            || !(0.0..=1.0).contains(&self.beta)
            || !(0.0..=1.0).contains(&self.gamma)
            || !unit(self.residual_alpha)
        {
            return Err(Error::Config(format!(
                "bad holt_winters parameters {self:?}"
            )));
        }
        Ok(())
    }
}

/// Holt-Winters state of one series.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HoltWintersState {
    n: u64,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    resid_ms: f64,
}

impl Statistic for HoltWintersConfig {
    type State = HoltWintersState;

    fn init(&self) -> HoltWintersState {
        HoltWintersState::default()
    }

    #[inline]
    fn observe(&self, st: &mut HoltWintersState, _ts: Timestamp, value: f64) -> Option<f64> {
        let p = self.period as u64;
        let idx = (st.n % p) as usize;
        st.n += 1;
        if st.n <= p {
            // First period: the season's raw values, then centred on its mean.
            st.season.push(value);
            if st.n == p {
                st.level = st.season.iter().sum::<f64>() / p as f64;
                let level = st.level;
                st.season.iter_mut().for_each(|s| *s -= level);
            }
            return None;
        }
        let forecast = st.level + st.trend + st.season[idx];
        let r = value - forecast;
        let raw =
            (st.n > 2 * p && st.resid_ms > 0.0).then(|| (r.abs() / st.resid_ms.sqrt()).min(1e9));
        st.resid_ms += self.residual_alpha * (r * r - st.resid_ms);
        let prev = st.level;
        st.level =
            self.alpha * (value - st.season[idx]) + (1.0 - self.alpha) * (st.level + st.trend);
        st.trend = self.beta * (st.level - prev) + (1.0 - self.beta) * st.trend;
        st.season[idx] = self.gamma * (value - st.level) + (1.0 - self.gamma) * st.season[idx];
        raw
    }

    fn scale(&self) -> f64 {
        5.0
    }
}
