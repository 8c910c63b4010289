//! The EWMA z-score against the naive oracle: event-time order per series
//! makes the alerts independent of the number of workers.

use std::time::Duration;

use iotflow_anomaly::Ewma;
use iotflow_core::event_time::EventTimeConfig;
use iotflow_testing::compare::alerts_match;
use iotflow_testing::harness::{EwmaUnderTest, Harness, deal};
use iotflow_testing::input::{self, RandomInput};
use iotflow_testing::oracle::{EwmaParams, naive_ewma};

/// Disorder strictly below the source's max disorder: nothing is late, and
/// the operator's event-time order is exact.
fn spec(seed: u64) -> RandomInput {
    RandomInput {
        lines: 3_000,
        devices: 3,
        metrics: 2,
        step_ms: 20,
        disorder_ms: 999,
        straggler_p: 0.0,
        spike_p: 0.01,
        ..RandomInput::new(seed)
    }
}

fn check(spec: &RandomInput, p: EwmaParams, workers: usize) -> usize {
    let lines = spec.generate();
    let et = EventTimeConfig::default().with_max_disorder(Duration::from_millis(1_000));
    let detector = Ewma::new(p.alpha).threshold(p.threshold).warmup(p.warmup);
    let got = Harness::new(et).run(
        deal(&input::texts(&lines), workers),
        EwmaUnderTest(detector),
    );
    let case = format!("seed {} workers {workers} {p:?}", spec.seed);
    assert_eq!(got.late_count(), 0, "{case}: input must be on time");
    let want = naive_ewma(&input::readings(&lines), p);
    alerts_match(&got.alerts, &want, 1e-12).unwrap_or_else(|e| panic!("{case}:\n{e}"));
    assert_eq!(got.tally.alerts, want.len() as u64, "{case}: tally.alerts");
    want.len()
}

#[test]
fn matches_oracle_with_one_and_two_workers() {
    let mut alerts = 0;
    for seed in [1, 2, 3, 4] {
        for workers in [1, 2] {
            alerts += check(&spec(seed), EwmaParams::fleet_v1(), workers);
        }
    }
    assert!(alerts > 0, "the inputs must contain spikes that alert");
}

#[test]
fn matches_oracle_with_short_warmup_and_low_threshold() {
    let p = EwmaParams {
        alpha: 0.1,
        threshold: 2.5,
        warmup: 3,
    };
    for workers in [1, 3] {
        assert!(check(&spec(9), p, workers) > 0);
    }
}

#[test]
fn equal_timestamps_are_scored_in_value_order() {
    // Steps of 0–1 ms give many equal timestamps per series.
    let s = RandomInput {
        step_ms: 1,
        disorder_ms: 50,
        devices: 1,
        metrics: 1,
        ..spec(17)
    };
    let p = EwmaParams {
        alpha: 0.2,
        threshold: 2.0,
        warmup: 5,
    };
    for workers in [1, 2] {
        check(&s, p, workers);
    }
}
