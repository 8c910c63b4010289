//! Tumbling windows against the naive oracle on seeded out-of-order input.

use std::collections::BTreeMap;
use std::time::Duration;

use iotflow_core::event_time::EventTimeConfig;
use iotflow_testing::compare::windows_match;
use iotflow_testing::harness::{Harness, WindowUnderTest, deal};
use iotflow_testing::input::{self, RandomInput};
use iotflow_testing::oracle::naive_tumbling;
use iotflow_types::{SeriesKey, WindowResult};
use iotflow_window::TumblingConfig;

/// Runs one case with `workers` workers and compares everything with the oracle.
fn check(spec: &RandomInput, disorder_ms: u64, size_ms: u64, allowed_ms: u64, workers: usize) {
    let lines = spec.generate();
    let per_worker = deal(&lines, workers);
    let window = TumblingConfig::new(Duration::from_millis(size_ms))
        .with_allowed_lateness(Duration::from_millis(allowed_ms));
    let et = EventTimeConfig::default()
        .with_max_disorder(Duration::from_millis(disorder_ms))
        .with_lateness(window.lateness());
    let got = Harness::new(et).run(
        per_worker.iter().map(|l| input::texts(l)).collect(),
        WindowUnderTest(window),
    );
    let want = naive_tumbling(
        &per_worker
            .iter()
            .map(|l| input::readings(l))
            .collect::<Vec<_>>(),
        disorder_ms,
        size_ms,
        allowed_ms,
    );
    let case = format!(
        "seed {} disorder {disorder_ms} size {size_ms} allowed {allowed_ms} workers {workers}",
        spec.seed
    );
    let valid = input::readings(&lines).len() as u64;
    let t = &got.tally;
    assert_eq!(t.lines, lines.len() as u64, "{case}: lines");
    assert_eq!(t.valid, valid, "{case}: valid");
    assert_eq!(
        t.rejected_total(),
        (lines.len() as u64) - valid,
        "{case}: rejected"
    );
    assert_eq!(got.late_count() as u64, want.late, "{case}: late readings");
    assert_eq!(t.late, want.late, "{case}: tally.late");
    assert_eq!(t.windowed, want.windowed, "{case}: windowed");
    assert_eq!(
        t.windows + t.window_updates,
        got.windows.len() as u64,
        "{case}: tally.windows + window_updates"
    );
    if allowed_ms == 0 {
        assert_eq!(
            t.window_updates, 0,
            "{case}: updates without allowed lateness"
        );
    }
    t.check_conservation(true)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    // A window's last result (the final one, or its latest update: updates
    // only add readings) is the oracle's window.
    let mut latest: BTreeMap<(SeriesKey, u64), WindowResult> = BTreeMap::new();
    for w in &got.windows {
        let slot = latest
            .entry((w.key.clone(), w.start))
            .or_insert_with(|| w.clone());
        if w.stats.count > slot.stats.count {
            *slot = w.clone();
        }
    }
    let latest: Vec<WindowResult> = latest.into_values().collect();
    assert_eq!(latest.len(), want.windows.len(), "{case}: windows");
    windows_match(&latest, &want.windows, 1e-9).unwrap_or_else(|e| panic!("{case}:\n{e}"));
    // The source decides lateness by the window's own rule, so the window
    // operator must never see a reading of a window it already fired.
    assert!(
        got.operator_late.is_empty(),
        "{case}: window operator found {} late",
        got.operator_late.len()
    );
}

#[test]
fn matches_oracle_with_one_and_two_workers() {
    for seed in [1, 2, 3] {
        let spec = RandomInput::new(seed);
        for (size, allowed) in [(1_000, 0), (10_000, 0), (2_500, 1_200)] {
            for workers in [1, 2] {
                check(&spec, 2_000, size, allowed, workers);
            }
        }
    }
}

#[test]
fn matches_oracle_with_three_workers_and_tiny_windows() {
    let spec = RandomInput {
        devices: 3,
        metrics: 4,
        step_ms: 3,
        disorder_ms: 40,
        straggle_ms: 2_000,
        ..RandomInput::new(11)
    };
    for (size, allowed) in [(1, 0), (7, 0), (50, 25)] {
        check(&spec, 30, size, allowed, 3);
    }
}

#[test]
fn equal_timestamps_and_zero_disorder() {
    // Many readings per millisecond; zero disorder makes every step back late.
    let spec = RandomInput {
        step_ms: 1,
        disorder_ms: 3,
        straggler_p: 0.05,
        straggle_ms: 500,
        ..RandomInput::new(21)
    };
    for workers in [1, 2] {
        check(&spec, 0, 100, 0, workers);
        check(&spec, 2, 10, 5, workers);
    }
}

#[test]
fn in_order_input_has_no_late_readings() {
    let spec = RandomInput {
        disorder_ms: 0,
        straggler_p: 0.0,
        ..RandomInput::new(5)
    };
    let lines = spec.generate();
    let window = TumblingConfig::new(Duration::from_secs(1));
    let et = EventTimeConfig::default().with_lateness(window.lateness());
    let got = Harness::new(et).run(vec![input::texts(&lines)], WindowUnderTest(window));
    assert_eq!(got.late_count(), 0);
    assert_eq!(got.tally.windowed, input::readings(&lines).len() as u64);
}
