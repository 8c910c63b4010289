//! Checkpoint, restore and rescale at the operator level: a run cut into
//! three by checkpoints, restored on 1 → 2 → 1 and 2 → 1 → 2 workers,
//! emits exactly what an uninterrupted run emits, stamps included, and
//! ends with the same counts.
//!
//! Each cut-off run goes on past its checkpoint (as a crashed job would
//! have), with registry updates beyond it: the snapshot must leave those
//! out, and what the run emitted after the checkpoint is dropped (the
//! restored run emits it again).

mod common;

use std::collections::HashMap;

use common::random::{DISORDER, random_case};
use common::{Action, Output, deterministic, rendered, run};
use iotflow_core::checkpoint::{Ack, Checkpoint, Part, Restored};
use iotflow_enrich::{EnrichConfig, UnknownDevice};
use iotflow_types::Timestamp;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// How far past its checkpoint a cut-off run goes on.
const BEYOND: Timestamp = 3_000;

/// The actions of `script` a run from `from` cut off at `to` sees: readings
/// stamped in `[from, to + BEYOND)`, and the registry up to as far again
/// plus the disorder (a reading stamped before `to` may need updates past
/// it).
fn slice(script: &[Action], from: Timestamp, to: Option<Timestamp>) -> Vec<Action> {
    let readings_end = to.map_or(Timestamp::MAX, |t| t + BEYOND);
    let registry_end = readings_end.saturating_add(BEYOND + DISORDER);
    script
        .iter()
        .filter(|a| match a {
            Action::Reading(t, _) => (from..readings_end).contains(t),
            Action::Update(t, _) | Action::AdvanceUpdates(t) => (from..registry_end).contains(t),
            Action::Step => true,
        })
        .cloned()
        .collect()
}

/// The checkpoint `acks` make, as a restore would read it.
fn restored(acks: &[Ack], ck: Checkpoint, peers: usize) -> Restored {
    let mut parts: Vec<(usize, Vec<u8>)> = acks
        .iter()
        .filter(|a| a.id == ck.id && a.name == "enrich")
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
            "enrich".to_owned(),
            parts.into_iter().map(|(_, b)| b).collect(),
        )]),
    }
}

/// Keeps what a run emitted before `to`.
fn before(mut o: Output, to: Timestamp) -> Output {
    o.enriched.retain(|(t, _)| *t < to);
    o.rejects.retain(|(t, _)| *t < to);
    o
}

#[test]
fn checkpoints_restore_on_other_worker_counts_without_changing_the_output() {
    let mut rng = SmallRng::seed_from_u64(5);
    for (round, (workers, lead)) in [([1, 2, 1], -2_500), ([2, 1, 2], 0), ([1, 2, 2], 2_500)]
        .into_iter()
        .enumerate()
    {
        let case = random_case(&mut rng, 600, lead);
        let mode = [UnknownDevice::Reject, UnknownDevice::PassThrough][round % 2];
        let config = EnrichConfig::default().with_unknown_device(mode);
        let whole = run(&case.script, 1, &config, 0, None, None);
        let last = case.readings.last().map_or(0, |(t, _)| *t);
        let (t1, t2) = (last / 3, 2 * last / 3);
        let ck1 = Checkpoint { id: 1, time: t1 };
        let ck2 = Checkpoint { id: 2, time: t2 };

        let a = run(
            &slice(&case.script, 0, Some(t1)),
            workers[0],
            &config,
            0,
            None,
            Some(ck1),
        );
        let b = run(
            &slice(&case.script, t1, Some(t2)),
            workers[1],
            &config,
            t1,
            Some(restored(&a.acks, ck1, workers[0])),
            Some(ck2),
        );
        let c = run(
            &slice(&case.script, t2, None),
            workers[2],
            &config,
            t2,
            Some(restored(&b.acks, ck2, workers[1])),
            None,
        );
        let (a, b) = (before(a, t1), before(b, t2));
        assert!(!a.enriched.is_empty() && !b.enriched.is_empty() && !c.enriched.is_empty());
        let tally = c.tally.clone();
        let mut joined = Output::default();
        for o in [a, b, c] {
            joined.enriched.extend(o.enriched);
            joined.rejects.extend(o.rejects);
        }
        assert_eq!(
            rendered(&joined),
            rendered(&whole),
            "round {round}: {workers:?}"
        );
        // Counts ride in the state: the last run's tally covers the whole job.
        assert_eq!(
            deterministic(&tally),
            deterministic(&whole.tally),
            "round {round}"
        );
        tally.check_conservation().expect("balanced");
        assert_eq!(tally.received, case.readings.len() as u64);
        assert_eq!(tally.updates, case.updates.len() as u64);
    }
}
