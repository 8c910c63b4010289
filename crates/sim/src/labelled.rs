//! Labelled anomaly series: one sensor's readings with known anomalies, for
//! testing and evaluating detectors (`iotflow eval-anomaly`).
//!
//! A series is a level plus optional seasonality (a sine of
//! `season_period` readings) plus Gaussian noise of `sigma`, one reading
//! every `step_ms`. After a clean stretch of at least 10 % of the series
//! (and 300 readings), `anomalies` events are placed one per equal slot of
//! the rest, each at a random offset in its slot and followed by at least
//! 150 clean readings. Events cycle through `kinds`:
//!
//! | kind | what changes | rows labelled |
//! |---|---|---|
//! | `spike` | one reading ± 6–10 σ | 1 |
//! | `level_shift` | the level moves ± 3–5 σ, then comes back | 40–120 |
//! | `drift` | the level ramps to ± 4–8 σ, then jumps back | 60–150 |
//! | `variance_change` | the noise grows 3–5 × | 40–120 |
//! | `stuck` | the value freezes at the reading before | 20–60 |
//!
//! Every labelled row is one of an event's rows; label 1 marks exactly
//! them. Values are rounded to `decimals` places, so a CSV written with
//! [`LabelledSeries::write_csv`] reads back to the same numbers. The same
//! config gives the same series everywhere (the fleet generator's portable
//! random source).
//!
//! ```
//! use iotflow_sim::labelled::{AnomalyKind, LabelledConfig, LabelledSeries};
//! let cfg = LabelledConfig { kinds: vec![AnomalyKind::Spike], ..LabelledConfig::default() };
//! let s = LabelledSeries::generate(&cfg)?;
//! assert_eq!(s.values.len(), 5000);
//! assert_eq!(s.events.len(), 10);
//! assert_eq!(s.labels.iter().filter(|l| **l).count(), 10);
//! # Ok::<(), iotflow_sim::Error>(())
//! ```

use std::io::Write;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::rng::{FleetRng, SplitMix64, StdNormal};

/// A kind of anomaly (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// One reading far off.
    Spike,
    /// The level moves for a while.
    LevelShift,
    /// The level ramps away.
    Drift,
    /// The noise grows.
    VarianceChange,
    /// The value freezes.
    Stuck,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::VarianceChange,
        AnomalyKind::Stuck,
    ];

    /// The kind's name in configs.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::Drift => "drift",
            AnomalyKind::VarianceChange => "variance_change",
            AnomalyKind::Stuck => "stuck",
        }
    }

    /// Smallest and largest number of rows.
    fn rows(self) -> (usize, usize) {
        match self {
            AnomalyKind::Spike => (1, 1),
            AnomalyKind::LevelShift | AnomalyKind::VarianceChange => (40, 120),
            AnomalyKind::Drift => (60, 150),
            AnomalyKind::Stuck => (20, 60),
        }
    }
}

/// What labelled series to make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelledConfig {
    /// Readings. Default 5000.
    pub len: usize,
    /// Seed. Default 1.
    pub seed: u64,
    /// Kinds of anomaly, cycled through. Default: all five.
    pub kinds: Vec<AnomalyKind>,
    /// Anomaly events. Default 10.
    pub anomalies: usize,
    /// Time between readings (ms). Default 1000.
    pub step_ms: u64,
    /// First timestamp (ms since the Unix epoch). Default 1,700,000,000,000.
    pub start_ms: u64,
    /// Base level. Default 20.
    pub level: f64,
    /// Noise standard deviation. Default 1.
    pub sigma: f64,
    /// Season length in readings; 0 for none. Default 0.
    pub season_period: usize,
    /// Season amplitude. Default 0.
    pub season_amplitude: f64,
    /// Decimal places of the values. Default 4.
    pub decimals: u32,
}

impl Default for LabelledConfig {
    fn default() -> Self {
        LabelledConfig {
            len: 5000,
            seed: 1,
            kinds: AnomalyKind::ALL.to_vec(),
            anomalies: 10,
            step_ms: 1000,
            start_ms: 1_700_000_000_000,
            level: 20.0,
            sigma: 1.0,
            season_period: 0,
            season_amplitude: 0.0,
            decimals: 4,
        }
    }
}

/// One anomaly event: rows `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvent {
    /// Its kind.
    pub kind: AnomalyKind,
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
}

/// A generated series.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledSeries {
    /// Timestamps, ms since the Unix epoch.
    pub ts: Vec<u64>,
    /// Values.
    pub values: Vec<f64>,
    /// Whether each row is anomalous.
    pub labels: Vec<bool>,
    /// The events, in row order.
    pub events: Vec<AnomalyEvent>,
}

/// Rows kept clean after each event, so detectors settle.
const GAP: usize = 150;

impl LabelledSeries {
    /// Generates the series `cfg` describes.
    pub fn generate(cfg: &LabelledConfig) -> Result<LabelledSeries, Error> {
        let bad = |m: String| Err(Error::Config(m));
        if cfg.kinds.is_empty() && cfg.anomalies > 0 {
            return bad("labelled series: no anomaly kinds".into());
        }
        if !(cfg.sigma.is_finite() && cfg.sigma > 0.0 && cfg.level.is_finite()) {
            return bad(format!(
                "labelled series: bad level/sigma {} {}",
                cfg.level, cfg.sigma
            ));
        }
        let clean = (cfg.len / 10).max(300);
        let longest = cfg.kinds.iter().map(|k| k.rows().1).max().unwrap_or(1);
        let slot = cfg
            .len
            .saturating_sub(clean)
            .checked_div(cfg.anomalies)
            .unwrap_or(usize::MAX);
        if cfg.anomalies > 0 && slot < longest + GAP {
            return bad(format!(
                "labelled series: {} readings are too few for {} anomalies (need {} per anomaly after {} clean)",
                cfg.len,
                cfg.anomalies,
                longest + GAP,
                clean
            ));
        }
        let mut rng = FleetRng::from_splitmix(&mut SplitMix64(cfg.seed ^ 0x1abe_11ed));
        let mut normal = StdNormal::default();
        let uniform = |rng: &mut FleetRng, lo: f64, hi: f64| lo + (hi - lo) * rng.random::<f64>();

        // Events and their parameters first, so the noise stream does not
        // depend on them.
        let mut events = Vec::with_capacity(cfg.anomalies);
        let mut params = Vec::with_capacity(cfg.anomalies);
        for i in 0..cfg.anomalies {
            let kind = cfg.kinds[i % cfg.kinds.len()];
            let (lo, hi) = kind.rows();
            let rows = lo + (rng.random::<u64>() % (hi - lo + 1) as u64) as usize;
            let room = slot - rows - GAP;
            let start = clean + i * slot + (rng.random::<u64>() % (room as u64 + 1)) as usize;
            let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
            let magnitude = match kind {
                AnomalyKind::Spike => uniform(&mut rng, 6.0, 10.0),
                AnomalyKind::LevelShift => uniform(&mut rng, 3.0, 5.0),
                AnomalyKind::Drift => uniform(&mut rng, 4.0, 8.0),
                AnomalyKind::VarianceChange => uniform(&mut rng, 3.0, 5.0),
                AnomalyKind::Stuck => 0.0,
            };
            events.push(AnomalyEvent {
                kind,
                start,
                end: start + rows,
            });
            params.push(sign * magnitude);
        }

        let scale = 10f64.powi(cfg.decimals.min(12) as i32);
        let round = |x: f64| (x * scale).round() / scale;
        let mut values = Vec::with_capacity(cfg.len);
        let mut labels = vec![false; cfg.len];
        let mut next = 0;
        for (i, label) in labels.iter_mut().enumerate() {
            let season = if cfg.season_period > 0 {
                let phase = (i % cfg.season_period) as f64 / cfg.season_period as f64;
                cfg.season_amplitude * (std::f64::consts::TAU * phase).sin()
            } else {
                0.0
            };
            let noise = normal.sample(&mut rng) * cfg.sigma;
            while next < events.len() && events[next].end <= i {
                next += 1;
            }
            let mut v = cfg.level + season + noise;
            if let Some(e) = events.get(next).filter(|e| e.start <= i) {
                *label = true;
                let p = params[next];
                let pos = (i - e.start + 1) as f64 / (e.end - e.start) as f64;
                match e.kind {
                    AnomalyKind::Spike | AnomalyKind::LevelShift => v += p * cfg.sigma,
                    AnomalyKind::Drift => v += p * cfg.sigma * pos,
                    AnomalyKind::VarianceChange => v = cfg.level + season + noise * p.abs(),
                    AnomalyKind::Stuck => {
                        if let Some(prev) = values.last() {
                            v = *prev;
                        }
                    }
                }
            }
            values.push(round(v));
        }
        let ts = (0..cfg.len as u64)
            .map(|i| cfg.start_ms + i * cfg.step_ms)
            .collect();
        Ok(LabelledSeries {
            ts,
            values,
            labels,
            events,
        })
    }

    /// Writes `timestamp,value,label` rows (epoch ms, value, 0/1) with a
    /// header.
    pub fn write_csv(&self, mut w: impl Write) -> std::io::Result<()> {
        writeln!(w, "timestamp,value,label")?;
        for ((t, v), l) in self.ts.iter().zip(&self.values).zip(&self.labels) {
            writeln!(w, "{t},{v},{}", u8::from(*l))?;
        }
        Ok(())
    }
}

/// What labelled multivariate series to make: `metrics` sensors of one
/// device driven by one shared factor, so that they move together.
///
/// Row `i` is `x_j = level_j + loading · f_i + noise · e_ij` for metric
/// `j`, with `f_i` and `e_ij` independent standard normals and
/// `level_j = 20 + 5 j`. In a **correlation break** one metric (events
/// cycle through them) follows `−f_i` instead of `f_i` for 20–60 rows. Its
/// values keep exactly their usual distribution, and so do every other
/// metric's: no detector that looks at one metric at a time can see the
/// break, only one that looks at the metrics together. Events are placed
/// as in [`LabelledSeries`] (after a clean stretch, one per slot, at least
/// 150 clean rows apart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    /// Rows. Default 5000.
    pub len: usize,
    /// Seed. Default 1.
    pub seed: u64,
    /// Metrics per row, at least 2. Default 4.
    pub metrics: usize,
    /// Correlation breaks. Default 10.
    pub anomalies: usize,
    /// Time between rows (ms). Default 1000.
    pub step_ms: u64,
    /// First timestamp (ms since the Unix epoch). Default 1,700,000,000,000.
    pub start_ms: u64,
    /// Weight of the shared factor. Default 2.
    pub loading: f64,
    /// Standard deviation of each metric's own noise. Default 0.5.
    pub noise: f64,
    /// Decimal places of the values. Default 4.
    pub decimals: u32,
}

impl Default for VectorConfig {
    fn default() -> Self {
        VectorConfig {
            len: 5000,
            seed: 1,
            metrics: 4,
            anomalies: 10,
            step_ms: 1000,
            start_ms: 1_700_000_000_000,
            loading: 2.0,
            noise: 0.5,
            decimals: 4,
        }
    }
}

/// One correlation break: rows `start..end` of `metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorEvent {
    /// The metric that breaks away.
    pub metric: usize,
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
}

/// A generated multivariate series (see [`VectorConfig`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledVectors {
    /// Timestamps, ms since the Unix epoch.
    pub ts: Vec<u64>,
    /// `values[i][j]`: row `i`, metric `j`.
    pub values: Vec<Vec<f64>>,
    /// Whether each row is anomalous.
    pub labels: Vec<bool>,
    /// The events, in row order.
    pub events: Vec<VectorEvent>,
}

impl LabelledVectors {
    /// Rows of one break: 20–60.
    const ROWS: (usize, usize) = (20, 60);

    /// Generates the series `cfg` describes.
    pub fn generate(cfg: &VectorConfig) -> Result<LabelledVectors, Error> {
        if cfg.metrics < 2 || !(cfg.noise.is_finite() && cfg.noise > 0.0 && cfg.loading.is_finite())
        {
            return Err(Error::Config(format!(
                "labelled vectors: need metrics >= 2 and noise > 0, got {cfg:?}"
            )));
        }
        let clean = (cfg.len / 10).max(300);
        let slot = cfg
            .len
            .saturating_sub(clean)
            .checked_div(cfg.anomalies)
            .unwrap_or(usize::MAX);
        if cfg.anomalies > 0 && slot < Self::ROWS.1 + GAP {
            return Err(Error::Config(format!(
                "labelled vectors: {} rows are too few for {} breaks",
                cfg.len, cfg.anomalies
            )));
        }
        let mut rng = FleetRng::from_splitmix(&mut SplitMix64(cfg.seed ^ 0x7ec7_0125));
        let mut normal = StdNormal::default();
        let mut events = Vec::with_capacity(cfg.anomalies);
        for i in 0..cfg.anomalies {
            let (lo, hi) = Self::ROWS;
            let rows = lo + (rng.random::<u64>() % (hi - lo + 1) as u64) as usize;
            let room = slot - rows - GAP;
            let start = clean + i * slot + (rng.random::<u64>() % (room as u64 + 1)) as usize;
            events.push(VectorEvent {
                metric: i % cfg.metrics,
                start,
                end: start + rows,
            });
        }
        let scale = 10f64.powi(cfg.decimals.min(12) as i32);
        let round = |x: f64| (x * scale).round() / scale;
        let mut values = Vec::with_capacity(cfg.len);
        let mut labels = vec![false; cfg.len];
        let mut next = 0;
        for (i, label) in labels.iter_mut().enumerate() {
            while next < events.len() && events[next].end <= i {
                next += 1;
            }
            let broken = events.get(next).filter(|e| e.start <= i).map(|e| e.metric);
            *label = broken.is_some();
            let f = normal.sample(&mut rng);
            let row = (0..cfg.metrics)
                .map(|j| {
                    let sign = if broken == Some(j) { -1.0 } else { 1.0 };
                    let e = normal.sample(&mut rng);
                    round(20.0 + 5.0 * j as f64 + sign * cfg.loading * f + cfg.noise * e)
                })
                .collect();
            values.push(row);
        }
        let ts = (0..cfg.len as u64)
            .map(|i| cfg.start_ms + i * cfg.step_ms)
            .collect();
        Ok(LabelledVectors {
            ts,
            values,
            labels,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_exactly_the_event_rows_and_events_do_not_touch() {
        let s = LabelledSeries::generate(&LabelledConfig::default()).expect("generate");
        let mut expect = vec![false; s.values.len()];
        for (i, e) in s.events.iter().enumerate() {
            assert_eq!(e.kind, AnomalyKind::ALL[i % 5]);
            let (lo, hi) = e.kind.rows();
            assert!((lo..=hi).contains(&(e.end - e.start)));
            if let Some(n) = s.events.get(i + 1) {
                assert!(n.start >= e.end + GAP);
            }
            expect[e.start..e.end].iter_mut().for_each(|l| *l = true);
        }
        assert_eq!(s.labels, expect);
        assert!(s.events[0].start >= 500);
    }

    #[test]
    fn anomalies_look_like_their_kind() {
        let s = LabelledSeries::generate(&LabelledConfig::default()).expect("generate");
        for e in &s.events {
            let rows = &s.values[e.start..e.end];
            match e.kind {
                AnomalyKind::Spike => assert!((rows[0] - 20.0).abs() > 5.0),
                AnomalyKind::Stuck => {
                    assert!(rows.iter().all(|v| *v == s.values[e.start - 1]));
                }
                AnomalyKind::LevelShift => {
                    let mean = rows.iter().sum::<f64>() / rows.len() as f64;
                    assert!((mean - 20.0).abs() > 2.5, "{mean}");
                }
                AnomalyKind::Drift => {
                    let last = &rows[rows.len() - 10..];
                    let mean = last.iter().sum::<f64>() / 10.0;
                    assert!((mean - 20.0).abs() > 2.5, "{mean}");
                }
                AnomalyKind::VarianceChange => {
                    let var =
                        rows.iter().map(|v| (v - 20.0).powi(2)).sum::<f64>() / rows.len() as f64;
                    assert!(var > 4.0, "{var}");
                }
            }
        }
    }

    #[test]
    fn same_config_same_series_and_csv_round_trips() {
        let cfg = LabelledConfig {
            len: 2000,
            anomalies: 4,
            season_period: 50,
            season_amplitude: 3.0,
            ..LabelledConfig::default()
        };
        let a = LabelledSeries::generate(&cfg).expect("generate");
        assert_eq!(a, LabelledSeries::generate(&cfg).expect("generate"));
        let mut csv = Vec::new();
        a.write_csv(&mut csv).expect("write");
        let text = String::from_utf8(csv).expect("utf8");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 2000);
        for (i, row) in rows.iter().enumerate() {
            let f: Vec<&str> = row.split(',').collect();
            assert_eq!(f[1].parse::<f64>().expect("value"), a.values[i]);
            assert_eq!(f[2] == "1", a.labels[i]);
        }
    }

    #[test]
    fn too_short_is_an_error() {
        let cfg = LabelledConfig {
            len: 600,
            ..LabelledConfig::default()
        };
        assert!(LabelledSeries::generate(&cfg).is_err());
    }

    #[test]
    fn a_correlation_break_keeps_every_metric_s_distribution() {
        let cfg = VectorConfig {
            len: 20_000,
            anomalies: 40,
            ..VectorConfig::default()
        };
        let v = LabelledVectors::generate(&cfg).expect("generate");
        assert_eq!(v.events.len(), 40);
        assert_eq!(
            v.labels.iter().filter(|l| **l).count(),
            v.events.iter().map(|e| e.end - e.start).sum::<usize>()
        );
        // Inside a break the broken metric moves against the others;
        // outside, every pair moves together. Its own mean and spread stay.
        let corr = |rows: &[usize], a: usize, b: usize| {
            let n = rows.len() as f64;
            let m = |j: usize| rows.iter().map(|&i| v.values[i][j]).sum::<f64>() / n;
            let (ma, mb) = (m(a), m(b));
            let cov = rows
                .iter()
                .map(|&i| (v.values[i][a] - ma) * (v.values[i][b] - mb))
                .sum::<f64>();
            let va = rows
                .iter()
                .map(|&i| (v.values[i][a] - ma).powi(2))
                .sum::<f64>();
            let vb = rows
                .iter()
                .map(|&i| (v.values[i][b] - mb).powi(2))
                .sum::<f64>();
            (cov / (va * vb).sqrt(), ma, (va / n).sqrt())
        };
        let broken0: Vec<usize> = v
            .events
            .iter()
            .filter(|e| e.metric == 0)
            .flat_map(|e| e.start..e.end)
            .collect();
        let clean: Vec<usize> = (0..v.values.len()).filter(|i| !v.labels[*i]).collect();
        let (c_in, m_in, s_in) = corr(&broken0, 0, 1);
        let (c_out, m_out, s_out) = corr(&clean, 0, 1);
        assert!(c_in < -0.8 && c_out > 0.8, "{c_in} {c_out}");
        assert!(
            (m_in - m_out).abs() < 0.3 && (s_in - s_out).abs() < 0.3,
            "{m_in} {m_out} {s_in} {s_out}"
        );
    }
}
