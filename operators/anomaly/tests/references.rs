//! The z-score, MAD and CUSUM statistics against naive recomputations
//! written straight from their definitions.

use iotflow_anomaly::{
    CusumConfig, Detector, DetectorConfig, MadConfig, Statistic, ZScoreConfig, replay,
};
use rand::{Rng, SeedableRng};

/// A noisy series with spikes, a level shift and a stuck stretch.
fn series(seed: u64, n: usize) -> Vec<(u64, f64)> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let mut last = 0.0;
    for i in 0..n {
        let mut v = 10.0 + (0..6).map(|_| rng.random::<f64>()).sum::<f64>() - 3.0;
        if i % 97 == 50 {
            v += 9.0;
        }
        if (600..700).contains(&i) {
            v += 4.0;
        }
        if (900..940).contains(&i) {
            v = last;
        }
        last = v;
        out.push((i as u64 * 1000, v));
    }
    out
}

#[test]
fn zscore_matches_the_fleet_formula() {
    let cfg = ZScoreConfig::default();
    let data = series(1, 2000);
    let mut st = cfg.init();
    let (mut n, mut mean, mut var) = (0u64, 0.0f64, 0.0f64);
    for (ts, v) in data {
        // fleet-v1: z against the state before v; warm after 30 readings.
        let want = if n == 0 {
            None
        } else if n >= cfg.warmup && var > 0.0 {
            Some(((v - mean) / var.sqrt()).abs())
        } else {
            None
        };
        if n == 0 {
            mean = v;
        } else {
            let d = v - mean;
            mean += cfg.alpha * d;
            var = (1.0 - cfg.alpha) * (var + cfg.alpha * d * d);
        }
        n += 1;
        assert_eq!(cfg.observe(&mut st, ts, v), want);
    }
}

#[test]
fn mad_matches_sorting_the_window() {
    for window in [5usize, 16, 64] {
        let cfg = MadConfig {
            window,
            warmup: window.min(16),
            ..MadConfig::default()
        };
        let data = series(2, 1500);
        let mut st = cfg.init();
        let mut long_sigma = 0.0f64;
        for (i, &(ts, v)) in data.iter().enumerate() {
            let past: Vec<f64> = data[i.saturating_sub(window)..i]
                .iter()
                .map(|p| p.1)
                .collect();
            let want = (past.len() >= cfg.warmup).then(|| {
                let median = |x: &mut Vec<f64>| {
                    x.sort_by(f64::total_cmp);
                    let m = x.len();
                    if m % 2 == 1 {
                        x[m / 2]
                    } else {
                        x[m / 2 - 1] + (x[m / 2] - x[m / 2 - 1]) / 2.0
                    }
                };
                let med = median(&mut past.clone());
                let mad = median(
                    &mut past
                        .iter()
                        .map(|x| if *x <= med { med - x } else { x - med })
                        .collect(),
                );
                let sigma = mad * 1.482_602_218_505_602;
                let floor = long_sigma;
                long_sigma += 0.002 * (sigma - long_sigma);
                let s = sigma.max(floor).max(1e-9 * med.abs().max(1.0));
                ((v - med).abs() / s).min(1e9)
            });
            assert_eq!(cfg.observe(&mut st, ts, v), want, "window {window} row {i}");
        }
    }
}

#[test]
fn cusum_matches_the_closed_form_until_its_first_alarm() {
    let cfg = CusumConfig::default();
    let data = series(3, 2000);
    let w = cfg.warmup as usize;
    let base: Vec<f64> = data[..w].iter().map(|p| p.1).collect();
    let mu = base.iter().sum::<f64>() / w as f64;
    let sd = (base.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (w - 1) as f64).sqrt();
    let z: Vec<f64> = data
        .iter()
        .map(|p| ((p.1 - mu) / sd).clamp(-cfg.clip, cfg.clip))
        .collect();
    let mut st = cfg.init();
    let mut alarms = 0;
    for (t, &(ts, v)) in data.iter().enumerate() {
        let got = cfg.observe(&mut st, ts, v);
        if t < w {
            assert_eq!(got, None);
            continue;
        }
        // S⁺_t = max(0, max over j of sum_{i=j..t} (z_i - k)), likewise S⁻.
        let (mut up, mut down) = (0.0f64, 0.0f64);
        let (mut acc_up, mut acc_down) = (0.0, 0.0);
        for i in (w..=t).rev() {
            acc_up += z[i] - cfg.k;
            acc_down += -z[i] - cfg.k;
            up = up.max(acc_up);
            down = down.max(acc_down);
        }
        let got = got.expect("scored after warm-up");
        assert!(
            (got - up.max(down)).abs() < 1e-9,
            "row {t}: {got} vs {}",
            up.max(down)
        );
        if got >= cfg.h {
            alarms += 1;
            break;
        }
    }
    // The level shift at 600 is found.
    assert_eq!(alarms, 1);
}

#[test]
fn replay_scores_are_causal_and_in_range() {
    let data = series(4, 1500);
    for (name, _) in iotflow_anomaly::DETECTORS {
        let det = DetectorConfig::named(name)
            .and_then(|c| c.build())
            .expect("detector");
        let full = replay(&det, data.iter().copied());
        // Scoring a prefix gives the same scores: nothing looks ahead.
        let prefix = replay(&det, data[..700].iter().copied());
        assert_eq!(&full[..700], &prefix[..], "{name}");
        for s in &full {
            assert!((0.0..=1.0).contains(&s.score), "{name}: {s:?}");
        }
        assert!(full.iter().any(|s| s.flag), "{name} flags nothing");
        let mut st = det.init();
        let _ = det.update(&mut st, 0, 1.0);
    }
}
