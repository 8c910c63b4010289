use iotflow_core::checkpoint::{Checkpoints, Snapshot, encoder};
use iotflow_core::state::SnapshotError;
use iotflow_core::state::{KeyedState, route};
use iotflow_core::tally::Tally;
use iotflow_types::{Alert, Reading, SeriesKey, SmallStr, Timestamp};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::shell::{Logic, Outs, Released, shell, take_released};

/// The EWMA z-score detector (`EwmaConfig` in TOML).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ewma {
    /// Smoothing factor in (0, 1]. fleet-v1: 0.01.
    pub alpha: f64,
    /// Alert when |z| exceeds this. fleet-v1: 6.
    pub threshold: f64,
    /// Readings a series must have seen before it can alert. fleet-v1: 30.
    pub warmup: u64,
    /// In which order a series' readings are scored. Default: event time.
    #[serde(default)]
    pub order: ScoreOrder,
}

/// The order in which a detector sees a series' readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreOrder {
    /// Event-time order: readings wait until the watermark passes them (up to
    /// the source's max disorder), then are scored sorted by time. Alerts are
    /// the same for any number of workers.
    #[default]
    EventTime,
    /// Arrival order: scored at once, lowest latency. With one worker this is
    /// input order (fleet-v1's literal rule); with several, readings of a
    /// series from different source workers may interleave differently from
    /// run to run.
    Arrival,
}

impl Ewma {
    /// A detector with smoothing `alpha`, threshold 6 and warm-up 30.
    pub fn new(alpha: f64) -> Self {
        Ewma {
            alpha,
            threshold: 6.0,
            warmup: 30,
            order: ScoreOrder::EventTime,
        }
    }

    /// Sets the scoring order.
    pub fn order(mut self, order: ScoreOrder) -> Self {
        self.order = order;
        self
    }

    /// Sets the |z| threshold.
    pub fn threshold(mut self, t: f64) -> Self {
        self.threshold = t;
        self
    }

    /// Sets the warm-up count.
    pub fn warmup(mut self, n: u64) -> Self {
        self.warmup = n;
        self
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), iotflow_core::Error> {
        if self.alpha.is_nan() || self.alpha <= 0.0 || self.alpha > 1.0 {
            return Err(iotflow_core::Error::Config(format!(
                "ewma alpha must be in (0, 1], got {}",
                self.alpha
            )));
        }
        if self.threshold.is_nan() || self.threshold <= 0.0 {
            return Err(iotflow_core::Error::Config(format!(
                "ewma threshold must be > 0, got {}",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// The state of one series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EwmaState {
    /// Readings seen.
    pub n: u64,
    /// Exponentially weighted mean.
    pub mean: f64,
    /// Exponentially weighted variance.
    pub var: f64,
}

impl EwmaState {
    /// Folds `v` in; returns z against the previous state when the series is
    /// warm and its variance positive.
    #[inline]
    pub fn update(&mut self, v: f64, p: &Ewma) -> Option<f64> {
        if self.n == 0 {
            *self = EwmaState {
                n: 1,
                mean: v,
                var: 0.0,
            };
            return None;
        }
        let diff = v - self.mean;
        let z = (self.n >= p.warmup && self.var > 0.0).then(|| diff / self.var.sqrt());
        let incr = p.alpha * diff;
        self.n += 1;
        self.mean += incr;
        self.var = (1.0 - p.alpha) * (self.var + diff * incr);
        z
    }
}

/// Everything one worker's z-score operator holds: per-series EWMA state and
/// the readings waiting for the frontier. A snapshot of it (see
/// [`iotflow_core::state`]) restores the operator exactly.
///
/// In event-time order a reading is scored once the frontier passes its
/// *release time* `max(ts, t)` (`t`: the timely time it arrived at, which is
/// later than `ts` for a reading that arrived out of order), in order of
/// `(release time, ts, value)`. That order is a total order fixed by the
/// input alone, and each frontier step releases a prefix of it, so alerts do
/// not depend on how the frontier happened to advance, on worker count, or
/// on checkpoints and restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScorerState {
    /// Per (device, metric) state.
    pub series: FxHashMap<SeriesKey, EwmaState>,
    /// Readings not yet scored, with their release time.
    pub pending: Vec<(Timestamp, Reading)>,
    /// Every reading with a release time below this has been scored.
    pub released_below: Timestamp,
}

fn series_route(device: &str, metric: &str, peers: usize) -> usize {
    route(SeriesKey::hash_parts(device, metric), peers)
}

impl KeyedState for ScorerState {
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        self.series
            .retain(|k, _| series_route(k.device.as_str(), k.metric.as_str(), peers) == worker);
        self.pending
            .retain(|(_, r)| series_route(r.device.as_str(), r.metric.as_str(), peers) == worker);
    }

    fn merge(&mut self, other: Self) {
        self.series.extend(other.series);
        self.pending.extend(other.pending);
        self.released_below = self.released_below.max(other.released_below);
    }
}

/// The outputs of a detector.
#[derive(Debug)]
pub struct ScoreStreams<'scope> {
    /// Alerts.
    pub alerts: StreamVec<'scope, Timestamp, Alert>,
    /// Per worker at the end: alerts raised.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// Scores readings with a streaming detector.
pub trait Score<'scope> {
    /// Runs the EWMA z-score per (device, metric).
    ///
    /// ```
    /// use iotflow_anomaly::{Ewma, Score};
    /// use iotflow_types::Reading;
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let rx = timely::example(|scope| {
    ///     let mut readings: Vec<Reading> = (0..100).map(|i| Reading::new("d-1", i * 1000, "temp", 20.0 + (i % 3) as f64 * 0.1)).collect();
    ///     readings.push(Reading::new("d-1", 200_000, "temp", 35.0));
    ///     readings.to_stream(scope).score("zscore", Ewma::new(0.01).threshold(6.0)).alerts.capture()
    /// });
    /// let alerts: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert_eq!(alerts.len(), 1);
    /// assert_eq!(alerts[0].ts, 200_000);
    /// ```
    fn score(self, name: &str, detector: Ewma) -> ScoreStreams<'scope>;
}

impl<'scope> Score<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn score(self, name: &str, p: Ewma) -> ScoreStreams<'scope> {
        build(self, name, p, None)
    }
}

/// A detector that takes part in checkpoints.
pub trait ScoreCheckpointed<'scope> {
    /// [`Score::score`] with its state in every checkpoint of
    /// `checkpoints`, restored from the checkpoint being recovered (on any
    /// number of workers).
    fn score_checkpointed(
        self,
        name: &str,
        detector: Ewma,
        checkpoints: &Checkpoints<'scope>,
    ) -> Result<ScoreStreams<'scope>, SnapshotError>;
}

impl<'scope> ScoreCheckpointed<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn score_checkpointed(
        self,
        name: &str,
        p: Ewma,
        checkpoints: &Checkpoints<'scope>,
    ) -> Result<ScoreStreams<'scope>, SnapshotError> {
        let restored = checkpoints.restore::<Snapshot<ScorerState>>(name)?;
        Ok(build(self, name, p, Some((checkpoints, restored))))
    }
}

/// The EWMA detector inside the operator shell.
struct EwmaLogic {
    p: Ewma,
    detector: SmallStr,
    ready: Released<Reading>,
}

impl Logic for EwmaLogic {
    type State = ScorerState;
    type Out = ();

    fn batch(
        &mut self,
        st: &mut ScorerState,
        t: Timestamp,
        data: Vec<Reading>,
        out: &mut Outs<()>,
    ) {
        if self.p.order == ScoreOrder::Arrival {
            for r in &data {
                score_one(st, r, t, &self.p, &self.detector, &mut out.alerts);
            }
        } else {
            st.pending
                .extend(data.into_iter().map(|r| (r.ts.max(t), r)));
        }
    }

    fn release(&mut self, st: &mut ScorerState, bound: Option<Timestamp>, out: &mut Outs<()>) {
        let ready = &mut self.ready;
        if take_released(&mut st.pending, &mut st.released_below, bound, ready, |r| r) {
            for (at, r) in ready.iter() {
                score_one(st, r, *at, &self.p, &self.detector, &mut out.alerts);
            }
            ready.clear();
        }
    }
}

#[inline]
fn score_one(
    st: &mut ScorerState,
    r: &Reading,
    at: Timestamp,
    p: &Ewma,
    detector: &SmallStr,
    alerts: &mut Vec<(Timestamp, Alert)>,
) {
    let key = SeriesKey::of(r);
    if let Some(z) = st.series.entry(key).or_default().update(r.value, p)
        && z.abs() > p.threshold
    {
        alerts.push((
            at,
            Alert {
                device: r.device.clone(),
                metric: r.metric.clone(),
                ts: r.ts,
                value: r.value,
                score: z,
                detector: detector.clone(),
            },
        ));
    }
}

fn build<'scope>(
    stream: StreamVec<'scope, Timestamp, Reading>,
    name: &str,
    p: Ewma,
    hooks: Option<(&Checkpoints<'scope>, Option<Snapshot<ScorerState>>)>,
) -> ScoreStreams<'scope> {
    let (restored, hooks) = match hooks {
        Some((c, restored)) => (restored, Some((c, encoder::<ScorerState>()))),
        None => (None, None),
    };
    let logic = EwmaLogic {
        p,
        detector: SmallStr::from(name),
        ready: Released::default(),
    };
    let streams = shell(
        stream,
        name,
        SeriesKey::hash_of,
        logic,
        restored.unwrap_or_default(),
        hooks,
    );
    ScoreStreams {
        alerts: streams.alerts,
        tally: streams.tally,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts_for(order: ScoreOrder) -> Vec<Alert> {
        use timely::dataflow::operators::capture::Event;
        use timely::dataflow::operators::{Capture, ToStream};
        let rx = timely::example(move |scope| {
            // Normal values arrive first but carry later times; the spike
            // arrives last with the earliest time.
            let mut v: Vec<Reading> = (0..10)
                .map(|i| Reading::new("d", 1_000 + i, "temp", 20.0 + (i % 2) as f64 * 0.1))
                .collect();
            v.push(Reading::new("d", 0, "temp", 90.0));
            v.to_stream(scope)
                .score("z", Ewma::new(0.1).warmup(5).order(order))
                .alerts
                .capture()
        });
        rx.try_iter()
            .flat_map(|e| {
                if let Event::Messages(_, d) = e {
                    d
                } else {
                    vec![]
                }
            })
            .collect()
    }

    #[test]
    fn arrival_order_scores_as_data_comes_event_time_order_by_time() {
        let arrival = alerts_for(ScoreOrder::Arrival);
        assert_eq!(arrival.len(), 1);
        assert_eq!(arrival[0].value, 90.0);
        // By event time the spike comes first, before any warm-up: no alert.
        assert!(alerts_for(ScoreOrder::EventTime).is_empty());
    }

    #[test]
    fn scorer_state_routes_like_the_exchange_and_rescales() {
        use iotflow_core::state::{decode, encode, rescale};
        let mut st = ScorerState::default();
        for i in 0..100 {
            let r = Reading::new(&format!("d-{i}"), i, "temp", 1.0);
            st.series.insert(SeriesKey::of(&r), EwmaState::default());
            st.pending.push((i, r));
        }
        // The exchange routes readings by `SeriesKey::hash_of`; state must agree.
        for (_, r) in &st.pending {
            assert_eq!(
                route(SeriesKey::hash_of(r), 3),
                series_route(r.device.as_str(), r.metric.as_str(), 3)
            );
        }
        let bytes = encode(&st).expect("encode");
        let (mut series, mut pending) = (0, 0);
        for w in 0..3 {
            let part =
                rescale(vec![decode::<ScorerState>(&bytes).expect("decode")], w, 3).expect("part");
            series += part.series.len();
            pending += part.pending.len();
        }
        assert_eq!((series, pending), (100, 100));
    }

    #[test]
    fn released_alerts_are_stamped_at_their_event_time() {
        use timely::dataflow::operators::capture::Event;
        use timely::dataflow::operators::{Capture, ToStream};
        let rx = timely::example(|scope| {
            let mut v: Vec<Reading> = (0..100)
                .map(|i| Reading::new("d", i * 1000, "temp", 20.0 + (i % 3) as f64 * 0.1))
                .collect();
            v.push(Reading::new("d", 200_000, "temp", 35.0));
            v.to_stream(scope)
                .score("z", Ewma::new(0.01))
                .alerts
                .capture()
        });
        let mut n = 0;
        for e in rx.try_iter() {
            if let Event::Messages(t, alerts) = e {
                for a in alerts {
                    assert_eq!(t.least(), Some(&a.ts));
                    n += 1;
                }
            }
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn update_matches_fleet_formula() {
        let p = Ewma::new(0.01);
        let mut s = EwmaState::default();
        assert_eq!(s.update(10.0, &p), None);
        assert_eq!(s.update(12.0, &p), None);
        // diff 2, mean 10.02, var 0.99 * (0 + 2 * 0.02)
        assert!((s.mean - 10.02).abs() < 1e-12);
        assert!((s.var - 0.99 * 0.04).abs() < 1e-12);
    }
}
