//! Every anomaly detector as a timely operator over pre-decoded, validated
//! fleet-v1 readings in a 1-worker dataflow, keyed by (device, metric), fed
//! as the event-time source would (batches of 10,000 stamped at the
//! running watermark, max ts − 2000 ms + 1). Throughput counts input
//! readings, through `iotflow_benches::run_dataflow`. `zscore_fleet` is
//! the fleet pipeline's EWMA operator (`Score::score`, alerts only); the
//! others run `.detect`, emitting alerts only (`Emit::Alerts`, the
//! default) or, for `*_scores`, every reading's score too
//! (`Emit::Scores`). RCF is not run here: one forest per (device, metric)
//! (50 trees × 256 points, megabytes each) over fleet-v1's 40,000 series
//! exhausts memory before it measures anything; its cost per reading is
//! stated in the anomaly crate's docs.
//!
//! ```text
//! cargo bench -p iotflow-benches --bench detectors
//! ```

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_anomaly::{Detect, DetectorConfig, Emit, Ewma, Score};
use iotflow_benches::{decoded, fleet_lines, run_dataflow};
use iotflow_core::validate::Rules;
use iotflow_types::{Reading, SeriesKey};

const READINGS: u64 = 1_000_000;

/// What one bench runs.
#[derive(Clone, Copy)]
enum Kind {
    /// The fleet pipeline's EWMA operator (`Score::score`).
    Fleet,
    /// `.detect` with a named detector and what it emits.
    Detect(&'static str, Emit),
}

/// Runs one detector over `readings`; returns (records out, elapsed).
fn run(readings: Vec<Reading>, kind: Kind) -> (u64, Duration) {
    match kind {
        Kind::Fleet => run_dataflow(readings, |stream| {
            stream.score("zscore", Ewma::new(0.01)).alerts
        }),
        Kind::Detect(name, Emit::Alerts) => run_dataflow(readings, move |stream| {
            stream
                .detect(name, detector(name), SeriesKey::of, Emit::Alerts, None)
                .expect("no restore")
                .alerts
        }),
        Kind::Detect(name, Emit::Scores) => run_dataflow(readings, move |stream| {
            stream
                .detect(name, detector(name), SeriesKey::of, Emit::Scores, None)
                .expect("no restore")
                .scores
                .expect("scores asked for")
        }),
    }
}

fn detector(name: &str) -> iotflow_anomaly::AnyDetector {
    DetectorConfig::named(name)
        .and_then(|c| c.build())
        .expect("detector")
}

fn detectors(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let mut g = c.benchmark_group("detectors");
    g.sample_size(10);
    let kinds = [
        ("zscore_fleet", Kind::Fleet),
        ("zscore", Kind::Detect("zscore", Emit::Alerts)),
        ("zscore_scores", Kind::Detect("zscore", Emit::Scores)),
        ("mad", Kind::Detect("mad", Emit::Alerts)),
        ("cusum", Kind::Detect("cusum", Emit::Alerts)),
        ("holt_winters", Kind::Detect("holt_winters", Emit::Alerts)),
        ("flatline", Kind::Detect("flatline", Emit::Alerts)),
        ("rate", Kind::Detect("rate", Emit::Alerts)),
        ("auto", Kind::Detect("auto", Emit::Alerts)),
        ("auto_scores", Kind::Detect("auto", Emit::Scores)),
    ];
    g.throughput(Throughput::Elements(readings.len() as u64));
    for (label, kind) in kinds {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The clone is made outside the measured time.
                    let (_, elapsed) = run(readings.clone(), kind);
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
