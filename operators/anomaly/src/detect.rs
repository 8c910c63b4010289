//! `.detect(..)`: any [`Detector`] per key, as a timely operator.

use std::hash::Hash;

use iotflow_core::checkpoint::{Checkpoints, Snapshot, encoder};
use iotflow_core::state::{KeyedState, route};
use iotflow_core::tally::Tally;
use iotflow_types::{Alert, DeviceId, Metric, Reading, SmallStr, Timestamp, stable_hash};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Error;
use crate::detector::{Detector, Verdict};
use crate::shell::{Logic, Outs, Released, shell, take_released};

/// What `.detect` emits besides alerts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// Alerts only: a record per flagged reading. The default, and the
    /// fast path: nothing is built or sent for an ordinary reading.
    #[default]
    Alerts,
    /// Alerts, and every reading's [`Scored`] record on
    /// [`DetectStreams::scores`] (for evaluation, dashboards or a
    /// downstream combiner): one more record per reading.
    Scores,
}

/// A scored reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored<K> {
    /// The series key.
    pub key: K,
    /// The reading's device.
    pub device: DeviceId,
    /// The reading's metric.
    pub metric: Metric,
    /// The reading's event time.
    pub ts: Timestamp,
    /// The reading's value.
    pub value: f64,
    /// What the detector said.
    pub score: Verdict,
}

/// Everything one worker's `.detect` operator holds: per-key detector
/// state and the readings waiting for the frontier, with their release
/// time and key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, S: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, S: Deserialize<'de>"
))]
pub struct DetectState<K, S> {
    /// Per-key detector state.
    pub series: FxHashMap<K, S>,
    /// Readings not yet scored.
    pub pending: Vec<(Timestamp, (K, Reading))>,
    /// Every reading with a release time below this has been scored.
    pub released_below: Timestamp,
}

impl<K, S> Default for DetectState<K, S> {
    fn default() -> Self {
        DetectState {
            series: FxHashMap::default(),
            pending: Vec::new(),
            released_below: 0,
        }
    }
}

impl<K, S> KeyedState for DetectState<K, S>
where
    K: Serialize + DeserializeOwned + Eq + Hash,
    S: Serialize + DeserializeOwned,
{
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        // The operator exchanges readings by `stable_hash(key)`.
        self.series
            .retain(|k, _| route(stable_hash(k), peers) == worker);
        self.pending
            .retain(|(_, (k, _))| route(stable_hash(k), peers) == worker);
    }

    fn merge(&mut self, other: Self) {
        self.series.extend(other.series);
        self.pending.extend(other.pending);
        self.released_below = self.released_below.max(other.released_below);
    }
}

/// The outputs of `.detect`.
#[derive(Debug)]
pub struct DetectStreams<'scope, K> {
    /// The flagged readings as alerts (`score`: the raw statistic,
    /// `detector`: the operator's name), stamped at their release time.
    pub alerts: StreamVec<'scope, Timestamp, Alert>,
    /// With [`Emit::Scores`]: every reading with its score, stamped at its
    /// release time; `None` with [`Emit::Alerts`].
    pub scores: Option<StreamVec<'scope, Timestamp, Scored<K>>>,
    /// Per worker at the end: alerts raised.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// Runs a streaming detector per key.
pub trait Detect<'scope> {
    /// Scores every reading with `detector`, one state per `key(reading)`,
    /// in event-time order per key (see the [crate docs](crate)), and
    /// emits an alert per flagged reading, plus every reading's score with
    /// [`Emit::Scores`]. With `checkpoints`, the state is in every
    /// checkpoint and restored from the one being recovered, on any number
    /// of workers.
    ///
    /// ```
    /// use iotflow_anomaly::{Detect, DetectorConfig, Emit};
    /// use iotflow_types::{Reading, SeriesKey};
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let detector = DetectorConfig::named("mad")?.build()?;
    /// let rx = timely::example(move |scope| {
    ///     let mut readings: Vec<Reading> = (0..100)
    ///         .map(|i| Reading::new("d-1", i * 1000, "temp", 20.0 + (i % 5) as f64 * 0.1))
    ///         .collect();
    ///     readings.push(Reading::new("d-1", 200_000, "temp", 35.0));
    ///     readings
    ///         .to_stream(scope)
    ///         .detect("mad", detector, SeriesKey::of, Emit::Alerts, None)
    ///         .expect("no checkpoint to restore")
    ///         .alerts
    ///         .capture()
    /// });
    /// let alerts: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert_eq!(alerts.len(), 1);
    /// assert_eq!(alerts[0].ts, 200_000);
    /// # Ok::<(), iotflow_anomaly::Error>(())
    /// ```
    fn detect<D, K, F>(
        self,
        name: &str,
        detector: D,
        key: F,
        emit: Emit,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<DetectStreams<'scope, K>, Error>
    where
        D: Detector,
        K: Clone + Eq + Hash + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static;
}

impl<'scope> Detect<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn detect<D, K, F>(
        self,
        name: &str,
        detector: D,
        key: F,
        emit: Emit,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<DetectStreams<'scope, K>, Error>
    where
        D: Detector,
        K: Clone + Eq + Hash + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
    {
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<DetectState<K, D::State>>>(name)?,
            None => None,
        };
        let hooks = checkpoints.map(|c| (c, encoder::<DetectState<K, D::State>>()));
        let route_key = key.clone();
        let logic = DetectLogic {
            detector,
            key,
            label: SmallStr::from(name),
            scores: emit == Emit::Scores,
            ready: Released::default(),
        };
        let streams = shell(
            self,
            name,
            move |r: &Reading| stable_hash(&route_key(r)),
            logic,
            restored.unwrap_or_default(),
            hooks,
        );
        Ok(DetectStreams {
            alerts: streams.alerts,
            scores: (emit == Emit::Scores).then_some(streams.records),
            tally: streams.tally,
        })
    }
}

struct DetectLogic<D: Detector, K, F> {
    detector: D,
    key: F,
    /// The alerts' `detector` field.
    label: SmallStr,
    /// Whether every reading's score is emitted.
    scores: bool,
    ready: Released<(K, Reading)>,
}

impl<D, K, F> Logic for DetectLogic<D, K, F>
where
    D: Detector,
    K: Clone + Eq + Hash + 'static,
    F: Fn(&Reading) -> K + 'static,
{
    type State = DetectState<K, D::State>;
    type Out = Scored<K>;

    fn batch(
        &mut self,
        st: &mut Self::State,
        t: Timestamp,
        data: Vec<Reading>,
        _out: &mut Outs<Scored<K>>,
    ) {
        let key = &self.key;
        st.pending
            .extend(data.into_iter().map(|r| (r.ts.max(t), (key(&r), r))));
    }

    fn release(
        &mut self,
        st: &mut Self::State,
        bound: Option<Timestamp>,
        out: &mut Outs<Scored<K>>,
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
        let d = &self.detector;
        for (at, (k, r)) in ready.iter() {
            let state = match st.series.get_mut(k) {
                Some(s) => s,
                None => st.series.entry(k.clone()).or_insert_with(|| d.init()),
            };
            let score = d.update(state, r.ts, r.value);
            if score.flag {
                out.alerts.push((
                    *at,
                    Alert {
                        device: r.device.clone(),
                        metric: r.metric.clone(),
                        ts: r.ts,
                        value: r.value,
                        score: score.raw,
                        detector: self.label.clone(),
                    },
                ));
            }
            if self.scores {
                out.records.push((
                    *at,
                    Scored {
                        key: k.clone(),
                        device: r.device.clone(),
                        metric: r.metric.clone(),
                        ts: r.ts,
                        value: r.value,
                        score,
                    },
                ));
            }
        }
        ready.clear();
    }
}
