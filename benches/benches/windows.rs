//! Window kinds over 1M pre-decoded fleet-v1 readings in a 1-worker timely
//! dataflow (`Windowed::window`), fed as the event-time source would (see
//! [`iotflow_benches::run_window`]): 60 s tumbling, 60 s sliding every 1 s
//! (60 panes per window) and 30 s-gap sessions, keyed by (device, metric).
//! Throughput counts input readings; the sliding window also emits about
//! `size / slide` times as many results per key as the tumbling one, which
//! is part of its cost. A 10 s window sliding every 1 s emits as many
//! results as the 60 s one with a sixth of the panes per window: the two
//! cost the same when the per-reading cost does not grow with
//! `size / slide`.
//!
//! ```text
//! cargo bench -p iotflow-benches --bench windows
//! ```

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_benches::{BuildWindow, decoded, fleet_lines, run_window};
use iotflow_core::validate::Rules;
use iotflow_types::SeriesKey;
use iotflow_window::{WindowSpec, Windowed};

const READINGS: u64 = 1_000_000;

fn windows(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let mut g = c.benchmark_group("windows");
    g.throughput(Throughput::Elements(readings.len() as u64));
    g.sample_size(10);
    let kinds: [(&str, BuildWindow); 4] = [
        ("tumbling_60s", |s| {
            let spec = WindowSpec::tumbling(60_000);
            s.window("w", &spec, SeriesKey::of, None)
                .expect("no restore")
                .windows
        }),
        ("sliding_60s_every_1s", |s| {
            let spec = WindowSpec::sliding(60_000, 1_000);
            s.window("w", &spec, SeriesKey::of, None)
                .expect("no restore")
                .windows
        }),
        // As many results per key and slide as the 60 s window, a sixth of
        // the panes: what the window's length costs, apart from its output.
        ("sliding_10s_every_1s", |s| {
            let spec = WindowSpec::sliding(10_000, 1_000);
            s.window("w", &spec, SeriesKey::of, None)
                .expect("no restore")
                .windows
        }),
        ("session_gap_30s", |s| {
            let spec = WindowSpec::session(30_000);
            s.window("w", &spec, SeriesKey::of, None)
                .expect("no restore")
                .windows
        }),
    ];
    for (name, build) in kinds {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The clone is made outside the measured time.
                    let (windows, elapsed) = run_window(readings.clone(), build);
                    assert!(windows > 0);
                    total += elapsed;
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group!(benches, windows);
criterion_main!(benches);
