//! Shingles across a checkpoint and a restart on another number of workers
//! are the shingles of an uninterrupted run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iotflow_core::checkpoint::{Checkpoint, Checkpoints, Part, Restored};
use iotflow_ml::{Shingle, Shingles};
use iotflow_types::{DeviceId, Reading, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::capture::Event;
use timely::dataflow::operators::{Capture, Input};

const CUT: Timestamp = 30_000;

/// Readings of 7 devices, stamped at 1 s batch times.
fn readings() -> Vec<(Timestamp, Reading)> {
    (0..600u64)
        .map(|i| {
            let ts = 1_000 + i * 97;
            let value = ((i * 31) % 19) as f64 - 9.0;
            (
                ts / 1_000 * 1_000,
                Reading::new(&format!("d-{}", i % 7), ts, "temp", value),
            )
        })
        .collect()
}

fn drain<T>(rx: std::sync::mpsc::Receiver<Event<Timestamp, Vec<T>>>) -> Vec<T> {
    rx.try_iter()
        .flat_map(|e| match e {
            Event::Messages(_, d) => d,
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

/// Runs the readings with batch times in `range` on `workers` workers,
/// restoring from `restored`, checkpointing at `CUT`. Returns the shingles
/// and the checkpoint's state parts by worker.
fn run(
    workers: usize,
    range: std::ops::Range<Timestamp>,
    restored: Option<Restored>,
) -> (Vec<Shingle<DeviceId>>, Vec<Vec<u8>>) {
    let out = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = out.clone();
    let restored = restored.map(Arc::new);
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = InputHandle::<Timestamp, CapacityContainerBuilder<Vec<Reading>>>::new();
        let mut control =
            InputHandle::<Timestamp, CapacityContainerBuilder<Vec<Checkpoint>>>::new();
        let restored = restored.clone();
        let (shingles, acks) = worker.dataflow::<Timestamp, _, _>(|scope| {
            let checkpoints =
                Checkpoints::new(scope.input_from(&mut control), restored, index, peers);
            let shingles = scope
                .input_from(&mut input)
                .shingle(
                    "last-3",
                    3,
                    |r: &Reading| r.device.clone(),
                    Some(&checkpoints),
                )
                .expect("restores");
            (shingles.capture(), checkpoints.acks().capture())
        });
        control.send(Checkpoint { id: 1, time: CUT });
        drop(control);
        let mine = readings()
            .into_iter()
            .enumerate()
            .filter(|(i, (t, _))| i % peers == index && range.contains(t));
        for (_, (t, r)) in mine {
            if t > *input.time() {
                input.advance_to(t);
                worker.step();
            }
            input.send(r);
        }
        drop(input);
        while worker.step() {}
        let mut parts = Vec::new();
        for ack in drain(acks) {
            if let (Part::State(bytes), 1) = (ack.part, ack.id) {
                parts.push((ack.worker, bytes));
            }
        }
        let mut sink = sink.lock().expect("lock");
        sink.0.extend(drain(shingles));
        sink.1.extend(parts);
    })
    .expect("timely");
    let (mut shingles, mut parts) = std::mem::take(&mut *out.lock().expect("lock"));
    shingles.sort_by(|a: &Shingle<DeviceId>, b| (&a.key, a.ts).cmp(&(&b.key, b.ts)));
    parts.sort_by_key(|(w, _)| *w);
    (shingles, parts.into_iter().map(|(_, b)| b).collect())
}

#[test]
fn restored_shingles_continue_where_the_checkpoint_left_them() {
    let (whole, _) = run(1, 0..u64::MAX, None);
    assert_eq!(whole.len(), 600 - 7 * 2);
    for (old, new) in [(2, 1), (1, 2), (2, 3)] {
        let (mut before, parts) = run(old, 0..CUT, None);
        assert_eq!(parts.len(), old, "one state part per worker");
        let restored = Restored {
            id: 1,
            time: CUT,
            peers: old,
            parts: HashMap::from([("last-3".to_owned(), parts)]),
        };
        let (after, _) = run(new, CUT..u64::MAX, Some(restored));
        assert!(!before.is_empty() && !after.is_empty());
        before.extend(after);
        before.sort_by(|a, b| (&a.key, a.ts).cmp(&(&b.key, b.ts)));
        assert!(before == whole, "{old} → {new} workers");
    }
}
