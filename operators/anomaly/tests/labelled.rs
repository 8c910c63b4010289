//! Every detector on the labelled generator's series, against stated
//! floors of event-level precision and recall (definitions in
//! `iotflow_anomaly::eval`). The figures are deterministic (seeded series,
//! deterministic detectors); the floors sit a little under them.
//!
//! `cargo test -p iotflow-anomaly --test labelled -- --nocapture` prints
//! the table.

use iotflow_anomaly::eval::evaluate;
use iotflow_anomaly::{DetectorConfig, replay};
use iotflow_sim::labelled::{AnomalyKind, LabelledConfig, LabelledSeries};

const TOLERANCE: usize = 5;
const SEEDS: [u64; 4] = [1, 2, 3, 4];

/// Sums detected windows, windows and false alarms over the seeds.
fn run(detector: &str, kinds: &[AnomalyKind], season: bool) -> (f64, f64, f64) {
    let det = DetectorConfig::named(detector)
        .and_then(|c| c.build())
        .expect("detector");
    let (mut detected, mut windows, mut false_alarms) = (0, 0, 0);
    for seed in SEEDS {
        let cfg = LabelledConfig {
            seed,
            kinds: kinds.to_vec(),
            season_period: if season { 24 } else { 0 },
            season_amplitude: if season { 4.0 } else { 0.0 },
            ..LabelledConfig::default()
        };
        let s = LabelledSeries::generate(&cfg).expect("series");
        let scores = replay(&det, s.ts.iter().copied().zip(s.values.iter().copied()));
        let flags: Vec<bool> = scores.iter().map(|v| v.flag).collect();
        let ts: Vec<i64> = s.ts.iter().map(|t| *t as i64).collect();
        let m = evaluate(&ts, &s.labels, &flags, TOLERANCE);
        detected += m.detected;
        windows += m.windows;
        false_alarms += m.false_alarms;
    }
    let p = if detected + false_alarms == 0 {
        0.0
    } else {
        detected as f64 / (detected + false_alarms) as f64
    };
    let r = detected as f64 / windows as f64;
    let f1 = if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    };
    println!("    detected {detected}/{windows}, false alarms {false_alarms}");
    (p, r, f1)
}

fn check(detector: &str, kinds: &[AnomalyKind], season: bool, min_p: f64, min_r: f64) {
    let (p, r, f1) = run(detector, kinds, season);
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    println!(
        "{detector:>12} on {:<55} P {p:.3} R {r:.3} F1 {f1:.3}",
        format!(
            "{}{}",
            names.join("+"),
            if season { " (seasonal)" } else { "" }
        )
    );
    assert!(
        p >= min_p && r >= min_r,
        "{detector} {names:?}: P {p:.3} R {r:.3}"
    );
}

use AnomalyKind::*;

// Floors: the measured figure (in the comment, P / R over 4 seeds × 10
// events) rounded down by about 0.05.

#[test]
fn spikes() {
    check("zscore", &[Spike], false, 0.95, 0.92); // 1.000 / 0.975
    check("mad", &[Spike], false, 0.95, 0.87); // 1.000 / 0.925
    check("rate", &[Spike], false, 0.95, 0.90); // 1.000 / 0.950
    check("holt_winters", &[Spike], false, 0.95, 0.90); // 1.000 / 0.950
    check("auto", &[Spike], false, 0.92, 0.87); // 0.974 / 0.925
}

#[test]
fn level_shifts_and_drifts() {
    check("cusum", &[LevelShift], false, 0.83, 0.95); // 0.889 / 1.000
    check("cusum", &[Drift], false, 0.53, 0.95); // 0.588 / 1.000
    check("auto", &[LevelShift], false, 0.65, 0.95); // 0.702 / 1.000
    check("auto", &[Drift], false, 0.48, 0.95); // 0.533 / 1.000
    check("zscore", &[LevelShift], false, 0.95, 0.32); // 1.000 / 0.375
}

#[test]
fn variance_changes() {
    check("mad", &[VarianceChange], false, 0.95, 0.80); // 1.000 / 0.850
    check("zscore", &[VarianceChange], false, 0.95, 0.70); // 1.000 / 0.750
    check("auto", &[VarianceChange], false, 0.60, 0.95); // 0.656 / 1.000
}

#[test]
fn stuck_sensors() {
    check("flatline", &[Stuck], false, 0.95, 0.95); // 1.000 / 1.000
    check("auto", &[Stuck], false, 0.66, 0.95); // 0.714 / 1.000
}

#[test]
fn seasonal_series() {
    let kinds = [Spike, LevelShift, VarianceChange];
    check("holt_winters", &kinds, true, 0.95, 0.67); // 1.000 / 0.725
    check("auto", &kinds, true, 0.58, 0.47); // 0.636 / 0.525
}

#[test]
fn mixed() {
    check("auto", &AnomalyKind::ALL, false, 0.67, 0.95); // 0.727 / 1.000
    check("zscore", &AnomalyKind::ALL, false, 0.95, 0.30); // 1.000 / 0.350
    check("mad", &AnomalyKind::ALL, false, 0.75, 0.47); // 0.808 / 0.525
    check("cusum", &AnomalyKind::ALL, false, 0.67, 0.60); // 0.722 / 0.650
    check("flatline", &AnomalyKind::ALL, false, 0.95, 0.15); // 1.000 / 0.200
    check("rate", &AnomalyKind::ALL, false, 0.87, 0.52); // 0.920 / 0.575
    check("holt_winters", &AnomalyKind::ALL, false, 0.95, 0.42); // 1.000 / 0.475
}

#[cfg(feature = "rcf")]
#[test]
fn random_cut_forest() {
    check("rcf", &[Spike], false, 0.95, 0.77); // 1.000 / 0.825
    check("rcf", &AnomalyKind::ALL, false, 0.95, 0.37); // 1.000 / 0.425
}
