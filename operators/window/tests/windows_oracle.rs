//! Sliding, tumbling and session windows against naive recomputations, on
//! seeded random disordered input delivered in batches at advancing timely
//! times (as an event-time source sends them), with 1 and 2 workers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use iotflow_types::{ExactSum, LateReading, Reading, ResultKind, SmallStr, WindowResult};
use iotflow_window::AggregatesConfig;
use iotflow_window::{Aggregate, StatsAggregate, WindowOptions, WindowSpec, Windowed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// key, start, end, kind (0 final, 1 update), count, min, max, sum bits.
type Row = (String, u64, u64, u8, u64, u64, u64, u64);
/// A window as a naive model emits it: key, start, end, kind and its
/// readings' (ts, value).
type Naive = (String, u64, u64, ResultKind, Vec<(u64, f64)>);
/// A late reading: device, ts, and the window it missed.
type Late = (String, u64, u64, u64);

fn rows(naive: &[Naive]) -> Vec<Row> {
    let mut rows: Vec<Row> = naive
        .iter()
        .map(|(k, s, e, kind, v)| row(k, *s, *e, *kind, &v.iter().map(|x| x.1).collect::<Vec<_>>()))
        .collect();
    rows.sort();
    rows
}

fn row(key: &str, start: u64, end: u64, kind: ResultKind, values: &[f64]) -> Row {
    let mut sum = ExactSum::default();
    values.iter().for_each(|v| sum.add(*v));
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (
        key.to_owned(),
        start,
        end,
        kind as u8,
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
) -> (Vec<Row>, Vec<Late>) {
    let (out, late) = run_with(workers, batches, spec, StatsAggregate);
    let mut rows: Vec<Row> = out
        .iter()
        .map(|w| {
            (
                w.key.clone(),
                w.start,
                w.end,
                w.kind as u8,
                w.stats.count,
                w.stats.min.to_bits(),
                w.stats.max.to_bits(),
                w.stats.sum().to_bits(),
            )
        })
        .collect();
    rows.sort();
    (rows, late)
}

/// Runs the window operator computing `agg` on `workers` workers; returns
/// the results (in no particular order) and the sorted late readings.
fn run_with<A: Aggregate + Sync>(
    workers: usize,
    batches: &[(u64, Vec<Reading>)],
    spec: &WindowSpec,
    agg: A,
) -> (Vec<WindowResult<String, A::Output>>, Vec<Late>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(Mutex::new(Vec::new()));
    let (out2, late2, batches, spec) = (out.clone(), late.clone(), batches.to_vec(), spec.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let options = WindowOptions::default();
            let key = |r: &Reading| r.device.to_string();
            let streams = scope
                .input_from(&mut input)
                .window_with("w", &spec, key, agg.clone(), &options, None)
                .expect("no restore");
            let late = late2.clone();
            streams.late.inspect(move |l: &LateReading| {
                late.lock().expect("lock").push((
                    l.reading.device.to_string(),
                    l.reading.ts,
                    l.window_start,
                    l.window_end,
                ));
            });
            let out = out2.clone();
            streams
                .windows
                .inspect(move |w| out.lock().expect("lock").push(w.clone()))
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
    let out = out.lock().expect("lock").clone();
    let mut late = late.lock().expect("lock").clone();
    late.sort();
    (out, late)
}

/// Naive sliding/tumbling windows: a reading is late iff the earliest
/// window holding it ended more than `allowed` before its batch time; every
/// other reading is in all its windows. A window's final result holds the
/// readings of batches before its end; each later batch that adds to it
/// yields an update with everything so far.
fn naive_sliding(
    batches: &[(u64, Vec<Reading>)],
    size: u64,
    slide: u64,
    allowed: u64,
) -> (Vec<Naive>, Vec<Late>) {
    // (key, start) → (batch time, ts, value) of the readings in it.
    type Panes = BTreeMap<(String, u64), Vec<(u64, u64, f64)>>;
    let mut windows = Panes::new();
    let mut late = Vec::new();
    for (t, batch) in batches {
        for r in batch {
            let pane = r.ts - r.ts % slide;
            let first_end = (pane + slide).max(size);
            if first_end - 1 + allowed < *t {
                late.push((r.device.to_string(), r.ts, first_end - size, first_end));
                continue;
            }
            // Windows [k·slide, k·slide + size) holding ts.
            let mut start = (r.ts + 1).saturating_sub(size).div_ceil(slide) * slide;
            while start <= r.ts {
                windows
                    .entry((r.device.to_string(), start))
                    .or_default()
                    .push((*t, r.ts, r.value));
                start += slide;
            }
        }
    }
    let mut rows = Vec::new();
    for ((k, s), v) in windows {
        let end = s + size;
        let upto = |t: u64| -> Vec<(u64, f64)> {
            v.iter()
                .filter(|(bt, _, _)| *bt <= t)
                .map(|(_, ts, x)| (*ts, *x))
                .collect()
        };
        let on_time = upto(end - 1);
        if !on_time.is_empty() {
            rows.push((k.clone(), s, end, ResultKind::Final, on_time));
        }
        let mut later: Vec<u64> = v
            .iter()
            .map(|(bt, _, _)| *bt)
            .filter(|bt| *bt >= end)
            .collect();
        later.dedup();
        for bt in later {
            rows.push((k.clone(), s, end, ResultKind::Update, upto(bt)));
        }
    }
    late.sort();
    (rows, late)
}

/// A session of the naive model.
struct NaiveSession {
    key: String,
    start: u64,
    end: u64,
    values: Vec<(u64, f64)>,
    fired: bool,
    /// To fire (again) when the frontier passes its end.
    pending: bool,
    /// Changed by a late reading of this batch while closed.
    changed: bool,
}

/// Naive sessions: per batch, pending sessions that ended before its time
/// fire (final, or update when fired before), fired ones past their allowed
/// lateness go; then each reading either is late or joins (and merges) the
/// sessions it touches. A fired session a reading changes while it is
/// still closed yields an update after the batch.
fn naive_sessions(
    batches: &[(u64, Vec<Reading>)],
    gap: u64,
    allowed: u64,
) -> (Vec<Naive>, Vec<Late>) {
    let mut open: Vec<NaiveSession> = Vec::new();
    let mut rows = Vec::new();
    let mut late = Vec::new();
    let emit = |s: &NaiveSession, rows: &mut Vec<Naive>, kind| {
        rows.push((s.key.clone(), s.start, s.end, kind, s.values.clone()))
    };
    for (t, batch) in batches {
        for s in open.iter_mut().filter(|s| s.pending && s.end - 1 < *t) {
            let kind = if s.fired {
                ResultKind::Update
            } else {
                ResultKind::Final
            };
            emit(s, &mut rows, kind);
            s.fired = true;
            s.pending = false;
        }
        open.retain(|s| !(s.fired && !s.pending && s.end - 1 + allowed < *t));
        for r in batch {
            let key = r.device.to_string();
            if r.ts + gap - 1 + allowed < *t {
                late.push((key, r.ts, r.ts, r.ts + gap));
                continue;
            }
            let mut merged = NaiveSession {
                key: key.clone(),
                start: r.ts,
                end: r.ts + gap,
                values: vec![(r.ts, r.value)],
                fired: false,
                pending: false,
                changed: false,
            };
            let (touching, rest): (Vec<_>, Vec<_>) = open
                .into_iter()
                .partition(|s| s.key == key && s.start <= merged.end && s.end >= merged.start);
            open = rest;
            for s in touching {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                merged.values.extend(s.values);
                merged.fired |= s.fired;
                merged.changed |= s.changed;
            }
            if merged.fired && merged.end - 1 < *t {
                merged.changed = true;
            } else {
                merged.pending = true;
                merged.changed = false;
            }
            open.push(merged);
        }
        for s in open.iter_mut().filter(|s| s.changed) {
            emit(s, &mut rows, ResultKind::Update);
            s.changed = false;
        }
    }
    for s in open.iter().filter(|s| s.pending) {
        emit(
            s,
            &mut rows,
            if s.fired {
                ResultKind::Update
            } else {
                ResultKind::Final
            },
        );
    }
    late.sort();
    (rows, late)
}

/// Naive count windows: each key's readings in (batch time, ts, value)
/// order, cut every `size`; the rest at the end.
fn naive_count(batches: &[(u64, Vec<Reading>)], size: usize) -> (Vec<Naive>, Vec<Late>) {
    let mut per_key: BTreeMap<String, Vec<(u64, u64, f64)>> = BTreeMap::new();
    for (t, batch) in batches {
        for r in batch {
            per_key
                .entry(r.device.to_string())
                .or_default()
                .push((*t, r.ts, r.value));
        }
    }
    let mut rows = Vec::new();
    for (k, mut v) in per_key {
        v.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        for chunk in v.chunks(size) {
            let first = chunk.iter().map(|c| c.1).min().unwrap_or(0);
            let last = chunk.iter().map(|c| c.1).max().unwrap_or(0);
            let values: Vec<(u64, f64)> = chunk.iter().map(|c| (c.1, c.2)).collect();
            rows.push((k.clone(), first, last + 1, ResultKind::Final, values));
        }
    }
    (rows, Vec::new())
}

fn check(spec: &WindowSpec, naive: impl Fn(&[(u64, Vec<Reading>)]) -> (Vec<Naive>, Vec<Late>)) {
    for seed in 0..6 {
        let batches = input(seed, 600, 1_500);
        let (want, want_late) = naive(&batches);
        let want = rows(&want);
        assert!(!want.is_empty());
        for workers in [1, 2] {
            let (got, got_late) = run(workers, &batches, spec);
            let case = format!("{spec:?}, seed {seed}, {workers} workers");
            assert_eq!(got_late, want_late, "{case}: late readings");
            if got != want {
                let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(6).collect();
                let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(6).collect();
                eprintln!("extra {extra:#?}\nmissing {missing:#?}");
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
    let spec = WindowSpec::tumbling(3_000).with_allowed_lateness(700);
    check(&spec, |b| naive_sliding(b, 3_000, 3_000, 700));
}

#[test]
fn count_windows_match_naive() {
    check(&WindowSpec::count(5), |b| naive_count(b, 5));
    check(&WindowSpec::count(1), |b| naive_count(b, 1));
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
            (1u64..6).prop_map(WindowSpec::count),
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
            prop_assert!(out.iter().all(|w| w.kind == ResultKind::Final), "no allowed lateness: finals only");
            let counted: u64 = out.iter().map(|w| w.stats.count).sum();
            if let WindowSpec::Sliding { .. } = spec {
                // Readings in the first windows of time sit in fewer windows.
                prop_assert!(counted <= (n - late) as u64 * per_reading);
                prop_assert!(counted >= (n - late) as u64);
            } else {
                prop_assert_eq!(counted + late as u64, n as u64);
            }
            let mut last: BTreeMap<String, u64> = BTreeMap::new();
            // Count windows come out in the order they fill; their starts
            // (the least event time in them) need not increase.
            let ordered = if let WindowSpec::Count { .. } = spec { &[][..] } else { &out[..] };
            for w in ordered {
                if let Some(prev) = last.insert(w.key.clone(), w.start) {
                    prop_assert!(prev < w.start, "{}: window at {} after {}", w.key, w.start, prev);
                }
            }
        }
    }
}

/// Every built-in aggregate, as [`Aggregates`] columns named in TOML, on
/// every window kind (with allowed lateness, so updates too), against the
/// naive models' windows recomputed directly from their readings.
#[test]
fn aggregates_match_naive() {
    let config: AggregatesConfig = toml::from_str(
        r#"columns = ["count", "sum", "min", "max", "mean", "variance", "stddev_pop",
                      "first", "last", "p50", "p95", "distinct"]"#,
    )
    .expect("columns");
    let aggs = config.build().expect("aggregates");
    type NaiveFn = fn(&[(u64, Vec<Reading>)]) -> (Vec<Naive>, Vec<Late>);
    let cases: [(WindowSpec, NaiveFn); 4] = [
        (
            WindowSpec::tumbling(3_000).with_allowed_lateness(700),
            |b| naive_sliding(b, 3_000, 3_000, 700),
        ),
        (
            WindowSpec::sliding(4_000, 1_000).with_allowed_lateness(500),
            |b| naive_sliding(b, 4_000, 1_000, 500),
        ),
        (WindowSpec::session(1_500).with_allowed_lateness(300), |b| {
            naive_sessions(b, 1_500, 300)
        }),
        (WindowSpec::count(6), |b| naive_count(b, 6)),
    ];
    for (spec, naive) in cases {
        for seed in 0..3 {
            let batches = input(seed, 400, 1_500);
            let (mut want, _) = naive(&batches);
            want.sort_by(|a, b| {
                (&a.0, a.1, a.2, a.3 as u8, a.4.len()).cmp(&(&b.0, b.1, b.2, b.3 as u8, b.4.len()))
            });
            for workers in [1, 2] {
                let (mut got, _) = run_with(workers, &batches, &spec, aggs.clone());
                got.sort_by(|a, b| {
                    let count =
                        |w: &WindowResult<String, Vec<(SmallStr, f64)>>| w.stats[0].1 as usize;
                    (&a.key, a.start, a.end, a.kind as u8, count(a)).cmp(&(
                        &b.key,
                        b.start,
                        b.end,
                        b.kind as u8,
                        count(b),
                    ))
                });
                let case = format!("{spec:?}, seed {seed}, {workers} workers");
                assert_eq!(got.len(), want.len(), "{case}: results");
                for (g, (key, start, end, kind, values)) in got.iter().zip(&want) {
                    assert_eq!(
                        (&g.key, g.start, g.end, g.kind),
                        (key, *start, *end, *kind),
                        "{case}"
                    );
                    check_columns(&g.stats, values, &format!("{case}, {key} [{start}, {end})"));
                }
            }
        }
    }
}

/// The columns of [`aggregates_match_naive`] against a direct computation.
fn check_columns(row: &[(SmallStr, f64)], values: &[(u64, f64)], case: &str) {
    let v: Vec<f64> = values.iter().map(|x| x.1).collect();
    let n = v.len() as f64;
    let mut sum = ExactSum::default();
    v.iter().for_each(|x| sum.add(*x));
    let mean = sum.value() / n;
    let sq: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
    let mut sorted = v.clone();
    sorted.sort_by(f64::total_cmp);
    // First: least ts, ties to the smaller value; last: greatest ts, ties to
    // the larger.
    let first = values
        .iter()
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|x| x.1);
    let last = values
        .iter()
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|x| x.1);
    let mut distinct: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let close = |got: f64, want: f64| {
        (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-9 * want.abs().max(1.0)
    };
    for (name, got) in row {
        let ok = match name.as_str() {
            "count" => *got == n,
            "sum" => *got == sum.value(),
            "min" => *got == sorted[0],
            "max" => *got == sorted[sorted.len() - 1],
            "mean" => *got == mean,
            "variance" => close(
                *got,
                if v.len() > 1 {
                    sq / (n - 1.0)
                } else {
                    f64::NAN
                },
            ),
            "stddev_pop" => close(*got, (sq / n).sqrt()),
            "first" => Some(*got) == first,
            "last" => Some(*got) == last,
            "distinct" => *got == distinct.len() as f64,
            p => {
                // Within the sketch's 1 % of a value at the quantile's rank.
                let q: f64 = p[1..].parse::<f64>().expect("percentile") / 100.0;
                let rank = q * (n - 1.0);
                let (lo, hi) = (sorted[rank.floor() as usize], sorted[rank.ceil() as usize]);
                let slack = 0.01 * lo.abs().max(hi.abs()) + 1e-9;
                *got >= lo.min(hi) - slack && *got <= lo.max(hi) + slack
            }
        };
        assert!(ok, "{case}: {name} = {got}, values {v:?}");
    }
}
