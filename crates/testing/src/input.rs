//! Seeded random input: out-of-order readings, equal timestamps, spikes and
//! malformed lines, each line paired with what it should decode to.

use iotflow_types::Reading;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Metrics with a baseline and noise inside their fleet-v1 physical range:
/// (name, baseline low, baseline high, noise σ, decimals).
const METRICS: [(&str, f64, f64, f64, i32); 4] = [
    ("temp", 15.0, 30.0, 0.3, 2),
    ("humidity", 30.0, 70.0, 1.5, 2),
    ("pressure", 980.0, 1040.0, 0.8, 2),
    ("vibration", 1.0, 2.0, 0.05, 3),
];

/// Malformed lines the generator mixes in; all of them are rejected by the
/// NDJSON decoder or the fleet-v1 rules.
const MALFORMED: [&str; 6] = [
    r#"{"device_id":"d-1","ts":12"#,
    r#"{"device_id":"d-1","metric":"temp","value":1.0}"#,
    r#"{"device_id":"d-1","ts":5,"metric":"temp","value":NaN}"#,
    r#"{"device_id":"d-1","ts":5,"metric":"temp","value":999.0}"#,
    r#"{"device_id":"d-1","ts":5,"metric":"rpm","value":1.0}"#,
    "[1,2,3]",
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct RandomInput {
    /// Seed of the stream.
    pub seed: u64,
    /// Lines (malformed ones included).
    pub lines: usize,
    /// Devices; each line picks one uniformly.
    pub devices: u32,
    /// Metrics used, 1 to 4 (temp, humidity, pressure, vibration).
    pub metrics: usize,
    /// Event time of the first line.
    pub start_ms: u64,
    /// Nominal event time advances by `0..=step_ms` per line (0 gives equal
    /// timestamps).
    pub step_ms: u64,
    /// Each reading's ts is its nominal time minus `0..=disorder_ms`.
    pub disorder_ms: u64,
    /// Probability that a reading is instead `0..=straggle_ms` behind
    /// (unbounded disorder: such readings are often late).
    pub straggler_p: f64,
    /// How far a straggler may be behind.
    pub straggle_ms: u64,
    /// Probability of a malformed line.
    pub malformed_p: f64,
    /// Probability that a reading is a ±12 σ spike.
    pub spike_p: f64,
}

impl RandomInput {
    /// 2,000 lines over 5 devices and 2 metrics, 0–25 ms steps, disorder up
    /// to 1.5 s, 2 % stragglers up to 30 s behind, 2 % malformed, 0.5 % spikes.
    pub fn new(seed: u64) -> Self {
        RandomInput {
            seed,
            lines: 2_000,
            devices: 5,
            metrics: 2,
            start_ms: 1_000_000,
            step_ms: 25,
            disorder_ms: 1_500,
            straggler_p: 0.02,
            straggle_ms: 30_000,
            malformed_p: 0.02,
            spike_p: 0.005,
        }
    }

    /// Generates the lines.
    pub fn generate(&self) -> Vec<Line> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let metrics = self.metrics.clamp(1, METRICS.len());
        let baselines: Vec<Vec<f64>> = (0..self.devices.max(1))
            .map(|_| {
                METRICS[..metrics]
                    .iter()
                    .map(|m| rng.random_range(m.1..=m.2))
                    .collect()
            })
            .collect();
        let mut now = self.start_ms;
        let mut out = Vec::with_capacity(self.lines);
        for _ in 0..self.lines {
            now += rng.random_range(0..=self.step_ms);
            if rng.random_bool(self.malformed_p) {
                let text = MALFORMED[rng.random_range(0..MALFORMED.len())];
                out.push(Line {
                    text: text.to_owned(),
                    reading: None,
                });
                continue;
            }
            let behind = if rng.random_bool(self.straggler_p) {
                rng.random_range(0..=self.straggle_ms)
            } else {
                rng.random_range(0..=self.disorder_ms)
            };
            let ts = now.saturating_sub(behind);
            let d = rng.random_range(0..self.devices.max(1));
            let m = rng.random_range(0..metrics);
            let (name, _, _, sd, decimals) = METRICS[m];
            let z = if rng.random_bool(self.spike_p) {
                if rng.random_bool(0.5) { 12.0 } else { -12.0 }
            } else {
                rng.random_range(-3.0..=3.0)
            };
            let scale = 10f64.powi(decimals);
            let value = ((baselines[d as usize][m] + z * sd) * scale).round() / scale;
            let device = format!("d-{d:03}");
            let text = format!(
                r#"{{"device_id":"{device}","ts":{ts},"metric":"{name}","value":{value}}}"#
            );
            out.push(Line {
                text,
                reading: Some(Reading::new(&device, ts, name, value)),
            });
        }
        out
    }
}

/// One generated line and the reading it should decode to (`None`: it must
/// be rejected).
#[derive(Clone, Debug)]
pub struct Line {
    /// The NDJSON text, without newline.
    pub text: String,
    /// The reading, if the line is valid.
    pub reading: Option<Reading>,
}

/// The texts of `lines`.
pub fn texts(lines: &[Line]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

/// The valid readings of `lines`, in order.
pub fn readings(lines: &[Line]) -> Vec<Reading> {
    lines.iter().filter_map(|l| l.reading.clone()).collect()
}
