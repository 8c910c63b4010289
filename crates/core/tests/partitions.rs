//! Per-partition watermarks: a source reading several partitions at once
//! holds the watermark at the slowest one; a finished partition stops
//! holding it; with an idle timeout a quiet partition stops holding it too
//! and rejoins with its next chunk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotflow_core::bridge::BridgeSender;
use iotflow_core::codec::JsonDecoder;
use iotflow_core::context::JobContext;
use iotflow_core::event_time::{EventTimeConfig, event_time_source};
use iotflow_core::source::{Chunk, Position, Resume, Source};
use iotflow_core::validate::Rules;
use iotflow_types::{LateReading, Reading};
use timely::dataflow::operators::Inspect;

/// A chunk of partition `p` with one reading per `ts` (empty: announces `p`).
fn chunk(p: &str, ts: &[u64], last: bool) -> Chunk {
    let mut data = Vec::new();
    for t in ts {
        data.extend_from_slice(
            format!(r#"{{"device_id":"{p}","ts":{t},"metric":"temp","value":20.0}}"#).as_bytes(),
        );
        data.push(b'\n');
    }
    Chunk {
        source: Arc::from(p),
        offset: 0,
        data,
        resume: Some(Resume {
            partition: Arc::from(p),
            position: if last {
                Position::Done
            } else {
                Position::Offset(ts.last().copied().unwrap_or(0))
            },
        }),
    }
}

/// The empty chunk that says partition `p` is read to its end.
fn done(p: &str) -> Chunk {
    Chunk {
        resume: Some(Resume {
            partition: Arc::from(p),
            position: Position::Done,
        }),
        ..chunk(p, &[], false)
    }
}

/// Sends its chunks in order, sleeping where a `None` stands.
struct Scripted(Vec<Option<Chunk>>, Duration);

impl Source for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn run(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> iotflow_core::Result<()> {
        for c in self.0.drain(..) {
            match c {
                Some(c) => {
                    if out.send_blocking(Ok(c)).is_err() {
                        break;
                    }
                }
                None => std::thread::sleep(self.1),
            }
        }
        Ok(())
    }
}

/// (device, ts) of readings.
type Seen = Vec<(String, u64)>;

/// On-time and late readings.
fn run(script: Vec<Option<Chunk>>, pause: Duration, config: EventTimeConfig) -> (Seen, Seen) {
    let ok = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(Mutex::new(Vec::new()));
    let (ok2, late2) = (ok.clone(), late.clone());
    timely::execute_directly(move |worker| {
        let script = Scripted(script, pause);
        worker.dataflow::<u64, _, _>(|scope| {
            let s = event_time_source(
                scope,
                "src",
                Box::new(script),
                Box::new(JsonDecoder::new()),
                Rules::fleet_default(),
                config,
                JobContext::new(),
            );
            let ok = ok2.clone();
            s.readings.inspect(move |r: &Reading| {
                ok.lock().expect("lock").push((r.device.to_string(), r.ts));
            });
            let late = late2.clone();
            s.late.inspect(move |l: &LateReading| {
                late.lock()
                    .expect("lock")
                    .push((l.reading.device.to_string(), l.reading.ts));
            });
        });
    });
    let ok = ok.lock().expect("lock").clone();
    let late = late.lock().expect("lock").clone();
    (ok, late)
}

fn config() -> EventTimeConfig {
    EventTimeConfig::default().with_max_disorder(Duration::from_millis(1_000))
}

#[test]
fn the_slowest_partition_holds_the_watermark() {
    // Partition "a" runs 100 s ahead of "b"; both are announced first.
    let mut script = vec![Some(chunk("a", &[], false)), Some(chunk("b", &[], false))];
    for i in 0..10u64 {
        script.push(Some(chunk(
            "a",
            &[100_000 + i * 1_000, 100_500 + i * 1_000],
            false,
        )));
        script.push(Some(chunk("b", &[i * 1_000, 500 + i * 1_000], false)));
    }
    let (ok, late) = run(script, Duration::ZERO, config());
    assert!(late.is_empty(), "late: {late:?}");
    assert_eq!(ok.len(), 40);
}

#[test]
fn one_watermark_would_have_made_the_slow_partition_late() {
    // The same input without partitions (one partition): "b" is late.
    let mut script = Vec::new();
    for i in 0..10u64 {
        let mut a = chunk("a", &[100_000 + i * 1_000, 100_500 + i * 1_000], false);
        let mut b = chunk("b", &[i * 1_000, 500 + i * 1_000], false);
        a.resume = None;
        b.resume = None;
        script.push(Some(a));
        script.push(Some(b));
    }
    let (_, late) = run(script, Duration::ZERO, config());
    assert_eq!(late.len(), 20);
}

#[test]
fn a_finished_partition_stops_holding_the_watermark() {
    let script = vec![
        Some(chunk("a", &[], false)),
        Some(chunk("b", &[], false)),
        Some(chunk("b", &[1_000, 2_000], false)),
        Some(done("b")),
        Some(chunk("a", &[50_000, 60_000], false)),
        // Behind "a" by far more than the disorder: late now that "b" is done.
        Some(chunk("a", &[10_000], false)),
    ];
    let (ok, late) = run(script, Duration::ZERO, config());
    assert_eq!(late, vec![("a".to_owned(), 10_000)]);
    assert_eq!(ok.len(), 4);
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_and_rejoins() {
    let idle = EventTimeConfig {
        idle_timeout_ms: Some(40),
        ..config()
    };
    // "b" sends once, then nothing for a while; "a" goes on.
    let script = vec![
        Some(chunk("a", &[], false)),
        Some(chunk("b", &[1_000], false)),
        Some(chunk("a", &[20_000], false)),
        None,
        None,
        Some(chunk("a", &[30_000], false)),
        // "b" returns: behind the watermark "a" moved alone (late), and
        // ahead of it (on time).
        Some(chunk("b", &[5_000, 40_000], false)),
    ];
    let (ok, late) = run(script.clone(), Duration::from_millis(60), idle);
    assert_eq!(late, vec![("b".to_owned(), 5_000)]);
    assert_eq!(ok.len(), 4);
    // Without the timeout, "b" holds the watermark and nothing is late.
    let (ok, late) = run(script, Duration::from_millis(60), config());
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(ok.len(), 5);
}
