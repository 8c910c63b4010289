//! What one series' Random Cut Forest costs, by tree count and sample
//! size: resident memory (measured over 100 series) and checkpoint bytes
//! (the figures in `RcfConfig`'s docs).
//!
//! `cargo test -p iotflow-anomaly --features rcf --test rcf_memory -- --nocapture`

#![cfg(feature = "rcf")]

use iotflow_anomaly::{RcfConfig, Statistic};

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// (resident bytes, checkpoint bytes) per series after `points` readings.
fn per_series(cfg: &RcfConfig, series: usize, points: u64) -> (u64, usize) {
    let before = rss();
    let states: Vec<_> = (0..series)
        .map(|s| {
            let mut st = cfg.init();
            for i in 0..points {
                let v = 20.0 + ((i * 7919 + s as u64) % 97) as f64 * 0.01;
                let _ = cfg.observe(&mut st, i * 1000, v);
            }
            st
        })
        .collect();
    let resident = rss().saturating_sub(before) / series as u64;
    let snapshot = iotflow_core::state::encode(&states[0]).map_or(0, |b| b.len());
    (resident, snapshot)
}

#[test]
fn forest_memory_grows_with_trees_times_sample_size() {
    let mut last = 0;
    for (trees, sample) in [(5, 32), (10, 64), (20, 128), (50, 256)] {
        let cfg = RcfConfig {
            trees,
            sample_size: sample,
            warmup: 16,
            ..RcfConfig::default()
        };
        let (resident, snapshot) = per_series(&cfg, 100, 2 * sample as u64 + 100);
        println!(
            "trees {trees:>3} sample {sample:>4}: ~{:>7} KiB resident, {:>7} KiB checkpoint per series",
            resident / 1024,
            snapshot / 1024
        );
        assert!(snapshot > last, "{trees} x {sample}: {snapshot} bytes");
        last = snapshot;
    }
}
