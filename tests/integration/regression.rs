//! Regression tests named after what broke.

use std::sync::mpsc;
use std::time::Duration;

use iotflow_core::event_time::EventTimeConfig;
use iotflow_testing::harness::{Harness, SourceOnly};

/// Runs `f` on a thread; fails if it takes longer than `limit` (the stuck
/// thread is leaked, the test binary still ends).
fn within<F: FnOnce() + Send + 'static>(limit: Duration, f: F) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("hung for more than {limit:?}"));
}

/// `BridgeSender::drop` (crates/core/src/bridge.rs) used to poke the worker's
/// activator *before* its `tx` field is dropped. When the source operator runs
/// in between, it sees `Recv::Empty` (not `Closed`), is never activated again
/// and the dataflow never finishes. Most likely with an empty input (the I/O
/// thread ends at once), e.g. 2 workers where worker 1 has no lines.
#[test]
fn source_with_empty_input_always_finishes() {
    // Busy threads make the race window likely even on an idle machine.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let _stop_spinners = StopOnDrop(stop);
    within(Duration::from_secs(20), || {
        for _ in 0..300 {
            let line = r#"{"device_id":"d-1","ts":1,"metric":"temp","value":1}"#.to_owned();
            let got =
                Harness::new(EventTimeConfig::default()).run(vec![vec![line], vec![]], SourceOnly);
            assert_eq!(got.tally.lines, 1);
        }
    });
    drop(_stop_spinners);
    for s in spinners {
        let _ = s.join();
    }
}

struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
