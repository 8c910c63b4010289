//! Shared helpers of the server tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};

use iotflow_core::source::{Chunk, Position, Resume};
use iotflow_kinesis::testing;
use iotflow_kinesis::{KinesisSource, KinesisSourceConfig};

/// The server URL in `var`, or `None` after saying the test is skipped.
pub fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: set {var} (see .ci/services.sh)");
            None
        }
    }
}

/// Reading number `n` of device `d{n % devices}` in the wire format
/// (`device_id`, `ts` = `n`), so per-key order is checkable.
pub fn readings(from: u64, to: u64, devices: u64) -> Vec<String> {
    (from..to)
        .map(|n| {
            format!(
                r#"{{"device_id":"d{}","ts":{n},"metric":"temp","value":{}}}"#,
                n % devices,
                (n / devices) % 100
            )
        })
        .collect()
}

/// `(device, ts)` of a line written by [`readings`].
pub fn id_of(line: &str) -> (String, u64) {
    let v: serde_json::Value = serde_json::from_str(line).expect("test line is JSON");
    (
        v["device_id"]
            .as_str()
            .or_else(|| v["device"].as_str())
            .expect("device")
            .to_owned(),
        v["ts"].as_u64().expect("ts"),
    )
}

/// Asserts `lines` are exactly `expected`, each once.
pub fn assert_exactly(lines: &[String], expected: &[String]) {
    let mut seen = BTreeSet::new();
    for l in lines {
        assert!(seen.insert(l.clone()), "duplicate record {l}");
    }
    let want: BTreeSet<String> = expected.iter().cloned().collect();
    let missing: Vec<_> = want.difference(&seen).take(5).collect();
    let extra: Vec<_> = seen.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} records, {} expected; missing {missing:?}, unexpected {extra:?}",
        lines.len(),
        expected.len()
    );
}

/// Asserts each device's readings come in increasing `ts` order.
pub fn assert_per_key_order(lines: &[String]) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines {
        let (d, ts) = id_of(l);
        if let Some(prev) = last.insert(d.clone(), ts) {
            assert!(prev < ts, "device {d}: ts {ts} after {prev}");
        }
    }
}

/// The last position of each partition in `chunks` (what a checkpoint
/// taken after them would hold).
pub fn positions(chunks: &[Chunk]) -> Vec<Resume> {
    let mut last: BTreeMap<String, Resume> = BTreeMap::new();
    for c in chunks {
        if let Some(r) = &c.resume {
            last.insert(r.partition.to_string(), r.clone());
        }
    }
    last.into_values().collect()
}

/// Checks the protocol of one worker's chunks: a partition is announced
/// (empty chunk, no position) before its data, carries sequence positions,
/// and nothing follows its `Done`. Returns partitions in announcement order.
pub fn check_protocol(chunks: &[Chunk]) -> Vec<String> {
    let mut announced = Vec::new();
    let mut done = BTreeSet::new();
    for c in chunks {
        let key = c.source.to_string();
        assert!(!done.contains(&key), "{key}: chunk after Done");
        match (&c.resume, c.data.is_empty()) {
            (None, true) => {
                assert!(!announced.contains(&key), "{key} announced twice");
                announced.push(key);
            }
            (Some(r), false) => {
                assert!(
                    announced.contains(&key),
                    "{key}: data before its announcement"
                );
                assert_eq!(r.partition.as_ref(), key.as_str());
                assert!(matches!(r.position, Position::Sequence(_)), "{r:?}");
            }
            (Some(r), true) => {
                assert_eq!(r.position, Position::Done, "{key}: empty chunk with {r:?}");
                done.insert(key);
            }
            (None, false) => panic!("{key}: data without a position"),
        }
    }
    announced
}

/// Runs `peers` sources over `stream` (one thread each) to their end and
/// returns each worker's chunks.
pub fn run_workers(
    config: &KinesisSourceConfig,
    peers: usize,
    resume: &[Resume],
) -> Vec<Vec<Chunk>> {
    let handles: Vec<_> = (0..peers)
        .map(|w| {
            let source =
                KinesisSource::new(config.clone(), w, peers, resume.to_vec()).expect("source");
            std::thread::spawn(move || testing::collect(source, None).expect("source ran"))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect()
}

/// The shard id of a partition key `kinesis:{stream}/{shard}`.
pub fn shard_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
