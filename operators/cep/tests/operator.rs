//! The timely operator: absences fire on frontier progress alone (idle
//! keys), late events leave on their own output, and the tally accounts for
//! every event.

use std::sync::{Arc, Mutex};

use iotflow_cep::{Cep, CepTally, Pattern};
use iotflow_types::{Alert, Reading};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::{Input, Inspect, Probe};

fn door_open_too_long() -> Pattern<Reading> {
    Pattern::begin("open")
        .filter(|r: &Reading| r.metric.as_str() == "door" && r.value == 1.0)
        .not_followed_by("closed")
        .filter(|r| r.metric.as_str() == "door" && r.value == 0.0)
        .within_ms(300_000)
        .build()
        .expect("valid")
}

#[test]
fn absence_fires_when_the_frontier_passes_the_deadline_with_the_key_idle() {
    for workers in [1, 2] {
        let alerts: Arc<Mutex<Vec<(u64, Alert)>>> = Arc::default();
        let late: Arc<Mutex<Vec<Reading>>> = Arc::default();
        let tallies: Arc<Mutex<Vec<CepTally>>> = Arc::default();
        let (a, l, t) = (alerts.clone(), late.clone(), tallies.clone());
        timely::execute(timely::Config::process(workers), move |worker| {
            let pattern = door_open_too_long();
            let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
            let (a, l, t) = (a.clone(), l.clone(), t.clone());
            let seen = a.clone();
            let probe = worker.dataflow::<u64, _, _>(|scope| {
                let s = scope
                    .input_from(&mut input)
                    .match_pattern(
                        "door",
                        &pattern,
                        |r: &Reading| r.device.clone(),
                        |k, m| Alert {
                            device: k.clone(),
                            metric: "door".into(),
                            ts: m.get("open")[0].ts,
                            value: 1.0,
                            score: 0.0,
                            detector: "door-open-too-long".into(),
                        },
                        None,
                    )
                    .expect("no restore");
                s.late
                    .inspect(move |r| l.lock().expect("lock").push(r.clone()));
                s.tally
                    .inspect(move |x| t.lock().expect("lock").push(x.clone()));
                s.matches
                    .inspect_core(move |ev| {
                        if let Ok((stamp, data)) = ev {
                            let time = stamp.least().copied().unwrap_or_default();
                            let mut a = a.lock().expect("lock");
                            a.extend(data.iter().map(|x: &Alert| (time, x.clone())));
                        }
                    })
                    .probe()
                    .0
            });
            let lead = worker.index() == 0;
            if lead {
                input.send(Reading::new("door-1", 1_000, "door", 1.0));
                input.send(Reading::new("door-2", 2_000, "door", 1.0));
                input.send(Reading::new("door-2", 50_000, "door", 0.0));
            }
            // Only another device's readings move the frontier on; door-1 is idle.
            for ts in (10_000..=400_000).step_by(10_000) {
                input.advance_to(ts);
                if lead {
                    input.send(Reading::new("thermo", ts, "temp", 20.0));
                }
                worker.step_while(|| probe.less_than(input.time()));
                if ts == 300_000 {
                    // Frontier at 300 s: door-1's deadline (301 s) not yet passed.
                    assert!(seen.lock().expect("lock").is_empty());
                }
            }
            // The input is still open: the alert came from frontier progress.
            if lead {
                let got = seen.lock().expect("lock").clone();
                assert_eq!(got.len(), 1, "{got:?}");
                assert_eq!(got[0].1.device.as_str(), "door-1");
                assert_eq!(got[0].0, 301_000, "stamped at the deadline");
                // A reading behind the frontier is late.
                input.send(Reading::new("door-3", 5_000, "door", 1.0));
            }
            drop(input);
            while worker.step() {}
        })
        .expect("timely runs");
        assert_eq!(alerts.lock().expect("lock").len(), 1, "{workers} workers");
        assert_eq!(late.lock().expect("lock").len(), 1);
        let mut total = CepTally::default();
        for t in tallies.lock().expect("lock").iter() {
            total.merge(t);
        }
        assert_eq!(total.received, 3 + 40 + 1);
        assert_eq!(total.events + total.late + total.overflow, total.received);
        assert_eq!((total.matches, total.late), (1, 1));
    }
}
