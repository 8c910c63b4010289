//! Checkpoint, restore and rescale at the operator level: a run cut into
//! three by checkpoints, restored on 1 → 2 → 1 workers, emits exactly the
//! events of an uninterrupted run.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{Step, run, sorted};
use iotflow_alert::{AlertEvent, AlertPolicy, AlertTally, Alerting, Severity, Signal};
use iotflow_core::checkpoint::{Ack, Checkpoint, Checkpoints, Part, Restored};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect};

fn policy() -> AlertPolicy {
    AlertPolicy::default()
        .with_resolve_after_ms(300)
        .with_escalate_after_ms(500)
        .with_cooldown_ms(200)
}

/// Signals with the time they are stamped at (the watermark, 250 ms behind
/// the largest time sent), in bursts with quiet gaps.
fn signals() -> Vec<(u64, Signal)> {
    let mut out = Vec::new();
    let mut max_ts = 0u64;
    for i in 0..900u64 {
        let ts = 1_000 + i * 11 + (i / 120) * 900 + (i * 37) % 200;
        let severity = if i % 97 == 0 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let dev = format!("d-{}", (i * 7) % 6);
        let rule = ["hot", "shaky"][(i % 2) as usize];
        out.push((
            max_ts.saturating_sub(250),
            Signal::new(&dev, rule, ts, severity),
        ));
        max_ts = max_ts.max(ts);
    }
    out
}

/// What one phase of the job left behind.
struct Phase {
    events: Vec<(u64, AlertEvent)>,
    acks: Vec<Ack>,
    tally: AlertTally,
}

/// Runs the signals stamped in `[from, to)` on `workers` workers, restored
/// from `restored`; with `checkpoint`, checkpoints at `to`.
fn phase(
    signals: &[(u64, Signal)],
    (from, to): (u64, u64),
    workers: usize,
    restored: Option<Restored>,
    checkpoint: Option<Checkpoint>,
) -> Phase {
    let mine: Vec<(u64, Signal)> = signals
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .cloned()
        .collect();
    let restored = restored.map(Arc::new);
    let events: Arc<Mutex<Vec<(u64, AlertEvent)>>> = Arc::default();
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let tally: Arc<Mutex<AlertTally>> = Arc::default();
    let (ev, ak, ta) = (events.clone(), acks.clone(), tally.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Signal>>>::new();
        let mut control = InputHandle::<u64, CapacityContainerBuilder<Vec<Checkpoint>>>::new();
        let (ev, ak, ta) = (ev.clone(), ak.clone(), ta.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            let cks = Checkpoints::new(
                scope.input_from(&mut control),
                restored.clone(),
                index,
                peers,
            );
            let streams = scope
                .input_from(&mut input)
                .alerts("alerts", &policy(), Some(&cks))
                .expect("restores");
            streams.events.inspect_core(move |e| {
                if let Ok((stamp, data)) = e {
                    let t = *stamp.least().expect("stamped");
                    ev.lock()
                        .expect("lock")
                        .extend(data.iter().map(|a| (t, a.clone())));
                }
            });
            streams
                .tally
                .inspect(move |t| ta.lock().expect("lock").merge(t));
            cks.acks()
                .inspect(move |a| ak.lock().expect("lock").push(a.clone()));
        });
        input.advance_to(from);
        control.advance_to(from);
        // Every worker's operator gets the request (the coordinator
        // broadcasts it).
        if let Some(ck) = checkpoint {
            control.send(ck);
        }
        drop(control);
        if index == 0 {
            for (t, s) in &mine {
                if *t > *input.time() {
                    input.advance_to(*t);
                    worker.step();
                }
                input.send(s.clone());
            }
        }
        drop(input);
        while worker.step_or_park(None) {}
    })
    .expect("timely runs");
    let mut events = take(&events);
    // What a crashed run emitted after the checkpoint is emitted again by
    // the run restored from it: keep the events before it.
    events.retain(|(t, _)| *t < to);
    Phase {
        events,
        acks: take(&acks),
        tally: take(&tally),
    }
}

fn take<T: Default>(m: &Mutex<T>) -> T {
    std::mem::take(&mut *m.lock().expect("lock"))
}

/// The checkpoint `acks` make, as a restore would read it.
fn restored(acks: &[Ack], ck: Checkpoint, peers: usize) -> Restored {
    let mut parts: Vec<(usize, Vec<u8>)> = acks
        .iter()
        .filter(|a| a.id == ck.id && a.name == "alerts")
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
        parts: HashMap::from([(
            "alerts".to_owned(),
            parts.into_iter().map(|(_, b)| b).collect(),
        )]),
    }
}

#[test]
fn checkpoints_restore_on_one_two_one_workers_without_changing_events() {
    let signals = signals();
    let script: Vec<Step> = signals
        .iter()
        .flat_map(|(t, s)| [Step::Advance(*t), Step::Send(s.clone())])
        .collect();
    let whole = run(&policy(), &script, 1);
    let want = sorted(whole.events.into_iter().map(|(_, e)| e).collect());
    assert!(want.len() > 30, "{}", want.len());

    let (t1, t2) = (4_000, 9_000);
    let ck1 = Checkpoint { id: 1, time: t1 };
    let ck2 = Checkpoint { id: 2, time: t2 };
    let a = phase(&signals, (0, t1), 1, None, Some(ck1));
    let b = phase(
        &signals,
        (t1, t2),
        2,
        Some(restored(&a.acks, ck1, 1)),
        Some(ck2),
    );
    let c = phase(
        &signals,
        (t2, u64::MAX),
        1,
        Some(restored(&b.acks, ck2, 2)),
        None,
    );
    assert!(!a.events.is_empty() && !b.events.is_empty() && !c.events.is_empty());

    let got = sorted(
        [a.events, b.events, c.events]
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
            .collect(),
    );
    assert_eq!(got, want);
    // Counts ride in the state: the last run's tally covers the whole job.
    c.tally.check_conservation().expect("tally balances");
    assert_eq!(c.tally.received, signals.len() as u64);
    assert_eq!(c.tally, whole.tally);
}
