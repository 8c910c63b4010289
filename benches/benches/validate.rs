//! `Rules::check` (fleet-v1 ranges) over decoded fleet-v1 readings.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_benches::{decoded, fleet_lines};
use iotflow_core::validate::Rules;

fn validate(c: &mut Criterion) {
    // Decoded but not yet validated: out-of-range and unknown-metric lines
    // are still in, as they are when the source checks them.
    let readings = decoded(&fleet_lines(100_000, 42));
    let rules = Rules::fleet_default();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(readings.len() as u64));
    g.sample_size(20);
    g.bench_function("rules_fleet_default_check", |b| {
        b.iter(|| {
            readings
                .iter()
                .filter(|r| black_box(rules.check(r)).is_ok())
                .count()
        });
    });
    g.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
