//! `.detect` as a timely operator: the same scores as a per-key replay, on
//! 1 and 2 workers, and state that rescales.

use std::sync::{Arc, Mutex};

use iotflow_anomaly::{Detect, DetectState, Detector, DetectorConfig, Emit, Scored, replay};
use iotflow_core::state::{KeyedState, decode, encode, rescale};
use iotflow_types::{Reading, SeriesKey};
use timely::dataflow::operators::{Capture, ToStream, capture::Event};

fn readings() -> Vec<Reading> {
    // 12 series, arriving interleaved and out of order within each series.
    let mut v = Vec::new();
    for i in 0..3000u64 {
        let key = i % 12;
        let ts = 1_000 * (i / 12) + (i * 7919) % 900;
        let mut value = 20.0 + ((i * 31) % 17) as f64 * 0.1 + key as f64;
        if i % 401 == 0 {
            value += 15.0;
        }
        v.push(Reading::new(&format!("d-{key}"), ts, "temp", value));
    }
    v.reverse();
    v
}

fn run(workers: usize, name: &'static str) -> Vec<Scored<SeriesKey>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let detector = DetectorConfig::named(name)
            .and_then(|c| c.build())
            .expect("detector");
        let rx = worker.dataflow::<u64, _, _>(|scope| {
            let data = if index == 0 { readings() } else { Vec::new() };
            data.to_stream(scope)
                .detect("d", detector, SeriesKey::of, Emit::Scores, None)
                .expect("no restore")
                .scores
                .expect("scores asked for")
                .capture()
        });
        while worker.step() {}
        let mut got: Vec<Scored<SeriesKey>> = rx
            .try_iter()
            .flat_map(|e| match e {
                Event::Messages(_, d) => d,
                _ => Vec::new(),
            })
            .collect();
        sink.lock().expect("lock").append(&mut got);
    })
    .expect("timely");
    let mut v = std::mem::take(&mut *out.lock().expect("lock"));
    v.sort_by(|a, b| (&a.key, a.ts).cmp(&(&b.key, b.ts)));
    v
}

#[test]
fn scores_equal_a_per_series_replay_in_event_time_order_on_1_and_2_workers() {
    for name in ["auto", "zscore", "rate"] {
        let detector = DetectorConfig::named(name)
            .and_then(|c| c.build())
            .expect("detector");
        let mut all = readings();
        all.sort_by(|a, b| (SeriesKey::of(a), a.ts).cmp(&(SeriesKey::of(b), b.ts)));
        let mut devices: Vec<String> = (0..12).map(|k| format!("d-{k}")).collect();
        devices.sort();
        let mut want = Vec::new();
        for device in devices {
            let series: Vec<(u64, f64)> = all
                .iter()
                .filter(|r| r.device.as_str() == device)
                .map(|r| (r.ts, r.value))
                .collect();
            want.extend(replay(&detector, series));
        }
        let one = run(1, name);
        assert_eq!(one.len(), 3000);
        let got: Vec<_> = one.iter().map(|s| s.score).collect();
        assert!(
            got == want,
            "{name}: operator scores differ from the replay"
        );
        assert!(got.iter().any(|s| s.flag), "{name}");
        assert!(run(2, name) == one, "{name}: 2 workers differ from 1");
    }
}

#[test]
fn detect_state_rescales_every_key_exactly_once() {
    let detector = DetectorConfig::named("auto")
        .and_then(|c| c.build())
        .expect("detector");
    type St = DetectState<SeriesKey, <iotflow_anomaly::AnyDetector as Detector>::State>;
    let mut st = St::default();
    for r in readings().into_iter().take(200) {
        st.series.insert(SeriesKey::of(&r), detector.init());
        st.pending.push((r.ts, (SeriesKey::of(&r), r)));
    }
    let bytes = encode(&st).expect("encode");
    let (mut series, mut pending) = (0, 0);
    for w in 0..3 {
        let part = rescale(vec![decode::<St>(&bytes).expect("decode")], w, 3).expect("part");
        series += part.series.len();
        pending += part.pending.len();
        let mut again = decode::<St>(&bytes).expect("decode");
        again.retain_owned(w, 3);
        assert_eq!(again.series.len(), part.series.len());
    }
    assert_eq!((series, pending), (12, 200));
}
