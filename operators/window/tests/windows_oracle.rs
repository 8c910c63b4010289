//! Sliding, tumbling and session windows against naive recomputations, on
//! seeded random disordered input delivered in batches at advancing timely
//! times (as an event-time source sends them), with 1 and 2 workers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use iotflow_types::{ExactSum, Reading, WindowResult};
use iotflow_window::{WindowSpec, Windowed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

type Row = (String, u64, u64, u64, u64, u64, u64); // key, start, end, count, min, max, sum bits

fn row(key: &str, start: u64, end: u64, values: &[f64]) -> Row {
    let mut sum = ExactSum::default();
    values.iter().for_each(|v| sum.add(*v));
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (
        key.to_owned(),
        start,
        end,
        values.len() as u64,
        min.to_bits(),
        max.to_bits(),
        sum.value().to_bits(),
    )
}

/// Batches `(timely time, readings)` in time order: readings of a few
/// devices with bounded disorder, each batch sent at the watermark + 1 of
/// what came before it (like an event-time source).
fn input(seed: u64, n: usize, disorder: u64) -> Vec<(u64, Vec<Reading>)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut batches = Vec::new();
    let mut max_ts = 0u64;
    let mut i = 0;
    while i < n {
        let t = max_ts.saturating_sub(disorder);
        let size = rng.random_range(1..=12).min(n - i);
        let mut batch = Vec::with_capacity(size);
        for _ in 0..size {
            let base = 5_000 + i as u64 * 370;
            let ts = base.saturating_sub(rng.random_range(0..=disorder * 2));
            let device = format!("d-{}", rng.random_range(0..5));
            let value = (rng.random_range(0..10_000) as f64) / 100.0 - 20.0;
            batch.push(Reading::new(&device, ts, "temp", value));
            i += 1;
        }
        // The batch's time is fixed before its readings move the watermark.
        for r in &batch {
            max_ts = max_ts.max(r.ts);
        }
        batches.push((t, batch));
    }
    batches
}

/// Runs the window operator on `workers` workers; returns sorted result rows
/// and late readings' (device, ts).
fn run(
    workers: usize,
    batches: &[(u64, Vec<Reading>)],
    spec: &WindowSpec,
) -> (Vec<Row>, Vec<(String, u64)>) {
    let rows = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(Mutex::new(Vec::new()));
    let (rows2, late2, batches, spec) =
        (rows.clone(), late.clone(), batches.to_vec(), spec.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let out = scope
                .input_from(&mut input)
                .window("w", &spec, |r: &Reading| r.device.to_string(), None)
                .expect("no restore");
            let rows = rows2.clone();
            let late = late2.clone();
            out.late.inspect(move |r: &Reading| {
                late.lock()
                    .expect("lock")
                    .push((r.device.to_string(), r.ts));
            });
            out.windows
                .inspect(move |w: &WindowResult<String>| {
                    rows.lock().expect("lock").push((
                        w.key.clone(),
                        w.start,
                        w.end,
                        w.stats.count,
                        w.stats.min.to_bits(),
                        w.stats.max.to_bits(),
                        w.stats.sum().to_bits(),
                    ));
                })
                .probe_with(&probe);
        });
        if worker.index() == 0 {
            for (t, batch) in &batches {
                input.advance_to(*t);
                for r in batch {
                    input.send(r.clone());
                }
                // Let the frontier move in irregular steps.
                if t % 3 == 0 {
                    worker.step_while(|| probe.less_than(input.time()));
                }
            }
        }
        drop(input);
        while worker.step() {}
    })
    .expect("timely");
    let mut rows = rows.lock().expect("lock").clone();
    rows.sort();
    let mut late = late.lock().expect("lock").clone();
    late.sort();
    (rows, late)
}

/// Naive sliding/tumbling windows: a reading is late iff the earliest
/// window holding it closed before its batch time; every other reading is
/// in all its windows.
fn naive_sliding(
    batches: &[(u64, Vec<Reading>)],
    size: u64,
    slide: u64,
    allowed: u64,
) -> (Vec<Row>, Vec<(String, u64)>) {
    let mut windows: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
    let mut late = Vec::new();
    for (t, batch) in batches {
        for r in batch {
            let pane = r.ts - r.ts % slide;
            if (pane + slide).max(size) - 1 + allowed < *t {
                late.push((r.device.to_string(), r.ts));
                continue;
            }
            // Windows [k·slide, k·slide + size) holding ts.
            let mut start = (r.ts + 1).saturating_sub(size).div_ceil(slide) * slide;
            while start <= r.ts {
                windows
                    .entry((r.device.to_string(), start))
                    .or_default()
                    .push(r.value);
                start += slide;
            }
        }
    }
    let mut rows: Vec<Row> = windows
        .into_iter()
        .map(|((k, s), v)| row(&k, s, s + size, &v))
        .collect();
    rows.sort();
    late.sort();
    (rows, late)
}

/// Naive sessions: per batch, sessions that ended before its time close;
/// then each reading either is late or joins (and merges) the open sessions
/// it touches.
fn naive_sessions(
    batches: &[(u64, Vec<Reading>)],
    gap: u64,
    allowed: u64,
) -> (Vec<Row>, Vec<(String, u64)>) {
    let mut open: Vec<(String, u64, u64, Vec<f64>)> = Vec::new();
    let mut closed = Vec::new();
    let mut late = Vec::new();
    for (t, batch) in batches {
        let (done, still): (Vec<_>, Vec<_>) = open
            .into_iter()
            .partition(|(_, _, end, _)| end - 1 + allowed < *t);
        closed.extend(done);
        open = still;
        for r in batch {
            let key = r.device.to_string();
            if r.ts + gap - 1 + allowed < *t {
                late.push((key, r.ts));
                continue;
            }
            let (mut s, mut e, mut v) = (r.ts, r.ts + gap, vec![r.value]);
            let (touching, rest): (Vec<_>, Vec<_>) = open
                .into_iter()
                .partition(|(k, os, oe, _)| *k == key && *os <= e && *oe >= s);
            open = rest;
            for (_, os, oe, ov) in touching {
                s = s.min(os);
                e = e.max(oe);
                v.extend(ov);
            }
            open.push((key, s, e, v));
        }
    }
    closed.extend(open);
    let mut rows: Vec<Row> = closed
        .iter()
        .map(|(k, s, e, v)| row(k, *s, *e, v))
        .collect();
    rows.sort();
    late.sort();
    (rows, late)
}

fn check(
    spec: &WindowSpec,
    naive: impl Fn(&[(u64, Vec<Reading>)]) -> (Vec<Row>, Vec<(String, u64)>),
) {
    for seed in 0..6 {
        let batches = input(seed, 600, 1_500);
        let (want, want_late) = naive(&batches);
        assert!(!want.is_empty());
        for workers in [1, 2] {
            let (got, got_late) = run(workers, &batches, spec);
            let case = format!("{spec:?}, seed {seed}, {workers} workers");
            assert_eq!(got_late, want_late, "{case}: late readings");
            if got != want {
                let first = got.iter().zip(&want).position(|(a, b)| a != b);
                panic!(
                    "{case}: {} windows vs {} expected; first difference at {first:?}: {:?} vs {:?}",
                    got.len(),
                    want.len(),
                    first.and_then(|i| got.get(i)),
                    first.and_then(|i| want.get(i))
                );
            }
        }
    }
}

#[test]
fn tumbling_matches_naive() {
    check(&WindowSpec::tumbling(2_000), |b| {
        naive_sliding(b, 2_000, 2_000, 0)
    });
    let spec = WindowSpec::Tumbling {
        size_ms: 3_000,
        allowed_lateness_ms: 700,
    };
    check(&spec, |b| naive_sliding(b, 3_000, 3_000, 700));
}

#[test]
fn sliding_matches_naive() {
    check(&WindowSpec::sliding(6_000, 1_000), |b| {
        naive_sliding(b, 6_000, 1_000, 0)
    });
    let spec = WindowSpec::Sliding {
        size_ms: 4_000,
        slide_ms: 2_000,
        allowed_lateness_ms: 500,
    };
    check(&spec, |b| naive_sliding(b, 4_000, 2_000, 500));
}

#[test]
fn sessions_match_naive() {
    check(&WindowSpec::session(800), |b| naive_sessions(b, 800, 0));
    let spec = WindowSpec::Session {
        gap_ms: 2_500,
        allowed_lateness_ms: 300,
    };
    check(&spec, |b| naive_sessions(b, 2_500, 300));
}

#[test]
fn specs_validate_and_parse_from_toml() {
    assert!(WindowSpec::sliding(60_000, 1_000).validate().is_ok());
    assert!(WindowSpec::sliding(60_000, 7_000).validate().is_err());
    assert!(WindowSpec::session(0).validate().is_err());
    let spec: WindowSpec =
        serde_json::from_str(r#"{"kind":"sliding","size_ms":60000,"slide_ms":1000}"#)
            .expect("parse");
    assert_eq!(spec, WindowSpec::sliding(60_000, 1_000));
    assert!(serde_json::from_str::<WindowSpec>(r#"{"kind":"session","gap":5}"#).is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Runs on one worker and returns results in emission order and the
    /// number of late readings.
    fn emitted(
        batches: &[(u64, Vec<Reading>)],
        spec: &WindowSpec,
    ) -> (Vec<WindowResult<String>>, usize) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let late = Arc::new(Mutex::new(0usize));
        let (out2, late2, batches, spec) =
            (out.clone(), late.clone(), batches.to_vec(), spec.clone());
        timely::execute_directly(move |worker| {
            let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
            worker.dataflow::<u64, _, _>(|scope| {
                let s = scope
                    .input_from(&mut input)
                    .window("w", &spec, |r: &Reading| r.device.to_string(), None)
                    .expect("no restore");
                let late = late2.clone();
                s.late.inspect(move |_| *late.lock().expect("lock") += 1);
                let out = out2.clone();
                s.windows.inspect(move |w: &WindowResult<String>| {
                    out.lock().expect("lock").push(w.clone())
                });
            });
            for (t, batch) in &batches {
                input.advance_to(*t);
                for r in batch {
                    input.send(r.clone());
                }
                worker.step();
            }
        });
        let out = out.lock().expect("lock").clone();
        let late = *late.lock().expect("lock");
        (out, late)
    }

    fn spec() -> impl Strategy<Value = WindowSpec> {
        prop_oneof![
            (1u64..8).prop_map(|k| WindowSpec::tumbling(k * 500)),
            (1u64..5, 1u64..5).prop_map(|(s, k)| WindowSpec::sliding(s * k * 400, s * 400)),
            (1u64..6).prop_map(|g| WindowSpec::session(g * 300)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every reading is in its windows or late (sliding windows hold a
        /// reading in `size / slide` windows), and each key's results come
        /// out in order of window start.
        #[test]
        fn counts_conserved_and_per_key_order(seed in 0u64..10_000, n in 1usize..300, disorder in 0u64..3_000, spec in spec()) {
            let batches = input(seed, n, disorder);
            let (out, late) = emitted(&batches, &spec);
            let per_reading = match spec {
                WindowSpec::Sliding { size_ms, slide_ms, .. } => size_ms / slide_ms,
                _ => 1,
            };
            let counted: u64 = out.iter().map(|w| w.stats.count).sum();
            if let WindowSpec::Sliding { .. } = spec {
                // Readings in the first windows of time sit in fewer windows.
                prop_assert!(counted <= (n - late) as u64 * per_reading);
                prop_assert!(counted >= (n - late) as u64);
            } else {
                prop_assert_eq!(counted + late as u64, n as u64);
            }
            let mut last: BTreeMap<String, u64> = BTreeMap::new();
            for w in &out {
                if let Some(prev) = last.insert(w.key.clone(), w.start) {
                    prop_assert!(prev < w.start, "{}: window at {} after {}", w.key, w.start, prev);
                }
            }
        }
    }
}
