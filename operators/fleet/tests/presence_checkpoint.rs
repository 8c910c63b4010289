//! Checkpoint, restore and rescale of the presence state: a run cut by
//! checkpoints and restored on 1 → 2 → 1 and 2 → 1 workers emits exactly
//! the events and last-seen reports of an uninterrupted run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iotflow_core::checkpoint::{Ack, Checkpoint, Checkpoints, Part, Restored};
use iotflow_fleet::{LastSeen, Presence, PresenceConfig, PresenceEvent, PresenceTally};
use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect};

const NAME: &str = "presence";

fn config() -> PresenceConfig {
    PresenceConfig::default()
        .with_offline_after_ms(400)
        .with_last_seen_every(std::time::Duration::from_millis(250))
}

#[derive(Clone, Debug)]
enum Item {
    Reading(Reading),
    Update(DeviceUpdate),
}

/// Readings in bursts with quiet gaps (devices drop out and return), and
/// now and then a registration of a device that never sends; each with
/// the time it is stamped at (the watermark, 250 ms behind the largest
/// time sent).
fn input() -> Vec<(Timestamp, Item)> {
    let mut out = Vec::new();
    let mut max_ts = 0u64;
    for i in 0..1_200u64 {
        let ts = 1_000 + i * 9 + (i / 150) * 700 + (i * 37) % 200;
        let dev = format!("d-{}", (i * 7) % (4 + (i / 200) % 5));
        let stamp = max_ts.saturating_sub(250);
        out.push((stamp, Item::Reading(Reading::new(&dev, ts, "m", 1.0))));
        if i % 101 == 0 {
            let id = format!("silent-{i}");
            out.push((
                stamp,
                Item::Update(DeviceUpdate {
                    at: stamp,
                    seq: i,
                    device: DeviceId::new(&id),
                    info: Some(Arc::new(DeviceInfo::new(&id, "t", "x"))),
                }),
            ));
        }
        max_ts = max_ts.max(ts);
    }
    out
}

/// What one phase of the job left behind.
#[derive(Default)]
struct Phase {
    events: Vec<PresenceEvent>,
    last_seen: Vec<LastSeen>,
    acks: Vec<Ack>,
    tally: PresenceTally,
}

/// Runs the input stamped in `[from, to)` on `workers` workers, restored
/// from `restored`; with `checkpoint`, checkpoints at `to`.
fn phase(
    input: &[(Timestamp, Item)],
    (from, to): (Timestamp, Timestamp),
    workers: usize,
    restored: Option<Restored>,
    checkpoint: Option<Checkpoint>,
) -> Phase {
    let mine: Vec<(Timestamp, Item)> = input
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .cloned()
        .collect();
    let restored = restored.map(Arc::new);
    let out: Arc<Mutex<Phase>> = Arc::default();
    let shared = out.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut readings = InputHandle::<Timestamp, CapacityContainerBuilder<Vec<Reading>>>::new();
        let mut updates =
            InputHandle::<Timestamp, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
        let mut control =
            InputHandle::<Timestamp, CapacityContainerBuilder<Vec<Checkpoint>>>::new();
        let (ev, ls, ak, ta) = (
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
        );
        worker.dataflow::<Timestamp, _, _>(|scope| {
            let cks = Checkpoints::new(
                scope.input_from(&mut control),
                restored.clone(),
                index,
                peers,
            );
            let registry = scope.input_from(&mut updates);
            let s = scope
                .input_from(&mut readings)
                .presence(NAME, &config(), Some(registry), Some(&cks))
                .expect("restores");
            s.events
                .inspect(move |e| ev.lock().expect("lock").events.push(e.clone()));
            s.last_seen
                .inspect(move |l| ls.lock().expect("lock").last_seen.push(l.clone()));
            s.tally
                .inspect(move |t| ta.lock().expect("lock").tally.merge(t));
            cks.acks()
                .inspect(move |a| ak.lock().expect("lock").acks.push(a.clone()));
        });
        readings.advance_to(from);
        updates.advance_to(from);
        control.advance_to(from);
        // The coordinator broadcasts the request to every worker.
        if let Some(ck) = checkpoint {
            control.send(ck);
        }
        drop(control);
        if index == 0 {
            for (t, item) in &mine {
                if *t > *readings.time() {
                    readings.advance_to(*t);
                    updates.advance_to(*t);
                    worker.step();
                }
                match item {
                    Item::Reading(r) => readings.send(r.clone()),
                    Item::Update(u) => updates.send(u.clone()),
                }
            }
        }
        drop(readings);
        drop(updates);
        while worker.step_or_park(None) {}
    })
    .expect("timely runs");
    let mut phase = std::mem::take(&mut *out.lock().expect("lock"));
    // What a crashed run emitted after the checkpoint, the run restored
    // from it emits again: keep what came before.
    phase.events.retain(|e| e.at < to);
    phase.last_seen.retain(|l| l.at < to);
    phase
}

/// The checkpoint `acks` make, as a restore would read it.
fn restored(acks: &[Ack], ck: Checkpoint, peers: usize) -> Restored {
    let mut parts: Vec<(usize, Vec<u8>)> = acks
        .iter()
        .filter(|a| a.id == ck.id && a.name == NAME)
        .map(|a| match &a.part {
            Part::State(bytes) => (a.worker, bytes.clone()),
            other => panic!("not a state: {other:?}"),
        })
        .collect();
    parts.sort_by_key(|(w, _)| *w);
    assert_eq!(parts.len(), peers, "one part per worker");
    Restored {
        id: ck.id,
        time: ck.time,
        peers,
        parts: HashMap::from([(NAME.to_owned(), parts.into_iter().map(|(_, b)| b).collect())]),
    }
}

fn sorted(mut p: Vec<Phase>) -> (Vec<PresenceEvent>, Vec<LastSeen>) {
    let mut events: Vec<PresenceEvent> = p.iter_mut().flat_map(|p| p.events.drain(..)).collect();
    let mut seen: Vec<LastSeen> = p.iter_mut().flat_map(|p| p.last_seen.drain(..)).collect();
    events.sort();
    seen.sort();
    (events, seen)
}

#[test]
fn checkpoints_restore_on_one_two_one_and_two_one_workers_without_changing_outputs() {
    let input = input();
    let whole = phase(&input, (0, u64::MAX), 1, None, None);
    let whole_tally = whole.tally.clone();
    let want = sorted(vec![whole]);
    assert!(
        want.0.len() > 50 && want.1.len() > 50,
        "{} {}",
        want.0.len(),
        want.1.len()
    );
    assert!(
        want.0
            .iter()
            .any(|e| e.last_seen.is_none() && e.device.as_str().starts_with("silent"))
    );

    let (t1, t2) = (4_000, 9_000);
    let ck1 = Checkpoint { id: 1, time: t1 };
    let ck2 = Checkpoint { id: 2, time: t2 };
    // 1 → 2 → 1.
    let a = phase(&input, (0, t1), 1, None, Some(ck1));
    let b = phase(
        &input,
        (t1, t2),
        2,
        Some(restored(&a.acks, ck1, 1)),
        Some(ck2),
    );
    let c = phase(
        &input,
        (t2, u64::MAX),
        1,
        Some(restored(&b.acks, ck2, 2)),
        None,
    );
    assert!(a.events.len() > 5 && b.events.len() > 5 && c.events.len() > 5);
    // Counts ride in the state: the last run's tally covers the whole job.
    assert_eq!(c.tally, whole_tally);
    c.tally.check_conservation().expect("conserved");
    assert_eq!(sorted(vec![a, b, c]), want, "1 → 2 → 1");

    // 2 → 1.
    let a = phase(&input, (0, t2), 2, None, Some(ck2));
    let b = phase(
        &input,
        (t2, u64::MAX),
        1,
        Some(restored(&a.acks, ck2, 2)),
        None,
    );
    assert_eq!(b.tally, whole_tally);
    assert_eq!(sorted(vec![a, b]), want, "2 → 1");
}
