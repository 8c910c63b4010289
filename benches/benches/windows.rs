//! Window kinds over 1M pre-decoded fleet-v1 readings in a 1-worker timely
//! dataflow (`Windowed::window`): 60 s tumbling, 60 s sliding every 1 s
//! (60 panes per window) and 30 s-gap sessions, keyed by (device, metric).
//!
//! Readings enter through an `InputHandle` in batches of 10,000 whose timely
//! time follows the fleet-v1 watermark (max ts − 2000 ms + 1), as the
//! event-time source does. Throughput counts input readings; the sliding
//! window also emits about `size / slide` times as many results per key as
//! the tumbling one, which is part of its cost.
//!
//! ```text
//! cargo bench -p iotflow-benches --bench windows
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_benches::{decoded, fleet_lines};
use iotflow_core::validate::Rules;
use iotflow_types::{Reading, SeriesKey};
use iotflow_window::{WindowSpec, Windowed};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

const READINGS: u64 = 1_000_000;
const BATCH: usize = 10_000;
const DISORDER_MS: u64 = 2_000;

/// Runs `spec` over `readings` once; returns (windows emitted, elapsed).
fn run_once(readings: Vec<Reading>, spec: WindowSpec) -> (u64, Duration) {
    timely::execute_directly(move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        let windows = Rc::new(Cell::new(0u64));
        let seen = windows.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .window("w", &spec, SeriesKey::of, None)
                .expect("no restore")
                .windows
                .inspect(move |_| seen.set(seen.get() + 1))
                .probe_with(&probe);
        });
        let started = Instant::now();
        let mut max_ts = 0u64;
        let mut readings = readings.into_iter();
        loop {
            let mut sent = 0;
            for r in readings.by_ref().take(BATCH) {
                max_ts = max_ts.max(r.ts);
                input.send(r);
                sent += 1;
            }
            if sent == 0 {
                break;
            }
            let frontier = max_ts.saturating_sub(DISORDER_MS) + 1;
            if frontier > *input.time() {
                input.advance_to(frontier);
            }
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
        drop(input);
        while worker.step() {}
        (windows.get(), started.elapsed())
    })
}

fn windows(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let mut g = c.benchmark_group("windows");
    g.throughput(Throughput::Elements(readings.len() as u64));
    g.sample_size(10);
    for (name, spec) in [
        ("tumbling_60s", WindowSpec::tumbling(60_000)),
        ("sliding_60s_every_1s", WindowSpec::sliding(60_000, 1_000)),
        ("session_gap_30s", WindowSpec::session(30_000)),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The clone is made outside the measured time.
                    let (windows, elapsed) = run_once(readings.clone(), spec.clone());
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
