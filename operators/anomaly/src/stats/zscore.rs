//! EWMA z-score: the fleet-v1 detector as a [`Statistic`].

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::detector::Statistic;
use crate::threshold::Threshold;
use crate::{Error, Ewma, EwmaState};

/// EWMA z-score (`kind = "zscore"`): `|v − mean| / sqrt(var)` against an
/// exponentially weighted mean and variance of the series before `v`.
/// Raw statistic: |z|; default alarm level 5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZScoreConfig {
    /// Smoothing factor in (0, 1]. Default 0.02.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Readings before the first score. Default 30.
    #[serde(default = "default_warmup")]
    pub warmup: u64,
    /// Flag rule. Default: fixed at |z| >= 5.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_alpha() -> f64 {
    0.02
}
fn default_warmup() -> u64 {
    30
}

impl Default for ZScoreConfig {
    fn default() -> Self {
        ZScoreConfig {
            alpha: default_alpha(),
            warmup: default_warmup(),
            threshold: None,
        }
    }
}

impl ZScoreConfig {
    fn ewma(&self) -> Ewma {
        Ewma::new(self.alpha).warmup(self.warmup)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        self.ewma()
            .validate()
            .map_err(|e| Error::Config(e.to_string()))
    }
}

impl Statistic for ZScoreConfig {
    type State = EwmaState;

    fn init(&self) -> EwmaState {
        EwmaState::default()
    }

    #[inline]
    fn observe(&self, st: &mut EwmaState, _ts: Timestamp, value: f64) -> Option<f64> {
        st.update(value, &self.ewma()).map(f64::abs)
    }

    fn scale(&self) -> f64 {
        5.0
    }
}
