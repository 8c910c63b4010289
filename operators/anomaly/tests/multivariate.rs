//! The multivariate mode on labelled correlation breaks (which no
//! per-metric detector can see), and as an operator: the same scores as a
//! per-device replay on 1 and 2 workers.
//!
//! `cargo test -p iotflow-anomaly --test multivariate -- --nocapture`
//! prints the figures.

use std::sync::{Arc, Mutex};

use iotflow_anomaly::eval::evaluate;
use iotflow_anomaly::{
    DetectMultivariate, DetectorConfig, DeviceScore, Emit, MultivariateConfig, replay,
};
use iotflow_sim::labelled::{LabelledVectors, VectorConfig};
use iotflow_types::Reading;
use timely::dataflow::operators::{Capture, ToStream, capture::Event};

const METRICS: [&str; 4] = ["m0", "m1", "m2", "m3"];
const SEEDS: [u64; 4] = [1, 2, 3, 4];
const TOLERANCE: usize = 5;

fn readings(device: &str, v: &LabelledVectors) -> Vec<Reading> {
    let mut out = Vec::new();
    for (i, row) in v.values.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            out.push(Reading::new(device, v.ts[i], METRICS[j], *x));
        }
    }
    out
}

/// (detected, windows, false alarms) of the row flags against the labels.
fn score(v: &LabelledVectors, flags: &[bool]) -> (usize, usize, usize) {
    let ts: Vec<i64> = v.ts.iter().map(|t| *t as i64).collect();
    let m = evaluate(&ts, &v.labels, flags, TOLERANCE);
    (m.detected, m.windows, m.false_alarms)
}

fn multivariate_flags(cfg: &MultivariateConfig, v: &LabelledVectors) -> Vec<bool> {
    let mut flags = vec![false; v.ts.len()];
    for s in cfg.replay(&readings("d", v)) {
        let row = ((s.ts - v.ts[0]) / 1000) as usize;
        flags[row] = s.score.flag;
    }
    flags
}

/// Each metric on its own with a univariate detector, a row flagged when
/// any metric is.
fn per_metric_flags(detector: &str, v: &LabelledVectors) -> Vec<bool> {
    let det = DetectorConfig::named(detector)
        .and_then(|c| c.build())
        .expect("detector");
    let mut flags = vec![false; v.ts.len()];
    for j in 0..METRICS.len() {
        let series = v.ts.iter().copied().zip(v.values.iter().map(|r| r[j]));
        for (f, s) in flags.iter_mut().zip(replay(&det, series)) {
            *f |= s.flag;
        }
    }
    flags
}

fn totals(flags: impl Fn(&LabelledVectors) -> Vec<bool>) -> (f64, f64) {
    let (mut d, mut w, mut fa) = (0, 0, 0);
    for seed in SEEDS {
        let v = LabelledVectors::generate(&VectorConfig {
            seed,
            ..VectorConfig::default()
        })
        .expect("series");
        let (a, b, c) = score(&v, &flags(&v));
        d += a;
        w += b;
        fa += c;
    }
    let p = if d + fa == 0 {
        0.0
    } else {
        d as f64 / (d + fa) as f64
    };
    (p, d as f64 / w as f64)
}

#[test]
fn mahalanobis_finds_correlation_breaks_that_no_single_metric_shows() {
    // Floors a little under the measured figures (4 seeds x 10 breaks):
    // shingle 1: P 1.000 R 0.925; shingle 2: P 0.952 R 1.000.
    for (shingle, min_p, min_r) in [(1, 0.95, 0.87), (2, 0.9, 0.95)] {
        let cfg = MultivariateConfig {
            shingle,
            ..MultivariateConfig::new(&METRICS)
        };
        let (p, r) = totals(|v| multivariate_flags(&cfg, v));
        println!("mahalanobis shingle {shingle}: P {p:.3} R {r:.3}");
        assert!(
            p >= min_p && r >= min_r,
            "shingle {shingle}: P {p:.3} R {r:.3}"
        );
    }
    // Every metric keeps its distribution: per-metric detectors flag nothing.
    for detector in ["auto", "mad"] {
        let (p, r) = totals(|v| per_metric_flags(detector, v));
        println!("{detector} per metric: P {p:.3} R {r:.3}");
        assert!(r <= 0.3, "{detector} per metric sees the breaks: R {r:.3}");
    }
}

#[cfg(feature = "rcf")]
#[test]
fn random_cut_forest_on_shingled_vectors() {
    let cfg = MultivariateConfig {
        shingle: 1,
        detector: iotflow_anomaly::VectorDetectorConfig::Rcf(iotflow_anomaly::RcfConfig::default()),
        ..MultivariateConfig::new(&METRICS)
    };
    let (p, r) = totals(|v| multivariate_flags(&cfg, v));
    println!("rcf shingle 1: P {p:.3} R {r:.3}");
    // Measured P 0.178 R 0.200: axis-parallel random cuts isolate a point
    // that leaves a correlated manifold without leaving any axis' range
    // poorly, which is why Mahalanobis is the mode's default. The floor
    // pins the figure so a change shows.
    assert!(p >= 0.12 && r >= 0.15, "P {p:.3} R {r:.3}");
}

fn run(workers: usize, input: Vec<Reading>, cfg: MultivariateConfig) -> Vec<DeviceScore> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let input = Arc::new(input);
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let (cfg, input) = (cfg.clone(), input.clone());
        let rx = worker.dataflow::<u64, _, _>(|scope| {
            let data = if index == 0 {
                (*input).clone()
            } else {
                Vec::new()
            };
            data.to_stream(scope)
                .detect_multivariate("mv", &cfg, Emit::Scores, None)
                .expect("valid")
                .scores
                .expect("scores asked for")
                .capture()
        });
        while worker.step() {}
        let got: Vec<DeviceScore> = rx
            .try_iter()
            .flat_map(|e| match e {
                Event::Messages(_, d) => d,
                _ => Vec::new(),
            })
            .collect();
        sink.lock().expect("lock").extend(got);
    })
    .expect("timely");
    let mut v = std::mem::take(&mut *out.lock().expect("lock"));
    v.sort_by(|a, b| (&a.device, a.step.ts).cmp(&(&b.device, b.step.ts)));
    v
}

#[test]
fn the_operator_scores_like_a_per_device_replay_on_1_and_2_workers() {
    let cfg = MultivariateConfig {
        shingle: 2,
        ..MultivariateConfig::new(&METRICS)
    };
    let small = |seed| {
        LabelledVectors::generate(&VectorConfig {
            seed,
            len: 1200,
            anomalies: 3,
            ..VectorConfig::default()
        })
        .expect("series")
    };
    let (a, b) = (small(7), small(8));
    let mut want = Vec::new();
    for (device, v) in [("d-a", &a), ("d-b", &b)] {
        let mut rs = readings(device, v);
        // A reading of a metric the mode ignores, and the rows of a
        // metric arriving after the others of their step.
        rs.push(Reading::new(device, v.ts[3], "other", 1e9));
        rs.sort_by(|x, y| x.ts.cmp(&y.ts).then(x.value.total_cmp(&y.value)));
        want.extend(cfg.replay(&rs).into_iter().map(|step| DeviceScore {
            device: device.into(),
            step,
        }));
    }
    // Interleaved devices, reversed: the operator orders by event time.
    let mut input: Vec<Reading> = readings("d-a", &a)
        .into_iter()
        .zip(readings("d-b", &b))
        .flat_map(|(x, y)| [x, y])
        .collect();
    input.push(Reading::new("d-a", a.ts[3], "other", 1e9));
    input.push(Reading::new("d-b", b.ts[3], "other", 1e9));
    input.reverse();
    let one = run(1, input.clone(), cfg.clone());
    assert_eq!(one.len(), want.len());
    assert!(one == want, "operator differs from the replay");
    assert!(one.iter().any(|s| s.step.score.flag));
    assert!(run(2, input, cfg) == one, "2 workers differ from 1");
}
