//! Multivariate mode: several metrics of one device as one vector,
//! shingled, scored together.
//!
//! Per device, the operator keeps the latest value of each configured
//! metric. Readings are applied in the shell's per-key order (event time),
//! and a device's readings with one timestamp make one *time step*: when a
//! reading with a later timestamp arrives, the step is closed and, if
//! every metric has a value no older than `max_age_ms` at the step's time
//! (forward fill), its vector `[v_1, …, v_m]` (in the configured metric
//! order) is scored against the device's past vectors. The last `shingle`
//! vectors are scored as one point, so a detector sees how the metrics
//! move, not only where they are. A step is therefore scored when the
//! device's next timestamp arrives: one reading interval of latency, the
//! price of not scoring half-updated vectors.
//!
//! Readings of other metrics are ignored; a reading older than the open
//! step (it arrived late) only refreshes its metric's latest value if it
//! is newer than it.

use iotflow_core::checkpoint::{Checkpoints, Snapshot, encoder};
use iotflow_types::{Alert, DeviceId, Metric, Reading, SmallStr, Timestamp, stable_hash};
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Error;
use crate::detect::{DetectState, Emit};
use crate::detector::{Verdict, normalize};
use crate::shell::{Logic, Outs, Released, shell, take_released};
use crate::stats::mahalanobis::{MahalanobisConfig, MahalanobisState};
#[cfg(feature = "rcf")]
use crate::stats::rcf::{Forest, RcfConfig};
use crate::threshold::{Threshold, ThresholdState};
use iotflow_core::tally::Tally;

/// The multivariate mode's configuration (`[multivariate]` in TOML).
///
/// ```
/// use iotflow_anomaly::MultivariateConfig;
/// let cfg: MultivariateConfig = toml::from_str(r#"
///     metrics = ["temp", "humidity", "pressure"]
///     shingle = 2
///     detector = { kind = "mahalanobis", alpha = 0.02 }
/// "#)?;
/// cfg.validate()?;
/// assert_eq!(cfg.max_age_ms, 5_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultivariateConfig {
    /// The metrics that make a device's vector, in order (1 to 32).
    pub metrics: Vec<String>,
    /// Oldest value still carried forward into a step, ms. Default 5000.
    #[serde(default = "default_max_age")]
    pub max_age_ms: u64,
    /// Vectors per scored point. Default 1.
    #[serde(default = "default_shingle")]
    pub shingle: usize,
    /// How points are scored. Default: Mahalanobis.
    #[serde(default)]
    pub detector: VectorDetectorConfig,
}

fn default_max_age() -> u64 {
    5_000
}
fn default_shingle() -> usize {
    1
}

/// A detector of vectors, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum VectorDetectorConfig {
    /// Mahalanobis distance against a full covariance.
    Mahalanobis(MahalanobisConfig),
    /// Random Cut Forest over the shingled vectors (feature `rcf`); its
    /// `shingle_size` is replaced by the mode's `shingle`.
    #[cfg(feature = "rcf")]
    Rcf(RcfConfig),
}

impl Default for VectorDetectorConfig {
    fn default() -> Self {
        VectorDetectorConfig::Mahalanobis(MahalanobisConfig::default())
    }
}

impl MultivariateConfig {
    /// The mode over `metrics` with the defaults.
    pub fn new(metrics: &[&str]) -> Self {
        MultivariateConfig {
            metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
            max_age_ms: default_max_age(),
            shingle: default_shingle(),
            detector: VectorDetectorConfig::default(),
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        let mut names = self.metrics.clone();
        names.sort();
        names.dedup();
        if self.metrics.is_empty() || self.metrics.len() > 32 || names.len() != self.metrics.len() {
            return Err(Error::Config(format!(
                "multivariate needs 1 to 32 distinct metrics, got {:?}",
                self.metrics
            )));
        }
        if self.shingle == 0 || self.shingle * self.metrics.len() > 256 {
            return Err(Error::Config(format!(
                "multivariate needs 1 <= shingle and shingle x metrics <= 256, got {}",
                self.shingle
            )));
        }
        match &self.detector {
            VectorDetectorConfig::Mahalanobis(m) => m.validate(),
            #[cfg(feature = "rcf")]
            VectorDetectorConfig::Rcf(r) => self.rcf(r).validate(),
        }
    }

    #[cfg(feature = "rcf")]
    fn rcf(&self, r: &RcfConfig) -> RcfConfig {
        RcfConfig {
            shingle_size: self.shingle,
            ..r.clone()
        }
    }

    fn threshold(&self) -> Threshold {
        let (t, scale) = match &self.detector {
            VectorDetectorConfig::Mahalanobis(m) => (m.threshold, m.scale()),
            #[cfg(feature = "rcf")]
            VectorDetectorConfig::Rcf(r) => (r.threshold, 2.5),
        };
        t.unwrap_or(Threshold::Fixed { value: scale })
    }

    fn scale(&self) -> f64 {
        match &self.detector {
            VectorDetectorConfig::Mahalanobis(m) => m.scale(),
            #[cfg(feature = "rcf")]
            VectorDetectorConfig::Rcf(_) => 2.5,
        }
    }

    /// Applies one reading of a device, in the device's order; pushes the
    /// closed step's score, if any.
    pub fn apply(&self, st: &mut DeviceState, r: &Reading) -> Option<VectorScore> {
        let j = self.metrics.iter().position(|m| m == r.metric.as_str())?;
        if st.latest.len() != self.metrics.len() {
            // A new device (or a state made for other metrics).
            *st = DeviceState {
                latest: vec![None; self.metrics.len()],
                stat: self.init_stat(),
                ..DeviceState::default()
            };
        }
        let closed = match st.step {
            Some(step) if r.ts > step => self.close(st, step),
            _ => None,
        };
        if st.step.is_none_or(|s| r.ts > s) {
            st.step = Some(r.ts);
        }
        if st.latest[j].is_none_or(|(t, _)| r.ts >= t) {
            st.latest[j] = Some((r.ts, r.value));
        }
        closed
    }

    fn close(&self, st: &mut DeviceState, step: Timestamp) -> Option<VectorScore> {
        let m = self.metrics.len();
        let mut x = Vec::with_capacity(m);
        for v in &st.latest {
            match v {
                Some((t, v)) if step.saturating_sub(*t) <= self.max_age_ms => x.push(*v),
                _ => return None,
            }
        }
        // Shingle: the last `shingle` vectors, oldest first.
        st.shingle.extend_from_slice(&x);
        let keep = self.shingle * m;
        if st.shingle.len() > keep {
            st.shingle.drain(..st.shingle.len() - keep);
        }
        let stat = match (&self.detector, &mut st.stat) {
            (VectorDetectorConfig::Mahalanobis(c), VectorState::Mahalanobis(s)) => {
                if st.shingle.len() < keep {
                    None
                } else {
                    c.observe(s, &st.shingle).map(|(raw, i)| (raw, i % m))
                }
            }
            #[cfg(feature = "rcf")]
            (VectorDetectorConfig::Rcf(c), VectorState::Rcf(f)) => {
                let c = self.rcf(c);
                if f.is_none() {
                    *f = c.forest(m).ok().map(Box::new);
                }
                let point: Vec<f32> = x.iter().map(|v| *v as f32).collect();
                f.as_mut()
                    .and_then(|f| c.score_update(f, &point))
                    .map(|raw| (raw, 0))
            }
            #[allow(unreachable_patterns)]
            (_, stat) => {
                // A state restored for another detector: start afresh.
                *stat = self.init_stat();
                None
            }
        };
        let score = match stat {
            None => Verdict::default(),
            Some((raw, _)) => Verdict {
                score: normalize(raw, self.scale()),
                raw,
                flag: self.threshold().flag(&mut st.threshold, raw),
            },
        };
        Some(VectorScore {
            ts: step,
            worst: stat.map_or(0, |(_, i)| i),
            values: x,
            score,
        })
    }

    fn init_stat(&self) -> VectorState {
        match &self.detector {
            VectorDetectorConfig::Mahalanobis(_) => {
                VectorState::Mahalanobis(MahalanobisState::default())
            }
            #[cfg(feature = "rcf")]
            VectorDetectorConfig::Rcf(_) => VectorState::Rcf(None),
        }
    }

    /// Runs the mode over one device's readings in order (a replay outside
    /// timely): the scores of the steps it closes.
    pub fn replay<'a>(&self, readings: impl IntoIterator<Item = &'a Reading>) -> Vec<VectorScore> {
        let mut st = DeviceState::default();
        readings
            .into_iter()
            .filter_map(|r| self.apply(&mut st, r))
            .collect()
    }
}

/// The state of a vector detector for one device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum VectorState {
    /// Mahalanobis mean and covariance.
    Mahalanobis(MahalanobisState),
    /// A forest (built at the first vector).
    #[cfg(feature = "rcf")]
    Rcf(Option<Box<Forest>>),
}

impl Default for VectorState {
    fn default() -> Self {
        VectorState::Mahalanobis(MahalanobisState::default())
    }
}

/// What the multivariate mode keeps per device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeviceState {
    /// Latest `(ts, value)` per configured metric.
    latest: Vec<Option<(Timestamp, f64)>>,
    /// The open step's timestamp.
    step: Option<Timestamp>,
    /// The last `shingle` vectors, flattened, oldest first.
    shingle: Vec<f64>,
    stat: VectorState,
    threshold: ThresholdState,
}

/// The score of one device's time step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorScore {
    /// The step's timestamp.
    pub ts: Timestamp,
    /// The vector, in the configured metric order.
    pub values: Vec<f64>,
    /// Index of the metric that deviates most (Mahalanobis; 0 for RCF).
    pub worst: usize,
    /// What the detector said.
    pub score: Verdict,
}

/// A device's scored step, as `.detect_multivariate` emits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceScore {
    /// The device.
    pub device: DeviceId,
    /// Its step's score.
    pub step: VectorScore,
}

/// The outputs of `.detect_multivariate`.
#[derive(Debug)]
pub struct MultivariateStreams<'scope> {
    /// Flagged steps as alerts: `metric` and `value` of the metric that
    /// deviates most, `score` the raw statistic.
    pub alerts: StreamVec<'scope, Timestamp, Alert>,
    /// With [`Emit::Scores`]: every step's score.
    pub scores: Option<StreamVec<'scope, Timestamp, DeviceScore>>,
    /// Per worker at the end: alerts raised.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// The checkpointed state of `.detect_multivariate`.
pub type MultivariateState = DetectState<DeviceId, DeviceState>;

/// Scores several metrics of a device together.
pub trait DetectMultivariate<'scope> {
    /// Runs the multivariate mode (see the [module docs](self)) keyed by
    /// device. With `checkpoints`, the state is in every checkpoint.
    ///
    /// ```
    /// use iotflow_anomaly::{DetectMultivariate, Emit, MultivariateConfig};
    /// use iotflow_types::Reading;
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let cfg = MultivariateConfig::new(&["a", "b"]);
    /// let rx = timely::example(move |scope| {
    ///     let mut readings = Vec::new();
    ///     for i in 0..300u64 {
    ///         let f = ((i * 7919) % 101) as f64 / 10.0;
    ///         // b is a + 10, except at step 250, where it is a + 13: a value b
    ///         // often has, but not with that a.
    ///         let b = 20.0 + f + (i % 3) as f64 * 0.05 + if i == 250 { 3.0 } else { 0.0 };
    ///         readings.push(Reading::new("d-1", i * 1000, "a", 10.0 + f));
    ///         readings.push(Reading::new("d-1", i * 1000, "b", b));
    ///     }
    ///     readings.to_stream(scope)
    ///         .detect_multivariate("mv", &cfg, Emit::Alerts, None)
    ///         .expect("valid")
    ///         .alerts
    ///         .capture()
    /// });
    /// let alerts: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert!(alerts.iter().any(|a| a.ts == 250_000));
    /// ```
    fn detect_multivariate(
        self,
        name: &str,
        config: &MultivariateConfig,
        emit: Emit,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<MultivariateStreams<'scope>, Error>;
}

impl<'scope> DetectMultivariate<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn detect_multivariate(
        self,
        name: &str,
        config: &MultivariateConfig,
        emit: Emit,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<MultivariateStreams<'scope>, Error> {
        config.validate()?;
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<MultivariateState>>(name)?,
            None => None,
        };
        let hooks = checkpoints.map(|c| (c, encoder::<MultivariateState>()));
        let logic = MvLogic {
            metrics: config.metrics.iter().map(|m| Metric::new(m)).collect(),
            config: config.clone(),
            label: SmallStr::from(name),
            scores: emit == Emit::Scores,
            ready: Released::default(),
        };
        let streams = shell(
            self,
            name,
            |r: &Reading| stable_hash(&r.device),
            logic,
            restored.unwrap_or_default(),
            hooks,
        );
        Ok(MultivariateStreams {
            alerts: streams.alerts,
            scores: (emit == Emit::Scores).then_some(streams.records),
            tally: streams.tally,
        })
    }
}

struct MvLogic {
    config: MultivariateConfig,
    metrics: Vec<Metric>,
    label: SmallStr,
    scores: bool,
    ready: Released<(DeviceId, Reading)>,
}

impl Logic for MvLogic {
    type State = MultivariateState;
    type Out = DeviceScore;

    fn batch(
        &mut self,
        st: &mut Self::State,
        t: Timestamp,
        data: Vec<Reading>,
        _: &mut Outs<DeviceScore>,
    ) {
        let metrics = &self.metrics;
        st.pending.extend(
            data.into_iter()
                .filter(|r| metrics.contains(&r.metric))
                .map(|r| (r.ts.max(t), (r.device.clone(), r))),
        );
    }

    fn release(
        &mut self,
        st: &mut Self::State,
        bound: Option<Timestamp>,
        out: &mut Outs<DeviceScore>,
    ) {
        let ready = &mut self.ready;
        if !take_released(
            &mut st.pending,
            &mut st.released_below,
            bound,
            ready,
            |(_, r)| r,
        ) {
            return;
        }
        for (at, (device, r)) in ready.iter() {
            let state = match st.series.get_mut(device) {
                Some(s) => s,
                None => st.series.entry(device.clone()).or_default(),
            };
            let Some(step) = self.config.apply(state, r) else {
                continue;
            };
            if step.score.flag {
                out.alerts.push((
                    *at,
                    Alert {
                        device: device.clone(),
                        metric: self.metrics[step.worst].clone(),
                        ts: step.ts,
                        value: step.values[step.worst],
                        score: step.score.raw,
                        detector: self.label.clone(),
                    },
                ));
            }
            if self.scores {
                out.records.push((
                    *at,
                    DeviceScore {
                        device: device.clone(),
                        step,
                    },
                ));
            }
        }
        ready.clear();
    }
}
