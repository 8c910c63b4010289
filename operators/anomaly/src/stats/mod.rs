//! The statistics behind the detectors, one file each, and [`AnyStat`],
//! the one that dispatches to them.

pub(crate) mod cusum;
pub(crate) mod holt_winters;
pub(crate) mod mad;
pub(crate) mod mahalanobis;
pub(crate) mod orderstats;
#[cfg(feature = "rcf")]
pub(crate) mod rcf;
pub(crate) mod rules;
pub(crate) mod zscore;

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::EwmaState;
use crate::detector::Statistic;

/// Any of the built-in statistics (built from a [`DetectorConfig`](crate::DetectorConfig)).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AnyStat {
    /// EWMA z-score.
    Zscore(zscore::ZScoreConfig),
    /// Robust median/MAD z-score.
    Mad(mad::MadConfig),
    /// Two-sided CUSUM.
    Cusum(cusum::CusumConfig),
    /// Holt-Winters residual.
    HoltWinters(holt_winters::HoltWintersConfig),
    /// Stuck sensor.
    Flatline(rules::FlatlineConfig),
    /// Rate of change.
    Rate(rules::RateConfig),
    /// Random Cut Forest.
    #[cfg(feature = "rcf")]
    Rcf(rcf::RcfConfig),
}

/// The state of an [`AnyStat`] for one series.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AnyState {
    /// EWMA z-score.
    Zscore(EwmaState),
    /// Robust median/MAD z-score.
    Mad(mad::MadState),
    /// Two-sided CUSUM.
    Cusum(cusum::CusumState),
    /// Holt-Winters residual.
    HoltWinters(holt_winters::HoltWintersState),
    /// Stuck sensor.
    Flatline(rules::FlatlineState),
    /// Rate of change.
    Rate(rules::RateState),
    /// Random Cut Forest.
    #[cfg(feature = "rcf")]
    Rcf(rcf::RcfState),
}

macro_rules! dispatch {
    ($self:expr, $st:expr, $c:ident, $s:ident => $body:expr, $mismatch:expr) => {
        match ($self, &mut *$st) {
            (AnyStat::Zscore($c), AnyState::Zscore($s)) => $body,
            (AnyStat::Mad($c), AnyState::Mad($s)) => $body,
            (AnyStat::Cusum($c), AnyState::Cusum($s)) => $body,
            (AnyStat::HoltWinters($c), AnyState::HoltWinters($s)) => $body,
            (AnyStat::Flatline($c), AnyState::Flatline($s)) => $body,
            (AnyStat::Rate($c), AnyState::Rate($s)) => $body,
            #[cfg(feature = "rcf")]
            (AnyStat::Rcf($c), AnyState::Rcf($s)) => $body,
            #[allow(unreachable_patterns)]
            _ => $mismatch,
        }
    };
}

impl Statistic for AnyStat {
    type State = AnyState;

    fn init(&self) -> AnyState {
        match self {
            AnyStat::Zscore(c) => AnyState::Zscore(c.init()),
            AnyStat::Mad(c) => AnyState::Mad(c.init()),
            AnyStat::Cusum(c) => AnyState::Cusum(c.init()),
            AnyStat::HoltWinters(c) => AnyState::HoltWinters(c.init()),
            AnyStat::Flatline(c) => AnyState::Flatline(c.init()),
            AnyStat::Rate(c) => AnyState::Rate(c.init()),
            #[cfg(feature = "rcf")]
            AnyStat::Rcf(c) => AnyState::Rcf(c.init()),
        }
    }

    #[inline]
    fn observe(&self, st: &mut AnyState, ts: Timestamp, value: f64) -> Option<f64> {
        dispatch!(self, st, c, s => c.observe(s, ts, value), {
            // A state restored for another detector kind (the job's config
            // changed under a checkpoint): start the series afresh.
            *st = self.init();
            self.observe(st, ts, value)
        })
    }

    fn scale(&self) -> f64 {
        match self {
            AnyStat::Zscore(c) => c.scale(),
            AnyStat::Mad(c) => c.scale(),
            AnyStat::Cusum(c) => c.scale(),
            AnyStat::HoltWinters(c) => c.scale(),
            AnyStat::Flatline(c) => c.scale(),
            AnyStat::Rate(c) => c.scale(),
            #[cfg(feature = "rcf")]
            AnyStat::Rcf(c) => c.scale(),
        }
    }
}
