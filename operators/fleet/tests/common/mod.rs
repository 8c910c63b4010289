//! Runs the presence operator on a script of timely inputs, with any
//! number of workers, and collects what it emits.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};

use iotflow_fleet::{LastSeen, Presence, PresenceConfig, PresenceEvent, PresenceTally};
use iotflow_types::{DeviceUpdate, Reading, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

/// One step of an input script (worker 0 sends; every worker advances).
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Moves both inputs to this time and runs until the outputs caught up.
    Advance(Timestamp),
    /// Sends a reading at the current input time.
    Reading(Reading),
    /// Sends a registry update at the current input time.
    Update(DeviceUpdate),
}

/// What a run emitted.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Events with the time they were stamped at and the input time of
    /// the first `Advance` after which they had been emitted (`None`:
    /// only after the input ended).
    pub(crate) events: Vec<(Timestamp, PresenceEvent, Option<Timestamp>)>,
    /// Last-seen records with their stamps.
    pub(crate) last_seen: Vec<(Timestamp, LastSeen)>,
    /// Late readings.
    pub(crate) late: Vec<Reading>,
    /// Every worker's tally, summed.
    pub(crate) tally: PresenceTally,
}

impl Run {
    /// The events without stamps, sorted by device, time and kind.
    pub(crate) fn sorted_events(&self) -> Vec<PresenceEvent> {
        let mut out: Vec<PresenceEvent> = self.events.iter().map(|(_, e, _)| e.clone()).collect();
        out.sort();
        out
    }

    /// The last-seen records without stamps, sorted.
    pub(crate) fn sorted_last_seen(&self) -> Vec<LastSeen> {
        let mut out: Vec<LastSeen> = self.last_seen.iter().map(|(_, l)| l.clone()).collect();
        out.sort();
        out
    }
}

/// Runs `script` on `workers` workers (with a registry input if
/// `registry`).
pub(crate) fn run(config: &PresenceConfig, script: &[Step], workers: usize, registry: bool) -> Run {
    let out: Arc<Mutex<Run>> = Arc::default();
    let (config, script) = (config.clone(), script.to_vec());
    let shared = out.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut readings = InputHandle::<Timestamp, CapacityContainerBuilder<Vec<Reading>>>::new();
        let mut updates =
            InputHandle::<Timestamp, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
        let (ev, ls, late, ta) = (
            shared.clone(),
            shared.clone(),
            shared.clone(),
            shared.clone(),
        );
        let probe = worker.dataflow::<Timestamp, _, _>(|scope| {
            let registry = registry.then(|| scope.input_from(&mut updates));
            let s = scope
                .input_from(&mut readings)
                .presence("presence", &config, registry, None)
                .expect("valid config");
            s.late
                .inspect(move |r| late.lock().expect("lock").late.push(r.clone()));
            s.tally
                .inspect(move |t| ta.lock().expect("lock").tally.merge(t));
            s.last_seen.inspect_core(move |e| {
                if let Ok((st, data)) = e {
                    let t = *st.least().expect("stamped");
                    let mut run = ls.lock().expect("lock");
                    run.last_seen.extend(data.iter().map(|l| (t, l.clone())));
                }
            });
            s.events
                .inspect_core(move |e| {
                    if let Ok((st, data)) = e {
                        let t = *st.least().expect("stamped");
                        let mut run = ev.lock().expect("lock");
                        run.events.extend(data.iter().map(|x| (t, x.clone(), None)));
                    }
                })
                .probe()
                .0
        });
        let lead = worker.index() == 0;
        for step in &script {
            match step {
                Step::Advance(t) => {
                    if *t > *readings.time() {
                        readings.advance_to(*t);
                        updates.advance_to(*t);
                    }
                    worker.step_while(|| probe.less_than(readings.time()));
                    if lead {
                        let mut run = shared.lock().expect("lock");
                        for e in run.events.iter_mut().filter(|e| e.2.is_none()) {
                            e.2 = Some(*t);
                        }
                    }
                }
                Step::Reading(r) if lead => readings.send(r.clone()),
                Step::Update(u) if lead => updates.send(u.clone()),
                _ => {}
            }
        }
        drop(readings);
        drop(updates);
        while worker.step() {}
    })
    .expect("timely runs");
    std::mem::take(&mut *out.lock().expect("lock"))
}

/// A script from `(stamp, step)` pairs in sending order (stamps never
/// decrease).
pub(crate) fn script(items: impl IntoIterator<Item = (Timestamp, Step)>) -> Vec<Step> {
    let mut out = Vec::new();
    let mut now = 0;
    for (t, s) in items {
        if t > now {
            out.push(Step::Advance(t));
            now = t;
        }
        out.push(s);
    }
    out
}
