//! `.infer` and `.shingle` as timely operators: outputs equal a plain-Rust
//! computation of the same model, the same bits on 1 and 2 workers, and
//! every record either scored or rejected with its reason.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use iotflow_ml::{
    Error, FeatureSpec, Infer, InferStreams, Inferred, Model, RejectReason, Rejected, Shingle,
    Shingles, WindowColumn, features_fn,
};
use iotflow_types::{DeviceId, Reading, Stats, Timestamp, WindowResult};
use iotflow_window::{WindowSpec, Windowed};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::capture::Event;
use timely::dataflow::operators::{Capture, Input};
use timely::dataflow::{InputHandle, StreamVec};

type Win = WindowResult<DeviceId, Stats>;
type Outs<D> = (Vec<Inferred<D>>, Vec<Rejected<D>>);

/// A dataflow under test: input records `I` to inferred records `D`.
trait Pipeline<I, D>:
    for<'s> Fn(StreamVec<'s, Timestamp, I>) -> InferStreams<'s, D> + Send + Sync + 'static
{
}

impl<I, D, F> Pipeline<I, D> for F where
    F: for<'s> Fn(StreamVec<'s, Timestamp, I>) -> InferStreams<'s, D> + Send + Sync + 'static
{
}

/// Gives a closure the higher-ranked signature `run` needs.
fn pipeline<I, D, F>(f: F) -> F
where
    F: for<'s> Fn(StreamVec<'s, Timestamp, I>) -> InferStreams<'s, D> + Send + Sync + 'static,
{
    f
}

fn mlp(max_batch: usize) -> Model {
    Model::from_bytes(&mlp_onnx(None), MLP_IN)
        .and_then(|m| m.with_max_batch(max_batch))
        .expect("model")
}

/// Runs `build` on `workers` workers; worker `w` feeds the items with
/// index `i % workers == w`, each at its time, advancing in time order.
/// Returns every inferred and rejected record.
fn run<I, D>(workers: usize, items: Vec<(Timestamp, I)>, build: impl Pipeline<I, D>) -> Outs<D>
where
    I: Clone + Send + Sync + 'static,
    D: Clone + Send + 'static,
{
    let out = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = out.clone();
    let items = Arc::new(items);
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = InputHandle::<Timestamp, CapacityContainerBuilder<Vec<I>>>::new();
        let (inferred, rejected) = worker.dataflow::<Timestamp, _, _>(|scope| {
            let streams = build(scope.input_from(&mut input));
            (streams.inferred.capture(), streams.rejected.capture())
        });
        let mut mine: Vec<&(Timestamp, I)> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers == index)
            .map(|(_, x)| x)
            .collect();
        mine.sort_by_key(|(t, _)| *t);
        for (t, item) in mine {
            if *t > *input.time() {
                input.advance_to(*t);
                worker.step();
            }
            input.send(item.clone());
        }
        drop(input);
        while worker.step() {}
        let mut sink = sink.lock().expect("lock");
        sink.0.extend(flatten(inferred));
        sink.1.extend(flatten(rejected));
    })
    .expect("timely");
    std::mem::take(&mut *out.lock().expect("lock"))
}

fn flatten<T>(rx: std::sync::mpsc::Receiver<Event<Timestamp, Vec<T>>>) -> Vec<T> {
    rx.try_iter()
        .flat_map(|e| match e {
            Event::Messages(_, d) => d,
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

fn window(device: &str, start: Timestamp, values: &[f64]) -> Win {
    let mut stats = Stats::default();
    values.iter().for_each(|v| stats.add(*v));
    WindowResult {
        key: DeviceId::new(device),
        start,
        end: start + 10_000,
        stats,
        kind: Default::default(),
    }
}

/// Window results stamped at their last instant: mostly ordinary, some
/// empty (no mean), some beyond f32.
fn windows() -> Vec<(Timestamp, Win)> {
    (0..600u64)
        .map(|i| {
            let device = format!("d-{}", i % 17);
            let start = (i / 17) * 10_000;
            let n = (i % 7) as usize;
            let mut values: Vec<f64> = (0..n)
                .map(|j| ((i * 31 + j as u64 * 17) % 40) as f64 / 4.0 - 5.0)
                .collect();
            if i % 53 == 0 {
                values.push(1e40);
            }
            let w = window(&device, start, &values);
            (w.end - 1, w)
        })
        .collect()
}

fn stats_spec() -> FeatureSpec {
    FeatureSpec::window([
        WindowColumn::Count,
        WindowColumn::Mean,
        WindowColumn::Min,
        WindowColumn::Max,
    ])
}

fn sort_windows(mut outs: Outs<Win>) -> Outs<Win> {
    outs.0
        .sort_by(|a, b| (&a.record.key, a.record.start).cmp(&(&b.record.key, b.record.start)));
    outs.1
        .sort_by(|a, b| (&a.record.key, a.record.start).cmp(&(&b.record.key, b.record.start)));
    outs
}

fn bits(v: &[Inferred<impl Sized>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|i| i.outputs.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn window_results_are_scored_like_plain_rust_on_1_and_2_workers() {
    let input = windows();
    let infer = |max_batch: usize| {
        pipeline(move |s: StreamVec<'_, Timestamp, Win>| {
            s.infer("mlp", &mlp(max_batch), stats_spec())
                .expect("4 features")
        })
    };
    let one = sort_windows(run(1, input.clone(), infer(1024)));
    let (inferred, rejected) = &one;
    // Every window is scored or rejected, with the reason it was.
    assert_eq!(inferred.len() + rejected.len(), input.len());
    let empty = input.iter().filter(|(_, w)| w.stats.count == 0).count();
    let huge = input.iter().filter(|(_, w)| w.stats.max > 1e39).count();
    let missing = rejected
        .iter()
        .filter(|r| {
            r.reason
                == RejectReason::MissingFeature {
                    column: 1,
                    name: "mean".into(),
                }
        })
        .count();
    let non_finite = rejected
        .iter()
        .filter(|r| matches!(r.reason, RejectReason::NonFiniteFeature { .. }))
        .count();
    assert_eq!((missing, non_finite), (empty, huge));
    assert!(empty > 50 && huge > 5, "{empty} {huge}");
    for i in inferred {
        let s = &i.record.stats;
        let x = [s.count as f32, s.mean() as f32, s.min as f32, s.max as f32];
        let want = mlp_reference(&x);
        assert!(
            i.outputs.iter().zip(&want).all(|(g, w)| close(*g, *w)),
            "{x:?}"
        );
        assert_eq!(i.outputs.len(), 4);
    }
    let two = sort_windows(run(2, input.clone(), infer(1024)));
    assert_eq!(two.1, one.1);
    assert_eq!(two.0.len(), one.0.len());
    assert_eq!(bits(&two.0), bits(&one.0), "2 workers differ from 1");
    // Micro-batches of 3 rows: the same bits again.
    let small = sort_windows(run(2, input, infer(3)));
    assert_eq!(bits(&small.0), bits(&one.0), "batching changed outputs");
}

/// Readings of 5 devices over 60 s, every 700 ms, values with a trend.
fn readings() -> Vec<Reading> {
    (0..430u64)
        .map(|i| {
            let device = format!("d-{}", i % 5);
            let ts = 10_000 + i * 140;
            let value = ((i * 13) % 29) as f64 / 3.0 - 4.0 + (i % 5) as f64;
            Reading::new(&device, ts, "temp", value)
        })
        .collect()
}

#[test]
fn tumbling_windows_feed_the_model_end_to_end() {
    let items: Vec<(Timestamp, Reading)> = readings().into_iter().map(|r| (r.ts, r)).collect();
    // Independent: per device and 10 s window, count/mean/min/max in f64.
    let mut groups: std::collections::BTreeMap<(String, u64), Vec<f64>> = Default::default();
    for (_, r) in &items {
        let key = (r.device.as_str().to_owned(), r.ts / 10_000 * 10_000);
        groups.entry(key).or_default().push(r.value);
    }
    let build = pipeline(|s: StreamVec<'_, Timestamp, Reading>| {
        let windows = s
            .window(
                "10s",
                &WindowSpec::tumbling(10_000),
                |r: &Reading| r.device.clone(),
                None,
            )
            .expect("no restore")
            .windows;
        windows
            .infer("mlp", &mlp(1024), stats_spec())
            .expect("4 features")
    });
    let mut results = Vec::new();
    for workers in [1, 2] {
        let (mut inferred, rejected) = run(workers, items.clone(), build);
        assert!(rejected.is_empty());
        inferred
            .sort_by(|a, b| (&a.record.key, a.record.start).cmp(&(&b.record.key, b.record.start)));
        assert_eq!(inferred.len(), groups.len());
        for (i, ((device, start), values)) in inferred.iter().zip(&groups) {
            assert_eq!(
                (i.record.key.as_str(), i.record.start),
                (device.as_str(), *start)
            );
            let n = values.len() as f64;
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = values.iter().sum::<f64>() / n;
            let want = mlp_reference(&[n as f32, mean as f32, min as f32, max as f32]);
            assert!(i.outputs.iter().zip(&want).all(|(g, w)| close(*g, *w)));
        }
        results.push(bits(&inferred));
    }
    assert_eq!(results[0], results[1], "2 workers differ from 1");
}

#[test]
fn shingles_follow_event_time_per_series_on_1_and_2_workers() {
    // Stamped at 5 s batch times, in reverse order within a batch: the
    // operator applies each batch in (ts, value) order.
    let mut items: Vec<(Timestamp, Reading)> = readings()
        .into_iter()
        .map(|r| (r.ts / 5_000 * 5_000, r))
        .collect();
    items.reverse();
    let mut want: Vec<(String, Timestamp, Vec<f64>)> = Vec::new();
    for d in 0..5 {
        let device = format!("d-{d}");
        let mut series: Vec<&Reading> = items
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.device.as_str() == device)
            .collect();
        series.sort_by_key(|r| r.ts);
        for w in series.windows(MLP_IN) {
            let x: Vec<f32> = w.iter().map(|r| r.value as f32).collect();
            want.push((device.clone(), w[MLP_IN - 1].ts, mlp_reference(&x)));
        }
    }
    let build = pipeline(|s: StreamVec<'_, Timestamp, Reading>| {
        s.shingle("last-4", MLP_IN, |r: &Reading| r.device.clone(), None)
            .expect("size")
            .infer("mlp", &mlp(7), FeatureSpec::shingle(MLP_IN))
            .expect("4 features")
    });
    let mut results = Vec::new();
    for workers in [1, 2] {
        let (mut inferred, rejected): Outs<Shingle<DeviceId>> = run(workers, items.clone(), build);
        assert!(rejected.is_empty());
        inferred.sort_by(|a, b| (&a.record.key, a.record.ts).cmp(&(&b.record.key, b.record.ts)));
        assert_eq!(inferred.len(), want.len());
        for (i, (device, ts, w)) in inferred.iter().zip(&want) {
            assert_eq!((i.record.key.as_str(), i.record.ts), (device.as_str(), *ts));
            assert!(i.outputs.iter().zip(w).all(|(g, w)| close(*g, *w)));
        }
        results.push(bits(&inferred));
    }
    assert_eq!(results[0], results[1], "2 workers differ from 1");
}

#[test]
fn closures_are_checked_for_finite_features_and_width() {
    let model = Model::from_bytes(&linear_onnx(), 2).expect("model");
    let items: Vec<(Timestamp, Reading)> = [1.0, f64::NAN, 3.0, f64::INFINITY]
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, Reading::new("d-1", i as u64, "temp", v)))
        .collect();
    let build = pipeline(move |s: StreamVec<'_, Timestamp, Reading>| {
        let f = features_fn(2, |r: &Reading, out: &mut [f32]| {
            out[0] = r.value as f32;
            out[1] = 1.0;
            Ok(())
        });
        s.infer("linear", &model, f).expect("2 features")
    });
    let (mut inferred, rejected) = run(2, items, build);
    inferred.sort_by_key(|i| i.record.ts);
    let scores: Vec<_> = inferred.iter().map(|i| (i.record.ts, i.score())).collect();
    assert_eq!(scores, [(0, Some(1.0)), (2, Some(5.0))]);
    let mut codes: Vec<_> = rejected
        .iter()
        .map(|r| (r.record.ts, r.reason.code()))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [(1, "non_finite_feature"), (3, "non_finite_feature")]
    );

    let wrong = timely::example(|scope| {
        use timely::dataflow::operators::ToStream;
        let s = Vec::<Reading>::new().to_stream(scope);
        let f = features_fn(3, |_: &Reading, _: &mut [f32]| Ok(()));
        s.infer("linear", &mlp(8), f).err()
    });
    assert!(matches!(wrong, Some(Error::Shape(_))), "{wrong:?}");
}
