//! Every anomaly detector as a timely operator over pre-decoded, validated
//! fleet-v1 readings in a 1-worker dataflow, keyed by (device, metric), fed
//! as the event-time source would (batches of 10,000 stamped at the
//! running watermark, max ts − 2000 ms + 1). Throughput counts input
//! readings. `zscore_fleet` is the fleet pipeline's EWMA operator
//! (`Score::score`, alerts only); the others run `.detect` and emit every
//! reading's score. RCF is not run here: one forest per (device, metric)
//! (50 trees × 256 points, megabytes each) over fleet-v1's 40,000 series
//! exhausts memory before it measures anything; its cost per reading is
//! stated in the anomaly crate's docs.
//!
//! ```text
//! cargo bench -p iotflow-benches --bench detectors
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_anomaly::{Detect, DetectorConfig, Ewma, Score};
use iotflow_benches::{decoded, fleet_lines};
use iotflow_core::validate::Rules;
use iotflow_types::{Reading, SeriesKey};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

const READINGS: u64 = 1_000_000;

/// Runs one detector over `readings`; returns (records out, elapsed).
fn run(readings: Vec<Reading>, detector: Option<&'static str>) -> (u64, Duration) {
    const BATCH: usize = 10_000;
    const DISORDER_MS: u64 = 2_000;
    timely::execute_directly(move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        let count = Rc::new(Cell::new(0u64));
        let seen = count.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let stream = scope.input_from(&mut input);
            match detector {
                None => {
                    stream
                        .score("zscore", Ewma::new(0.01))
                        .alerts
                        .inspect(move |_| seen.set(seen.get() + 1))
                        .probe_with(&probe);
                }
                Some(name) => {
                    let det = DetectorConfig::named(name)
                        .and_then(|c| c.build())
                        .expect("detector");
                    stream
                        .detect(name, det, SeriesKey::of, None)
                        .expect("no restore")
                        .scores
                        .inspect(move |_| seen.set(seen.get() + 1))
                        .probe_with(&probe);
                }
            }
        });
        let started = std::time::Instant::now();
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
        (count.get(), started.elapsed())
    })
}

fn detectors(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let mut g = c.benchmark_group("detectors");
    g.sample_size(10);
    let kinds: [(&str, Option<&'static str>, usize); 8] = [
        ("zscore_fleet", None, readings.len()),
        ("zscore", Some("zscore"), readings.len()),
        ("mad", Some("mad"), readings.len()),
        ("cusum", Some("cusum"), readings.len()),
        ("holt_winters", Some("holt_winters"), readings.len()),
        ("flatline", Some("flatline"), readings.len()),
        ("rate", Some("rate"), readings.len()),
        ("auto", Some("auto"), readings.len()),
    ];
    for (label, detector, n) in kinds {
        let input = &readings[..n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The clone is made outside the measured time.
                    let (_, elapsed) = run(input.to_vec(), detector);
                    total += elapsed;
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
