//! Early firing: partial results paced by an injected processing-time
//! clock, marked `partial`, followed by the window's final result.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotflow_core::clock::ManualClock;
use iotflow_types::{Reading, ResultKind, WindowResult};
use iotflow_window::{StatsAggregate, WindowOptions, WindowSpec, Windowed};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

type Seen = Arc<Mutex<Vec<(ResultKind, u64, u64)>>>;

#[test]
fn partials_follow_the_clock_and_the_final_result_closes_the_window() {
    let clock = ManualClock::default();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    timely::execute_directly(move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let options = WindowOptions::default()
                .early_every(Duration::from_secs(1))
                .with_clock(Arc::new(clock.clone()));
            let seen = seen2.clone();
            scope
                .input_from(&mut input)
                .window_with(
                    "early",
                    &WindowSpec::tumbling(10_000),
                    |r: &Reading| r.device.clone(),
                    StatsAggregate,
                    &options,
                    None,
                )
                .expect("no restore")
                .windows
                .inspect(move |w: &WindowResult<_>| {
                    seen.lock()
                        .expect("lock")
                        .push((w.kind, w.start, w.stats.count))
                })
                .probe_with(&probe);
        });
        let mut settle = |input: &mut InputHandle<u64, _>, to: u64| {
            input.advance_to(to);
            worker.step_while(|| probe.less_than(input.time()));
        };
        let taken = |seen: &Seen| seen.lock().expect("lock").clone();

        input.send(Reading::new("d-1", 1_000, "temp", 1.0));
        input.send(Reading::new("d-1", 2_000, "temp", 2.0));
        settle(&mut input, 3_001);
        assert!(taken(&seen2).is_empty(), "no partial before the period");

        clock.advance(Duration::from_millis(1_000));
        settle(&mut input, 3_002);
        assert_eq!(taken(&seen2), [(ResultKind::Partial, 0, 2)]);

        // Half a period later: nothing new.
        clock.advance(Duration::from_millis(500));
        input.send(Reading::new("d-1", 5_000, "temp", 3.0));
        settle(&mut input, 6_000);
        assert_eq!(taken(&seen2).len(), 1);

        clock.advance(Duration::from_millis(600));
        settle(&mut input, 6_001);
        assert_eq!(taken(&seen2)[1], (ResultKind::Partial, 0, 3));

        // The watermark passes the window's end: its final result.
        input.send(Reading::new("d-1", 12_000, "temp", 4.0));
        settle(&mut input, 10_001);
        assert_eq!(taken(&seen2)[2], (ResultKind::Final, 0, 3));
        assert_eq!(taken(&seen2).len(), 3);

        // The next window's partial.
        clock.advance(Duration::from_millis(1_000));
        settle(&mut input, 12_001);
        assert_eq!(taken(&seen2)[3], (ResultKind::Partial, 10_000, 1));
    });
    let all = seen.lock().expect("lock").clone();
    assert_eq!(all.last(), Some(&(ResultKind::Final, 10_000, 1)), "{all:?}");
}
