//! [`DetectorConfig`]: every built-in detector by name, as serde config,
//! and [`AnyDetector`], what it builds.

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::detector::{Detector, Statistic, Thresholded, Verdict};
#[cfg(feature = "rcf")]
use crate::stats::rcf::RcfConfig;
use crate::stats::{
    AnyStat, AnyState, cusum::CusumConfig, holt_winters::HoltWintersConfig, mad::MadConfig,
    rules::FlatlineConfig, rules::RateConfig, zscore::ZScoreConfig,
};
use crate::threshold::{Threshold, ThresholdState};

/// A detector and its parameters (`[detector]` in TOML, tagged by `kind`).
///
/// ```
/// use iotflow_anomaly::DetectorConfig;
/// let cfg: DetectorConfig = toml::from_str(r#"
///     kind = "mad"
///     window = 128
///     threshold = { mode = "adaptive", quantile = 0.999 }
/// "#)?;
/// cfg.validate()?;
/// assert!(matches!(cfg, DetectorConfig::Mad(ref m) if m.window == 128));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DetectorConfig {
    /// EWMA z-score.
    Zscore(ZScoreConfig),
    /// Robust z-score over a sliding window's median and MAD.
    Mad(MadConfig),
    /// Two-sided CUSUM change detection.
    Cusum(CusumConfig),
    /// Holt-Winters (seasonal) residual.
    HoltWinters(HoltWintersConfig),
    /// Stuck sensor.
    Flatline(FlatlineConfig),
    /// Rate of change.
    Rate(RateConfig),
    /// Random Cut Forest (feature `rcf`).
    #[cfg(feature = "rcf")]
    Rcf(RcfConfig),
    /// The default for a series of unknown behaviour: see [`AutoConfig`].
    Auto(AutoConfig),
}

/// The `auto` detector: robust MAD z-score, CUSUM and flatline side by side
/// on the same series; the score is the largest of their scores, a reading
/// is flagged when any of them flags.
///
/// Why these three: together they cover the ways a sensor series goes
/// wrong without knowing its scale or shape. The MAD z-score catches
/// spikes and variance bursts and is not dragged along by them; CUSUM
/// accumulates evidence of small persistent shifts and drifts that no
/// single reading reveals; flatline catches a stuck sensor, which every
/// statistical detector sees as "very normal". All three are unit-free
/// (in σ or in readings), so their default levels hold on any series; each
/// score is mapped to `[0, 1)` with 0.75 at its own alarm level, which
/// makes the maximum meaningful. No parameter was tuned on labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoConfig {
    /// The MAD part. Default: [`MadConfig::default`].
    #[serde(default)]
    pub mad: MadConfig,
    /// The CUSUM part. Default: [`CusumConfig::default`].
    #[serde(default)]
    pub cusum: CusumConfig,
    /// The flatline part. Default: [`FlatlineConfig::default`].
    #[serde(default)]
    pub flatline: FlatlineConfig,
}

/// Names and one-line descriptions of the built-in detectors.
pub const DETECTORS: &[(&str, &str)] = &[
    (
        "auto",
        "default: max of robust MAD z-score, CUSUM and flatline; flags when any flags",
    ),
    (
        "zscore",
        "EWMA z-score |v - mean| / sd (alpha 0.02), alarm at 5",
    ),
    (
        "mad",
        "robust z-score over a 64-reading window's median and MAD, alarm at 5",
    ),
    (
        "cusum",
        "two-sided CUSUM on a learned baseline (k 0.5 sd, h 10 sd), re-learns its mean after an alarm",
    ),
    (
        "holt_winters",
        "Holt-Winters residual over a season of `period` readings (24), alarm at 5",
    ),
    (
        "flatline",
        "stuck sensor: 8 consecutive repeats of the same value",
    ),
    (
        "rate",
        "rate of change over its learned typical rate (alarm at 5), or over max_per_s",
    ),
    #[cfg(feature = "rcf")]
    (
        "rcf",
        "Random Cut Forest on 4-reading shingles (50 trees of 256), alarm at 2.5",
    ),
];

impl DetectorConfig {
    /// The detector called `name` with its default parameters.
    pub fn named(name: &str) -> Result<DetectorConfig, Error> {
        Ok(match name {
            "auto" => DetectorConfig::Auto(AutoConfig::default()),
            "zscore" => DetectorConfig::Zscore(ZScoreConfig::default()),
            "mad" => DetectorConfig::Mad(MadConfig::default()),
            "cusum" => DetectorConfig::Cusum(CusumConfig::default()),
            "holt_winters" => DetectorConfig::HoltWinters(HoltWintersConfig::default()),
            "flatline" => DetectorConfig::Flatline(FlatlineConfig::default()),
            "rate" => DetectorConfig::Rate(RateConfig::default()),
            #[cfg(feature = "rcf")]
            "rcf" => DetectorConfig::Rcf(RcfConfig::default()),
            other => {
                let names: Vec<&str> = DETECTORS.iter().map(|(n, _)| *n).collect();
                return Err(Error::Config(format!(
                    "unknown detector {other:?}; known: {}",
                    names.join(", ")
                )));
            }
        })
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        self.build().map(|_| ())
    }

    /// Builds the detector.
    pub fn build(&self) -> Result<AnyDetector, Error> {
        let part =
            |stat: AnyStat, threshold: &Option<Threshold>| -> Result<Thresholded<AnyStat>, Error> {
                let t = threshold.unwrap_or(Threshold::Fixed {
                    value: stat.scale(),
                });
                t.validate()?;
                Ok(Thresholded { stat, threshold: t })
            };
        let parts = match self {
            DetectorConfig::Zscore(c) => {
                c.validate()?;
                vec![part(AnyStat::Zscore(c.clone()), &c.threshold)?]
            }
            DetectorConfig::Mad(c) => {
                c.validate()?;
                vec![part(AnyStat::Mad(c.clone()), &c.threshold)?]
            }
            DetectorConfig::Cusum(c) => {
                c.validate()?;
                vec![part(AnyStat::Cusum(c.clone()), &c.threshold)?]
            }
            DetectorConfig::HoltWinters(c) => {
                c.validate()?;
                vec![part(AnyStat::HoltWinters(c.clone()), &c.threshold)?]
            }
            DetectorConfig::Flatline(c) => {
                c.validate()?;
                vec![part(AnyStat::Flatline(c.clone()), &c.threshold)?]
            }
            DetectorConfig::Rate(c) => {
                c.validate()?;
                vec![part(AnyStat::Rate(c.clone()), &c.threshold)?]
            }
            #[cfg(feature = "rcf")]
            DetectorConfig::Rcf(c) => {
                c.validate()?;
                vec![part(AnyStat::Rcf(c.clone()), &c.threshold)?]
            }
            DetectorConfig::Auto(a) => {
                a.mad.validate()?;
                a.cusum.validate()?;
                a.flatline.validate()?;
                vec![
                    part(AnyStat::Mad(a.mad.clone()), &a.mad.threshold)?,
                    part(AnyStat::Cusum(a.cusum.clone()), &a.cusum.threshold)?,
                    part(AnyStat::Flatline(a.flatline.clone()), &a.flatline.threshold)?,
                ]
            }
        };
        Ok(AnyDetector { parts })
    }
}

/// A built detector: one statistic, or several side by side (`auto`),
/// each with its threshold. Score: the largest part score; flag: any part
/// flags.
#[derive(Clone, Debug, PartialEq)]
pub struct AnyDetector {
    parts: Vec<Thresholded<AnyStat>>,
}

/// The state of one part of an [`AnyDetector`] for one series.
pub type PartState = (AnyState, ThresholdState);

/// The state of an [`AnyDetector`] for one series. One and three parts
/// (every detector, and `auto`) are held inline, in the operator's
/// hash-map entry: a reading then touches no allocation of the shell's
/// (profiling `auto` on fleet-v1 showed the dependent load of a boxed
/// state as its largest single cost).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "inline on purpose: boxing the three parts is the cache miss this avoids"
)]
pub enum AnyDetectorState {
    /// The one part's state.
    One(PartState),
    /// Three parts' states.
    Three([PartState; 3]),
    /// Any other number of parts.
    Many(Vec<PartState>),
}

impl Detector for AnyDetector {
    type State = AnyDetectorState;

    fn init(&self) -> Self::State {
        match self.parts.as_slice() {
            [one] => AnyDetectorState::One(one.init()),
            [a, b, c] => AnyDetectorState::Three([a.init(), b.init(), c.init()]),
            parts => AnyDetectorState::Many(parts.iter().map(Detector::init).collect()),
        }
    }

    #[inline]
    fn update(&self, st: &mut Self::State, ts: Timestamp, value: f64) -> Verdict {
        match (self.parts.as_slice(), &mut *st) {
            ([part], AnyDetectorState::One(s)) => part.update(s, ts, value),
            (parts @ [_, _, _], AnyDetectorState::Three(states)) => {
                combine(parts, states, ts, value)
            }
            (parts, AnyDetectorState::Many(states)) if parts.len() == states.len() => {
                combine(parts, states, ts, value)
            }
            // A state restored for another detector (the job's config
            // changed under a checkpoint): start the series afresh.
            _ => {
                *st = self.init();
                self.update(st, ts, value)
            }
        }
    }
}

/// Every part's verdict: the highest score, flagged when any part flags.
#[inline]
fn combine(
    parts: &[Thresholded<AnyStat>],
    states: &mut [PartState],
    ts: Timestamp,
    value: f64,
) -> Verdict {
    let mut best = Verdict::default();
    let mut flag = false;
    for (part, s) in parts.iter().zip(states.iter_mut()) {
        let sc = part.update(s, ts, value);
        flag |= sc.flag;
        if sc.score > best.score {
            best = sc;
        }
    }
    best.flag = flag;
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_builds_and_round_trips_through_toml() {
        for (name, _) in DETECTORS {
            let cfg = DetectorConfig::named(name).expect("named");
            cfg.validate().expect("valid defaults");
            let text = toml::to_string(&cfg).expect("to toml");
            let back: DetectorConfig = toml::from_str(&text).expect("from toml");
            assert_eq!(back, cfg, "{name}");
        }
        assert!(DetectorConfig::named("nope").is_err());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        let bad: Result<DetectorConfig, _> = toml::from_str("kind = \"mad\"\nwindoww = 3");
        assert!(bad.is_err());
        let cfg: DetectorConfig = toml::from_str("kind = \"mad\"\nwindow = 1").expect("parses");
        assert!(cfg.validate().is_err());
        let cfg: DetectorConfig =
            toml::from_str("kind = \"zscore\"\nthreshold = { mode = \"fixed\", value = -1 }")
                .expect("parses");
        assert!(cfg.validate().is_err());
    }
}
