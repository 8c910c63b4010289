//! The timely operator, step by step: readings wait for the registry's
//! frontier, meet updates the registry sent after them, and hold the output
//! frontier at their stamp meanwhile.

use std::sync::{Arc, Mutex};

use iotflow_enrich::{Enrich, EnrichConfig, EnrichTally};
use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

fn firmware(fw: &str) -> Option<Arc<DeviceInfo>> {
    let mut i = DeviceInfo::new("d-1", "acme", "pump");
    i.firmware = Some(fw.into());
    Some(Arc::new(i))
}

fn update(at: u64, seq: u64, fw: &str) -> DeviceUpdate {
    DeviceUpdate {
        at,
        seq,
        device: DeviceId::new("d-1"),
        info: firmware(fw),
    }
}

type Seen = Arc<Mutex<Vec<(u64, u64, String)>>>;

#[test]
fn readings_wait_for_the_registry_and_meet_updates_sent_after_them() {
    for workers in [1, 2] {
        let seen: Seen = Arc::default();
        let tallies: Arc<Mutex<EnrichTally>> = Arc::default();
        let (s, t) = (seen.clone(), tallies.clone());
        timely::execute(timely::Config::process(workers), move |worker| {
            let mut readings = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
            let mut updates =
                InputHandle::<u64, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
            let (s, t) = (s.clone(), t.clone());
            let seen = s.clone();
            let probe = worker.dataflow::<u64, _, _>(|scope| {
                let u = scope.input_from(&mut updates);
                let out = scope
                    .input_from(&mut readings)
                    .enrich("enrich", &u, &EnrichConfig::default(), None)
                    .expect("no restore");
                out.tally.inspect(move |x| t.lock().expect("lock").merge(x));
                out.enriched
                    .inspect_core(move |e| {
                        if let Ok((stamp, data)) = e {
                            let at = *stamp.least().expect("stamped");
                            s.lock().expect("lock").extend(data.iter().map(|e| {
                                let fw = e.info.as_ref().and_then(|i| i.firmware.clone());
                                (at, e.reading.ts, fw.unwrap_or_default().to_string())
                            }));
                        }
                    })
                    .probe()
                    .0
            });
            if worker.index() != 0 {
                return;
            }
            // The registry's snapshot; its frontier then stays at 2 000.
            updates.send(update(0, 1, "1.0"));
            updates.advance_to(2_000);
            // Readings at 1 000, 1 500, …, 5 000, stamped 500 behind.
            for ts in (1_000..=5_000).step_by(500) {
                readings.advance_to(ts - 500);
                readings.send(Reading::new("d-1", ts, "flow", 1.0));
            }
            readings.advance_to(6_000);
            // Until the output frontier reaches the first waiting reading
            // (ts 2 000, stamped 1 500), on whichever worker owns d-1.
            worker.step_while(|| probe.less_than(&1_500));
            for _ in 0..20 {
                worker.step();
            }
            {
                let got = seen.lock().expect("lock").clone();
                let ts: Vec<u64> = got.iter().map(|x| x.1).collect();
                assert_eq!(ts, [1_000, 1_500], "only what the registry covers");
                assert!(got.iter().all(|x| x.2 == "1.0" && x.0 == x.1 - 500));
                // The first waiting reading (ts 2 000) came in at 1 500:
                // the output frontier stays there.
                assert!(probe.less_equal(&1_500) && !probe.less_than(&1_500));
            }
            // Now the registry sends a change at 3 000, after the readings
            // it affects, and moves on.
            updates.advance_to(3_000);
            updates.send(update(3_000, 2, "2.0"));
            updates.advance_to(10_000);
            worker.step_while(|| probe.less_than(&6_000));
            let got = seen.lock().expect("lock").clone();
            let want: Vec<(u64, u64, String)> = (1_000..=5_000)
                .step_by(500)
                .map(|ts| {
                    (
                        ts - 500,
                        ts,
                        if ts < 3_000 { "1.0" } else { "2.0" }.to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                got, want,
                "each reading at its stamp, with the firmware of its time"
            );
            assert!(!probe.less_than(&6_000));
        })
        .expect("timely runs");
        let t = tallies.lock().expect("lock").clone();
        assert_eq!(
            (t.received, t.enriched, t.updates),
            (9, 9, 2),
            "{workers} workers"
        );
        assert_eq!(t.waited, 7, "2 000 … 5 000 waited");
        t.check_conservation().expect("balanced");
    }
}

#[test]
fn the_operator_ends_with_its_readings_while_the_registry_goes_on() {
    let tally: Arc<Mutex<Vec<EnrichTally>>> = Arc::default();
    let t = tally.clone();
    timely::execute(timely::Config::process(2), move |worker| {
        let mut readings = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let mut updates = InputHandle::<u64, CapacityContainerBuilder<Vec<DeviceUpdate>>>::new();
        let t = t.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let u = scope.input_from(&mut updates);
            let out = scope
                .input_from(&mut readings)
                .enrich("enrich", &u, &EnrichConfig::default(), None)
                .expect("no restore");
            out.tally
                .inspect(move |x| t.lock().expect("lock").push(x.clone()));
            out.enriched.probe().0
        });
        if worker.index() == 0 {
            updates.send(update(0, 1, "1.0"));
            readings.send(Reading::new("d-1", 10, "flow", 1.0));
        }
        updates.advance_to(100_000);
        drop(readings);
        while !probe.done() {
            worker.step();
        }
        // The registry keeps sending; nobody listens any more.
        updates.advance_to(200_000);
        if worker.index() == 0 {
            updates.send(update(250_000, 2, "2.0"));
        }
        for _ in 0..10 {
            worker.step();
        }
        drop(updates);
        while worker.step() {}
    })
    .expect("timely runs");
    let tallies = tally.lock().expect("lock");
    assert_eq!(
        tallies.len(),
        2,
        "one tally per worker, at the end of the readings"
    );
    let mut total = EnrichTally::default();
    tallies.iter().for_each(|t| total.merge(t));
    assert_eq!((total.received, total.enriched), (1, 1));
}
