//! Forecasting for predictive maintenance: per key, a linear trend fitted
//! to the last readings, and the predicted event time at which it crosses
//! a threshold.
//!
//! The trend is the least-squares line `v = a + b·t` through the last
//! `window` readings of the series (kept as running sums, O(1) per reading,
//! recomputed from the window every `window` readings so rounding cannot
//! accumulate). Each reading emits a [`Forecast`]: the trend's value at the
//! reading's time and `crossing`, the time at which the line reaches the
//! threshold in the configured direction, if that is within `horizon_ms`
//! (`Some(ts)` when the fitted value is already past it).
//!
//! A seasonal series needs `season` (readings per season): a line fitted
//! to raw seasonal values is biased by the season's phase at the window's
//! ends, even over whole seasons. With it, the line is fitted to the moving
//! average of the last `season` readings instead (placed at their mean
//! time), which removes a periodic component exactly; `crossing` is then
//! when the trend under the season crosses.

use std::collections::VecDeque;

use iotflow_core::checkpoint::{Checkpoints, Snapshot, encoder};
use iotflow_core::tally::Tally;
use iotflow_types::{Reading, SeriesKey, Timestamp};
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Error;
use crate::detect::DetectState;
use crate::shell::{Logic, Outs, Released, shell, take_released};

/// Which way the threshold is crossed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Rising to or above the threshold (wear, temperature).
    #[default]
    Above,
    /// Falling to or below it (battery, pressure).
    Below,
}

/// The forecast configuration (`[forecast]` in TOML).
///
/// ```
/// use iotflow_anomaly::ForecastConfig;
/// let cfg: ForecastConfig = toml::from_str("threshold = 80.0\nhorizon_ms = 3600000")?;
/// cfg.validate()?;
/// assert_eq!(cfg.window, 120);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    /// The level to predict the crossing of.
    pub threshold: f64,
    /// Which way it is crossed. Default: above.
    #[serde(default)]
    pub direction: Direction,
    /// Readings the trend is fitted to (at least 2). Default 120.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Farthest crossing reported, ms after the reading. Default 24 h.
    #[serde(default = "default_horizon")]
    pub horizon_ms: u64,
    /// Readings per season; 0 for none. Default 0.
    #[serde(default)]
    pub season: usize,
}

fn default_window() -> usize {
    120
}
fn default_horizon() -> u64 {
    24 * 3_600_000
}

impl ForecastConfig {
    /// Crossings of `threshold` upwards, with the defaults.
    pub fn above(threshold: f64) -> Self {
        ForecastConfig {
            threshold,
            direction: Direction::Above,
            window: default_window(),
            horizon_ms: default_horizon(),
            season: 0,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.threshold.is_finite() || self.window < 2 || self.horizon_ms == 0 {
            return Err(Error::Config(format!(
                "forecast needs a finite threshold, window >= 2, horizon_ms > 0; got {self:?}"
            )));
        }
        Ok(())
    }

    /// Folds a reading into the series' trend and forecasts from it.
    pub fn update(&self, st: &mut TrendState, ts: Timestamp, value: f64) -> Forecast {
        if self.season > 1 {
            st.season.push_back((ts, value));
            if st.season.len() > self.season {
                st.season.pop_front();
            }
            if st.season.len() == self.season {
                let n = self.season as f64;
                let mean = st.season.iter().map(|p| p.1).sum::<f64>() / n;
                let first = st.season.front().map_or(ts, |p| p.0);
                let mid = first + (ts - first) / 2;
                st.push(self.window, mid, mean);
            }
        } else {
            st.push(self.window, ts, value);
        }
        let (level, slope) = st.fit(ts).unwrap_or((value, 0.0));
        let past = match self.direction {
            Direction::Above => level >= self.threshold,
            Direction::Below => level <= self.threshold,
        };
        let crossing = if past {
            Some(ts)
        } else if slope == 0.0 || !slope.is_finite() {
            None
        } else {
            // ms until the line reaches the threshold; negative: moving away.
            let dt = (self.threshold - level) / slope;
            (dt > 0.0 && dt <= self.horizon_ms as f64).then(|| ts + dt.ceil() as Timestamp)
        };
        Forecast {
            ts,
            value,
            level,
            slope_per_s: slope * 1000.0,
            crossing,
        }
    }

    /// Runs over one series in order, outside timely.
    pub fn replay(&self, series: impl IntoIterator<Item = (Timestamp, f64)>) -> Vec<Forecast> {
        let mut st = TrendState::default();
        series
            .into_iter()
            .map(|(ts, v)| self.update(&mut st, ts, v))
            .collect()
    }
}

/// The window of one series and its running sums, times relative to an
/// anchor (the first reading of the current sums) so that squares of
/// epoch milliseconds do not lose precision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendState {
    /// The last season's readings (with `season`).
    season: VecDeque<(Timestamp, f64)>,
    points: VecDeque<(Timestamp, f64)>,
    anchor: Timestamp,
    /// Σt, Σv, Σt², Σtv over `points` (t relative to `anchor`, in ms).
    sums: [f64; 4],
    /// Readings since the sums were recomputed.
    since: usize,
}

impl TrendState {
    fn push(&mut self, window: usize, ts: Timestamp, v: f64) {
        self.points.push_back((ts, v));
        self.add(ts, v, 1.0);
        while self.points.len() > window {
            if let Some((t, x)) = self.points.pop_front() {
                self.add(t, x, -1.0);
            }
        }
        self.since += 1;
        if self.since >= window || self.points.len() == 1 {
            // Re-anchor at the oldest point and recompute exactly.
            self.since = 0;
            self.anchor = self.points.front().map_or(ts, |p| p.0);
            self.sums = [0.0; 4];
            let pts: Vec<_> = self.points.iter().copied().collect();
            for (t, x) in pts {
                self.add(t, x, 1.0);
            }
        }
    }

    fn add(&mut self, ts: Timestamp, v: f64, sign: f64) {
        let t = ts as f64 - self.anchor as f64;
        self.sums[0] += sign * t;
        self.sums[1] += sign * v;
        self.sums[2] += sign * t * t;
        self.sums[3] += sign * t * v;
    }

    /// The fitted value at `ts` and the slope per ms; `None` with fewer
    /// than two distinct times.
    fn fit(&self, ts: Timestamp) -> Option<(f64, f64)> {
        let n = self.points.len() as f64;
        let [st, sv, stt, stv] = self.sums;
        let den = n * stt - st * st;
        if n < 2.0 || den.abs() <= 1e-9 * stt.abs().max(1.0) {
            return None;
        }
        let slope = (n * stv - st * sv) / den;
        let intercept = (sv - slope * st) / n;
        let t = ts as f64 - self.anchor as f64;
        Some((intercept + slope * t, slope))
    }
}

/// One reading's forecast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The reading's event time.
    pub ts: Timestamp,
    /// The reading's value.
    pub value: f64,
    /// The trend's value at `ts`.
    pub level: f64,
    /// The trend's slope, per second.
    pub slope_per_s: f64,
    /// Predicted event time of the threshold crossing, if within the
    /// horizon (`Some(ts)`: already past it).
    pub crossing: Option<Timestamp>,
}

/// A series' forecast, as `.forecast` emits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyedForecast {
    /// The series.
    pub key: SeriesKey,
    /// Its forecast.
    pub forecast: Forecast,
}

/// The checkpointed state of `.forecast`.
pub type ForecastState = DetectState<SeriesKey, TrendState>;

/// The outputs of `.forecast`.
#[derive(Debug)]
pub struct ForecastStreams<'scope> {
    /// Every reading's forecast, stamped at its release time.
    pub forecasts: StreamVec<'scope, Timestamp, KeyedForecast>,
    /// Per worker at the end (no alerts: a forecast is not one).
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// Forecasts each series' threshold crossing.
pub trait ForecastCrossing<'scope> {
    /// Fits a trend per (device, metric) in event-time order and emits a
    /// [`KeyedForecast`] per reading (see the [module docs](self)).
    ///
    /// ```
    /// use iotflow_anomaly::{ForecastConfig, ForecastCrossing};
    /// use iotflow_types::Reading;
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let rx = timely::example(|scope| {
    ///     // Rises 0.1 per second from 50: reaches 80 at t = 300 s.
    ///     (0..100u64)
    ///         .map(|i| Reading::new("pump-1", i * 1000, "temp", 50.0 + 0.1 * i as f64))
    ///         .to_stream(scope)
    ///         .forecast("wear", &ForecastConfig::above(80.0), None)
    ///         .expect("valid")
    ///         .forecasts
    ///         .capture()
    /// });
    /// let last = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).last().expect("one per reading");
    /// assert_eq!(last.forecast.crossing, Some(300_000));
    /// ```
    fn forecast(
        self,
        name: &str,
        config: &ForecastConfig,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<ForecastStreams<'scope>, Error>;
}

impl<'scope> ForecastCrossing<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn forecast(
        self,
        name: &str,
        config: &ForecastConfig,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<ForecastStreams<'scope>, Error> {
        config.validate()?;
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<ForecastState>>(name)?,
            None => None,
        };
        let hooks = checkpoints.map(|c| (c, encoder::<ForecastState>()));
        let logic = ForecastLogic {
            config: config.clone(),
            ready: Released::default(),
        };
        let streams = shell(
            self,
            name,
            SeriesKey::hash_of,
            logic,
            restored.unwrap_or_default(),
            hooks,
        );
        Ok(ForecastStreams {
            forecasts: streams.records,
            tally: streams.tally,
        })
    }
}

struct ForecastLogic {
    config: ForecastConfig,
    ready: Released<(SeriesKey, Reading)>,
}

impl Logic for ForecastLogic {
    type State = ForecastState;
    type Out = KeyedForecast;

    fn batch(
        &mut self,
        st: &mut ForecastState,
        t: Timestamp,
        data: Vec<Reading>,
        _: &mut Outs<KeyedForecast>,
    ) {
        st.pending.extend(
            data.into_iter()
                .map(|r| (r.ts.max(t), (SeriesKey::of(&r), r))),
        );
    }

    fn release(
        &mut self,
        st: &mut ForecastState,
        bound: Option<Timestamp>,
        out: &mut Outs<KeyedForecast>,
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
        for (at, (key, r)) in ready.iter() {
            let state = match st.series.get_mut(key) {
                Some(s) => s,
                None => st.series.entry(key.clone()).or_default(),
            };
            let forecast = self.config.update(state, r.ts, r.value);
            out.records.push((
                *at,
                KeyedForecast {
                    key: key.clone(),
                    forecast,
                },
            ));
        }
        ready.clear();
    }
}
