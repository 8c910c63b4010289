//! The clock-skew guard in a dataflow: one device whose clock jumps a year
//! ahead must not close every window of the fleet (issue 4).
//!
//! A fleet of ten devices sends one reading a second for a minute, in time
//! order; one bad device sends a single reading a year ahead. Downstream of
//! the event-time source a minimal tumbling count (10 s windows, fired when
//! the frontier passes their end) shows what the watermark did. Each case
//! runs with 1 and 2 workers (devices split by index; the bad reading on
//! worker 0), with the bad reading in the middle of the input and as the very
//! first reading of its worker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use iotflow_core::codec::JsonDecoder;
use iotflow_core::context::JobContext;
use iotflow_core::event_time::{EventTimeConfig, Lateness, SkewPolicy, event_time_source};
use iotflow_core::source::MemorySource;
use iotflow_core::tally::Tally;
use iotflow_core::validate::Rules;
use iotflow_types::{Reading, Reject, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::generic::operator::Operator;

const YEAR: Timestamp = 365 * 24 * 3600 * 1000;
const WINDOW: Timestamp = 10_000;
const DEVICES: usize = 10;
const SECONDS: u64 = 60;
/// Where the bad device's reading goes: after the fleet's readings of this
/// second (0: before everything).
const MIDDLE: u64 = 20;

fn line(device: &str, ts: Timestamp) -> String {
    format!(r#"{{"device_id":"{device}","ts":{ts},"metric":"temp","value":21.5}}"#)
}

fn bad_line(bad_at: u64) -> String {
    line("d-bad", bad_at * 1000 + YEAR)
}

/// Every worker's input lines, in order.
fn inputs(workers: usize, bad_at: u64) -> Vec<Vec<String>> {
    let mut per = vec![Vec::new(); workers];
    if bad_at == 0 {
        per[0].push(bad_line(bad_at));
    }
    for s in 1..=SECONDS {
        for d in 0..DEVICES {
            per[d % workers].push(line(&format!("d-{d:02}"), s * 1000));
        }
        if s == bad_at {
            per[0].push(bad_line(bad_at));
        }
    }
    per
}

/// The fleet's readings per window, all of them on time.
fn full_windows() -> BTreeMap<Timestamp, u64> {
    let mut w = BTreeMap::new();
    for s in 1..=SECONDS {
        *w.entry(s * 1000 / WINDOW * WINDOW).or_default() += DEVICES as u64;
    }
    w
}

#[derive(Debug, Default)]
struct Run {
    /// Window start → readings counted, as windows fired.
    windows: BTreeMap<Timestamp, u64>,
    late: Vec<Reading>,
    rejects: Vec<Reject>,
    /// Every on-time reading of the bad device.
    bad_kept: Vec<Reading>,
    tally: Tally,
}

fn run(workers: usize, bad_at: u64, config: EventTimeConfig) -> Run {
    let inputs = Arc::new(inputs(workers, bad_at));
    let out = Arc::new(Mutex::new(Run::default()));
    let sink = out.clone();
    let ctx = JobContext::new();
    let job_ctx = ctx.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let source = MemorySource::from_lines(&format!("worker-{index}"), &inputs[index], 4);
        let (out, config, ctx) = (sink.clone(), config.clone(), job_ctx.clone());
        worker.dataflow::<Timestamp, _, _>(move |scope| {
            let s = event_time_source(
                scope,
                "source",
                Box::new(source),
                Box::new(JsonDecoder::new()),
                Rules::fleet_default(),
                config,
                ctx,
            );
            let o = out.clone();
            s.late.inspect(move |r| {
                o.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .late
                    .push(r.reading.clone())
            });
            let o = out.clone();
            s.rejects.inspect(move |r| {
                o.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .rejects
                    .push(r.clone())
            });
            let o = out.clone();
            s.tally.inspect(move |t| {
                o.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .tally
                    .merge(t)
            });
            let o = out.clone();
            let readings = s.readings.inspect(move |r| {
                if r.device.as_str() == "d-bad" {
                    o.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .bad_kept
                        .push(r.clone());
                }
            });
            // A minimal tumbling count on worker 0: a window fires when the
            // frontier (the fleet's watermark + 1) passes its last ms.
            readings.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|_: &Reading| 0),
                "count",
                move |_cap, _info| {
                    let mut open: BTreeMap<Timestamp, u64> = BTreeMap::new();
                    move |(input, frontier), _output| {
                        input.for_each(|_time, data| {
                            for r in data.drain(..) {
                                *open.entry(r.ts - r.ts % WINDOW).or_default() += 1;
                            }
                        });
                        let f = frontier.frontier().iter().min().copied();
                        let done = |start: Timestamp| f.is_none_or(|f| f > start + WINDOW - 1);
                        while let Some((&start, &n)) = open.first_key_value() {
                            if !done(start) {
                                break;
                            }
                            open.remove(&start);
                            let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
                            assert!(o.windows.insert(start, n).is_none(), "fired twice");
                        }
                    }
                },
            );
        });
    })
    .expect("timely runs");
    assert!(ctx.failures().is_empty(), "{:?}", ctx.failures());
    let run = std::mem::take(&mut *out.lock().unwrap_or_else(PoisonError::into_inner));
    // Nothing lost: every line is a valid reading or a reject, every valid
    // reading fired in a window or is late.
    let t = &run.tally;
    assert_eq!(t.lines, (DEVICES as u64) * SECONDS + 1);
    t.check_conservation(false)
        .expect("lines = valid + rejected");
    assert_eq!(t.rejected_total(), run.rejects.len() as u64);
    assert_eq!(t.late, run.late.len() as u64);
    assert_eq!(run.windows.values().sum::<u64>() + t.late, t.valid);
    run
}

fn config() -> EventTimeConfig {
    EventTimeConfig::default()
        .with_max_disorder(Duration::from_millis(2000))
        .with_lateness(Lateness::Window {
            size_ms: WINDOW,
            allowed_ms: 0,
        })
}

fn guarded(policy: SkewPolicy) -> EventTimeConfig {
    config()
        .with_max_skew(Duration::from_secs(5))
        .with_skew_policy(policy)
}

fn cases() -> impl Iterator<Item = (usize, u64)> {
    [1, 2]
        .into_iter()
        .flat_map(|w| [MIDDLE, 0].map(move |b| (w, b)))
}

#[test]
fn without_the_guard_one_device_closes_every_window() {
    for (workers, bad_at) in cases() {
        let run = run(workers, bad_at, config());
        // Every later reading of the bad reading's worker is late: its
        // frontier jumped a year ahead.
        let behind = inputs(workers, bad_at)[0]
            .iter()
            .skip_while(|l| !l.contains("d-bad"))
            .skip(1)
            .count();
        assert_eq!(run.late.len(), behind, "{workers} workers, bad at {bad_at}");
        assert!(run.late.len() >= 200);
        assert!(run.rejects.is_empty());
        // So the fleet's windows fired without them.
        let full = full_windows();
        let fired_short = full
            .iter()
            .filter(|(s, n)| run.windows.get(s) < Some(n))
            .count();
        assert!(fired_short >= 4, "{:?}", run.windows);
        // And the bad reading opened a window a year ahead.
        assert_eq!(run.bad_kept.len(), 1);
        assert_eq!(run.tally.valid, run.tally.lines);
    }
}

#[test]
fn reject_keeps_the_fleet_on_time() {
    for (workers, bad_at) in cases() {
        let run = run(workers, bad_at, guarded(SkewPolicy::Reject));
        assert!(run.late.is_empty(), "{workers} workers, bad at {bad_at}");
        assert_eq!(run.windows, full_windows(), "every window complete");
        assert!(run.bad_kept.is_empty());
        assert_eq!(run.rejects.len(), 1);
        let rej = &run.rejects[0];
        assert_eq!(rej.reason.code(), "future_timestamp");
        assert_eq!(rej.raw, bad_line(bad_at).into_bytes(), "raw bytes kept");
        assert_eq!(&*rej.pos.source, "worker-0");
        assert_eq!(run.tally.rejected.get("future_timestamp"), Some(&1));
    }
}

#[test]
fn clamp_keeps_the_reading_at_the_bound() {
    for (workers, bad_at) in cases() {
        let run = run(workers, bad_at, guarded(SkewPolicy::Clamp));
        assert!(run.late.is_empty(), "{workers} workers, bad at {bad_at}");
        assert!(run.rejects.is_empty());
        // Kept, with its time clamped to the worker's reference + 5 s: its
        // max event time in the middle, the bootstrap median at the start.
        let reference = if bad_at == 0 { 1000 } else { bad_at * 1000 };
        assert_eq!(run.bad_kept.len(), 1);
        assert_eq!(run.bad_kept[0].ts, reference + 5000);
        let mut want = full_windows();
        *want
            .entry(reference + 5000 - (reference + 5000) % WINDOW)
            .or_default() += 1;
        assert_eq!(run.windows, want);
        assert_eq!(run.tally.valid, run.tally.lines);
    }
}
