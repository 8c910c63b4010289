//! A script runner shared by the tests: readings and registry updates sent
//! on two timely inputs, in a given order and with given stamps, on any
//! number of workers, optionally checkpointed and restored.

#![allow(dead_code, unreachable_pub)]

pub mod random;

use std::sync::{Arc, Mutex};

use iotflow_core::checkpoint::{Ack, Checkpoint, Checkpoints, Restored};
use iotflow_enrich::{Enrich, EnrichConfig, EnrichTally, Enriched};
use iotflow_types::{DeviceUpdate, Reading, Reject, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect};

/// One thing worker 0 does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Sends a reading stamped at the time (advancing the readings input).
    Reading(Timestamp, Reading),
    /// Sends an update stamped at the time (advancing the updates input).
    Update(Timestamp, DeviceUpdate),
    /// Moves the updates input to the time without sending anything.
    AdvanceUpdates(Timestamp),
    /// Lets the worker run a little.
    Step,
}

impl Action {
    /// The time an action is stamped at or moves its input to.
    pub fn stamp(&self) -> Option<Timestamp> {
        match self {
            Action::Reading(t, _) | Action::Update(t, _) | Action::AdvanceUpdates(t) => Some(*t),
            Action::Step => None,
        }
    }
}

/// Everything a run emitted, with stamps, and the summed tally.
#[derive(Debug, Default)]
pub struct Output {
    pub enriched: Vec<(Timestamp, Enriched)>,
    pub rejects: Vec<(Timestamp, Reject)>,
    pub tally: EnrichTally,
    pub acks: Vec<Ack>,
}

/// Runs `script` on `workers` workers (worker 0 sends; both inputs start at
/// `start`), restored from `restored`, with a checkpoint request `checkpoint`.
pub fn run(
    script: &[Action],
    workers: usize,
    config: &EnrichConfig,
    start: Timestamp,
    restored: Option<Restored>,
    checkpoint: Option<Checkpoint>,
) -> Output {
    let out: Arc<Mutex<Output>> = Arc::default();
    let (script, config) = (script.to_vec(), config.clone());
    let restored = restored.map(Arc::new);
    let shared = out.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut readings = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let mut updates = InputHandle::<u64, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
        let mut control = InputHandle::<u64, CapacityContainerBuilder<Vec<Checkpoint>>>::new();
        let (o1, o2, o3, o4) = (
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
        );
        let with_checkpoints = restored.is_some() || checkpoint.is_some();
        worker.dataflow::<u64, _, _>(|scope| {
            let cks = with_checkpoints.then(|| {
                Checkpoints::new(
                    scope.input_from(&mut control),
                    restored.clone(),
                    index,
                    peers,
                )
            });
            let u = scope.input_from(&mut updates);
            let s = scope
                .input_from(&mut readings)
                .enrich("enrich", &u, &config, cks.as_ref())
                .expect("restores");
            s.enriched.inspect_core(move |e| {
                if let Ok((stamp, data)) = e {
                    let t = *stamp.least().expect("stamped");
                    let mut o = o1.lock().expect("lock");
                    o.enriched.extend(data.iter().map(|x| (t, x.clone())));
                }
            });
            s.rejects.inspect_core(move |e| {
                if let Ok((stamp, data)) = e {
                    let t = *stamp.least().expect("stamped");
                    let mut o = o2.lock().expect("lock");
                    o.rejects.extend(data.iter().map(|x| (t, x.clone())));
                }
            });
            s.tally
                .inspect(move |t| o3.lock().expect("lock").tally.merge(t));
            if let Some(cks) = cks {
                cks.acks()
                    .inspect(move |a| o4.lock().expect("lock").acks.push(a.clone()));
            }
        });
        readings.advance_to(start);
        updates.advance_to(start);
        control.advance_to(start);
        if let Some(ck) = checkpoint {
            // Every worker's operator gets the request (the coordinator
            // broadcasts it).
            control.send(ck);
        }
        drop(control);
        if index == 0 {
            for a in &script {
                match a {
                    Action::Reading(t, r) => {
                        if *t > *readings.time() {
                            readings.advance_to(*t);
                        }
                        readings.send(r.clone());
                    }
                    Action::Update(t, u) => {
                        if *t > *updates.time() {
                            updates.advance_to(*t);
                        }
                        updates.send(u.clone());
                    }
                    Action::AdvanceUpdates(t) => {
                        if *t > *updates.time() {
                            updates.advance_to(*t);
                        }
                    }
                    Action::Step => {
                        for _ in 0..3 {
                            worker.step();
                        }
                    }
                }
            }
        }
        drop(readings);
        drop(updates);
        while worker.step_or_park(None) {}
    })
    .expect("timely runs");
    std::mem::take(&mut *out.lock().expect("lock"))
}

/// An enriched reading as comparable text: stamp, reading, and the name of
/// the description it got (`-` for none).
pub fn render(t: Timestamp, e: &Enriched) -> String {
    let r = &e.reading;
    let info = e
        .info
        .as_ref()
        .map_or("-".to_owned(), |i| i.name.to_string());
    format!("{t} {} {} {} {} {info}", r.device, r.ts, r.metric, r.value)
}

/// A reject as comparable text: stamp, the reading from its raw JSON, and
/// its reason.
pub fn render_reject(t: Timestamp, rej: &Reject) -> String {
    let r: Reading = serde_json::from_slice(&rej.raw).expect("raw is the reading as JSON");
    format!(
        "{t} {} {} {} {} {} from {}",
        r.device,
        r.ts,
        r.metric,
        r.value,
        rej.reason.code(),
        rej.pos.source
    )
}

/// Sorted renderings of a run: (enriched, rejects).
pub fn rendered(o: &Output) -> (Vec<String>, Vec<String>) {
    let mut e: Vec<String> = o.enriched.iter().map(|(t, x)| render(*t, x)).collect();
    let mut r: Vec<String> = o
        .rejects
        .iter()
        .map(|(t, x)| render_reject(*t, x))
        .collect();
    e.sort();
    r.sort();
    (e, r)
}

/// The tally without the one count that depends on scheduling.
pub fn deterministic(t: &EnrichTally) -> EnrichTally {
    EnrichTally {
        waited: 0,
        ..t.clone()
    }
}
