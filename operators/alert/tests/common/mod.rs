//! Drives the lifecycle operator in a timely dataflow from a script of
//! frontier advances and signals.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use iotflow_alert::{AlertEvent, AlertPolicy, AlertTally, Alerting, Severity, Signal};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

/// One step of a script, run by worker 0.
#[derive(Clone, Debug)]
pub enum Step {
    /// Moves the input frontier (the watermark + 1) to this time and lets
    /// the dataflow catch up.
    Advance(u64),
    /// Sends a signal at the current input time.
    Send(Signal),
}

/// `Step::Send` of a signal with default evidence.
pub fn sig(device: &str, rule: &str, ts: u64, severity: Severity) -> Step {
    Step::Send(Signal::new(device, rule, ts, severity))
}

/// What a run produced: events with the time they were stamped at, the
/// operator's tally summed over workers, and after each `Advance` how many
/// events had been emitted (by all workers) while the input was still open.
#[derive(Debug)]
pub struct Run {
    pub events: Vec<(u64, AlertEvent)>,
    pub tally: AlertTally,
    pub seen: Vec<(u64, usize)>,
}

/// Runs `script` on `workers` workers; events in the order each worker
/// emitted them (workers interleaved).
pub fn run(policy: &AlertPolicy, script: &[Step], workers: usize) -> Run {
    let events: Arc<Mutex<Vec<(u64, AlertEvent)>>> = Arc::default();
    let tally: Arc<Mutex<AlertTally>> = Arc::default();
    let seen: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let (policy, script) = (policy.clone(), script.to_vec());
    let (events_w, tally_w, seen_w) = (events.clone(), tally.clone(), seen.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Signal>>>::new();
        let (events, tally) = (events_w.clone(), tally_w.clone());
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let streams = scope
                .input_from(&mut input)
                .alerts("alerts", &policy, None)
                .expect("valid policy");
            streams
                .tally
                .inspect(move |t| tally.lock().expect("lock").merge(t));
            let sink = events.clone();
            let (probe, _) = streams
                .events
                .inspect_core(move |e| {
                    if let Ok((stamp, data)) = e {
                        let t = *stamp.least().expect("stamped");
                        let mut sink = sink.lock().expect("lock");
                        sink.extend(data.iter().map(|a| (t, a.clone())));
                    }
                })
                .probe();
            probe
        });
        if worker.index() == 0 {
            for step in &script {
                match step {
                    Step::Advance(t) => {
                        if *t > *input.time() {
                            input.advance_to(*t);
                        }
                        worker.step_while(|| probe.less_than(input.time()));
                        let n = events.lock().expect("lock").len();
                        seen_w.lock().expect("lock").push((*t, n));
                    }
                    Step::Send(s) => input.send(s.clone()),
                }
            }
        }
        drop(input);
        while worker.step_or_park(None) {}
    })
    .expect("timely runs");
    Run {
        events: take(&events),
        tally: take(&tally),
        seen: take(&seen),
    }
}

/// Sorts events by key, time and content: the order is a function of the
/// input, whatever the number of workers.
pub fn sorted(mut events: Vec<AlertEvent>) -> Vec<AlertEvent> {
    events.sort_by(|a, b| {
        (
            &a.device,
            &a.rule,
            a.at,
            a.transition,
            a.severity,
            a.signals,
        )
            .cmp(&(
                &b.device,
                &b.rule,
                b.at,
                b.transition,
                b.severity,
                b.signals,
            ))
    });
    events
}

fn take<T: Default>(m: &Mutex<T>) -> T {
    std::mem::take(&mut *m.lock().expect("lock"))
}
