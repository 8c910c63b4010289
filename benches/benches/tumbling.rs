//! The keyed 10 s tumbling window (`Tumbling::tumbling`) over 1M pre-decoded
//! fleet-v1 readings in a 1-worker timely dataflow, fed as the event-time
//! source would (see [`iotflow_benches::run_window`]). Decoding and
//! validation are not measured.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_benches::{decoded, fleet_lines, run_window};
use iotflow_core::validate::Rules;
use iotflow_window::Tumbling;

const READINGS: u64 = 1_000_000;

fn tumbling(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let mut g = c.benchmark_group("tumbling");
    g.throughput(Throughput::Elements(readings.len() as u64));
    g.sample_size(10);
    g.bench_function("tumbling_10s_1_worker_1M", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // The clone is made outside the measured time.
                let (windows, elapsed) = run_window(readings.clone(), |s| {
                    s.tumbling("tumbling", Duration::from_secs(10)).windows
                });
                assert!(windows > 0);
                total += elapsed;
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, tumbling);
criterion_main!(benches);
