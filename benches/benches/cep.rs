//! CEP on fleet-v1 readings: a 3-stage pattern with `within`, keyed by
//! device (10,000 keys), in a 1-worker timely dataflow fed as the
//! event-time source would (`iotflow_benches::run_dataflow`: batches of
//! 10,000, input time at the watermark, max ts − 2 s + 1).
//!
//! The pattern, per device: a temperature, then a higher temperature
//! (iterative condition on the first), then a vibration reading above 0.5 g,
//! all within 30 s. Each device sees one reading per second, so every key
//! holds a few partial matches at any time and many of them time out.
//! Throughput counts input readings. Before measuring, the bench prints the
//! state held per key (an estimate of heap bytes, and the checkpoint bytes)
//! with all readings buffered and matched up to the last watermark.
//!
//! ```text
//! cargo bench -p iotflow-benches --bench cep
//! ```

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotflow_benches::{decoded, fleet_lines, run_dataflow};
use iotflow_cep::{Cep, CepState, Pattern};
use iotflow_core::validate::Rules;
use iotflow_types::{DeviceId, Reading};

const READINGS: u64 = 1_000_000;
const BATCH: usize = 10_000;
const DISORDER_MS: u64 = 2_000;

fn pattern() -> Pattern<Reading> {
    Pattern::begin("warm")
        .filter(|r: &Reading| r.metric.as_str() == "temp")
        .followed_by("warmer")
        .filter_with(|r: &Reading, p| {
            r.metric.as_str() == "temp" && p.last("warm").is_some_and(|w| r.value > w.value)
        })
        .followed_by("shake")
        .filter(|r| r.metric.as_str() == "vibration" && r.value > 0.5)
        .within_ms(30_000)
        .build()
        .expect("valid pattern")
}

/// One run over `readings`: (matches, elapsed).
fn run(readings: Vec<Reading>) -> (u64, Duration) {
    run_dataflow(readings, |stream| {
        stream
            .match_pattern(
                "cep",
                &pattern(),
                |r: &Reading| r.device.clone(),
                |_: &DeviceId, m| m.end,
                None,
            )
            .expect("no restore")
            .matches
    })
}

/// State per key with every reading pushed and matched up to the last
/// watermark: (keys, approx heap bytes per key, checkpoint bytes per key,
/// partial matches per key).
fn state_per_key(readings: &[Reading]) -> (usize, f64, f64, f64) {
    let p = pattern();
    let mut st: CepState<DeviceId, Reading> = CepState::default();
    let mut max_ts = 0u64;
    let mut batch_time = 0u64;
    for chunk in readings.chunks(BATCH) {
        st.advance(&p, Some(batch_time), &mut |_, _, _| {});
        for r in chunk {
            max_ts = max_ts.max(r.ts);
            let _ = st.push(&p, r.device.clone(), r.clone(), batch_time);
        }
        batch_time = batch_time.max(max_ts.saturating_sub(DISORDER_MS));
    }
    st.advance(&p, Some(batch_time), &mut |_, _, _| {});
    let keys = st.keys().max(1);
    let snapshot = iotflow_core::state::encode(&st).map_or(0, |b| b.len());
    (
        keys,
        st.approx_bytes() as f64 / keys as f64,
        snapshot as f64 / keys as f64,
        st.partial_matches() as f64 / keys as f64,
    )
}

fn cep(c: &mut Criterion) {
    let rules = Rules::fleet_default();
    let mut readings = decoded(&fleet_lines(READINGS, 42));
    readings.retain(|r| rules.check(r).is_ok());
    let (keys, heap, snap, partials) = state_per_key(&readings);
    let (matches, _) = run(readings.clone());
    println!(
        "cep state: {keys} keys, ~{heap:.0} heap bytes/key, {snap:.0} checkpoint bytes/key, \
         {partials:.1} partial matches/key; {matches} matches over {} readings",
        readings.len()
    );
    let mut g = c.benchmark_group("cep");
    g.throughput(Throughput::Elements(readings.len() as u64));
    g.sample_size(10);
    g.bench_function("3_stage_within_30s_10k_devices", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // The clone is made outside the measured time.
                let (m, elapsed) = run(readings.clone());
                assert_eq!(m, matches);
                total += elapsed;
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, cep);
criterion_main!(benches);
