//! Against a real Kafka-protocol broker (tansu on 127.0.0.1:9092, started by
//! `.ci/services.sh`): set `IOTFLOW_TEST_KAFKA_BROKERS`, otherwise every
//! test prints why it skipped and passes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotflow_core::bridge::bridge;
use iotflow_core::context::JobContext;
use iotflow_core::sink::Sink;
use iotflow_core::source::{Chunk, Commits, Position, Resume, Source};
use iotflow_kafka::testing::{self, Keying};
use iotflow_kafka::{
    Compression, KafkaRawSink, KafkaSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig,
    RawRecord, StartFrom,
};
use iotflow_types::Reading;

fn readings(n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading::new(&format!("dev-{}", i % 37), i as u64, "temp", i as f64 / 4.0))
        .collect()
}

fn json(r: &Reading) -> Vec<u8> {
    serde_json::to_vec(r).expect("kafka")
}

/// Produces `rs` with the JSON sink keyed by device.
fn produce(brokers: &str, topic: &str, rs: &[Reading]) {
    let mut sink =
        KafkaSink::<Reading>::keyed_by_device(KafkaSinkConfig::new(brokers, topic)).expect("kafka");
    for batch in rs.chunks(100) {
        sink.write(batch).expect("kafka");
    }
    sink.close().expect("kafka");
    let stats = sink.stats();
    assert_eq!(
        stats.delivered.load(std::sync::atomic::Ordering::Relaxed),
        rs.len() as u64
    );
    assert_eq!(stats.failed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

fn bounded(brokers: &str, topic: &str) -> KafkaSourceConfig {
    KafkaSourceConfig {
        start: StartFrom::Earliest,
        stop_at_end: true,
        ..KafkaSourceConfig::new(brokers, &[topic])
    }
}

/// Runs a source to its end on a thread; returns every chunk it sent.
fn run_to_end(mut source: KafkaSource) -> JoinHandle<Vec<Chunk>> {
    std::thread::spawn(move || read_to_end(&mut source))
}

/// Runs `source` on this thread and drops its channel, as the event-time
/// source does before calling `finish`; returns every chunk.
fn read_to_end(source: &mut KafkaSource) -> Vec<Chunk> {
    let (tx, mut rx) = bridge::<iotflow_core::Result<Chunk>>(8, None);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(c) = rx.recv_blocking() {
            got.push(c.expect("chunk"));
        }
        got
    });
    source.run(&tx).expect("source run");
    drop(tx);
    reader.join().expect("kafka")
}

/// Lines of the data chunks, and checks the announce → data → Done order
/// of every partition; returns lines per partition key.
fn lines_by_partition(chunks: &[Chunk]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut state: HashMap<String, u8> = HashMap::new(); // 1 announced, 2 done
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut next: HashMap<String, u64> = HashMap::new();
    for c in chunks {
        let key = c.source.to_string();
        let st = state.get(&key).copied().unwrap_or(0);
        if c.data.is_empty() && c.resume.is_none() {
            assert_eq!(st, 0, "{key} announced twice");
            state.insert(key.clone(), 1);
            out.entry(key).or_default();
            continue;
        }
        assert_eq!(st, 1, "{key}: chunk before announcement or after Done");
        let r = c.resume.as_ref().expect("data chunks carry a position");
        assert_eq!(&*r.partition, key.as_str());
        if c.data.is_empty() {
            assert_eq!(r.position, Position::Done, "{key}");
            state.insert(key, 2);
            continue;
        }
        if let Some(&n) = next.get(&key) {
            assert!(c.offset >= n, "{key}: offsets go forward");
        }
        let Position::Offset(after) = r.position else {
            panic!("{key}: {:?}", r.position)
        };
        next.insert(key.clone(), after);
        assert_eq!(*c.data.last().expect("kafka"), b'\n');
        out.entry(key).or_default().extend(
            c.data[..c.data.len() - 1]
                .split(|b| *b == b'\n')
                .map(<[u8]>::to_vec),
        );
    }
    for (k, st) in &state {
        assert_eq!(*st, 2, "{k} not ended with Done");
    }
    out
}

fn all_lines(parts: &BTreeMap<String, Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = parts.values().flatten().cloned().collect();
    v.sort();
    v
}

#[test]
fn one_and_two_workers_read_exactly_what_was_produced() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("exact");
    testing::create_topic(&brokers, &topic, 4).expect("kafka");
    let rs = readings(3000);
    produce(&brokers, &topic, &rs);
    let mut expected: Vec<Vec<u8>> = rs.iter().map(json).collect();
    expected.sort();

    // One worker.
    let source = KafkaSource::new(bounded(&brokers, &topic), 0, 1, vec![]).expect("kafka");
    let stats = source.stats();
    let parts = lines_by_partition(&run_to_end(source).join().expect("kafka"));
    assert_eq!(parts.len(), 4, "{:?}", parts.keys());
    assert!(
        parts
            .keys()
            .all(|k| k.starts_with(&format!("kafka:{topic}/")))
    );
    assert_eq!(all_lines(&parts), expected);
    assert_eq!(
        stats.messages.load(std::sync::atomic::Ordering::Relaxed),
        3000
    );
    assert_eq!(
        stats.partitions.load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    // Keyed by device: one device's readings stay in one partition, in order.
    for lines in parts.values() {
        let mut last: HashMap<String, u64> = HashMap::new();
        for l in lines {
            let r: Reading = serde_json::from_slice(l).expect("kafka");
            let prev = last.insert(r.device.as_str().to_owned(), r.ts);
            assert!(prev.is_none_or(|p| p < r.ts));
        }
    }

    // Two workers, each on its own thread and channel.
    let handles: Vec<_> = (0..2)
        .map(|w| {
            run_to_end(KafkaSource::new(bounded(&brokers, &topic), w, 2, vec![]).expect("kafka"))
        })
        .collect();
    let per_worker: Vec<_> = handles
        .into_iter()
        .map(|h| lines_by_partition(&h.join().expect("kafka")))
        .collect();
    let (a, b) = (&per_worker[0], &per_worker[1]);
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both workers read partitions"
    );
    assert!(
        a.keys().all(|k| !b.contains_key(k)),
        "no partition read twice"
    );
    assert_eq!(a.len() + b.len(), 4);
    let mut union: Vec<Vec<u8>> = all_lines(a);
    union.extend(all_lines(b));
    union.sort();
    assert_eq!(union, expected);
}

#[test]
fn resuming_mid_way_reads_exactly_the_rest() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("resume");
    testing::create_topic(&brokers, &topic, 3).expect("kafka");
    let rs = readings(1500);
    produce(&brokers, &topic, &rs);

    let small = |c: KafkaSourceConfig| KafkaSourceConfig {
        max_chunk_bytes: 1024,
        ..c
    };
    let chunks = run_to_end(
        KafkaSource::new(small(bounded(&brokers, &topic)), 0, 1, vec![]).expect("kafka"),
    )
    .join()
    .expect("kafka");
    // Cut each partition after its second data chunk, except partition 2:
    // done in the "checkpoint", so it is not read again.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut resume = Vec::new();
    let mut expected_rest = Vec::new();
    let done_key = format!("kafka:{topic}/2");
    for c in &chunks {
        if c.data.is_empty() {
            continue;
        }
        let key = c.source.to_string();
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        if *n == 2 && key != done_key {
            resume.push(c.resume.clone().expect("kafka"));
        } else if *n > 2 && key != done_key {
            expected_rest.extend(
                c.data[..c.data.len() - 1]
                    .split(|b| *b == b'\n')
                    .map(<[u8]>::to_vec),
            );
        }
    }
    assert_eq!(
        resume.len(),
        2,
        "partitions 0 and 1 have more than two chunks"
    );
    resume.push(Resume {
        partition: Arc::from(done_key.as_str()),
        position: Position::Done,
    });
    // A position of another source is ignored.
    resume.push(Resume {
        partition: Arc::from("file:/x@0"),
        position: Position::Offset(3),
    });
    expected_rest.sort();

    for peers in [1, 2] {
        let handles: Vec<_> = (0..peers)
            .map(|w| {
                run_to_end(
                    KafkaSource::new(bounded(&brokers, &topic), w, peers, resume.clone())
                        .expect("kafka"),
                )
            })
            .collect();
        let mut got = Vec::new();
        let mut keys = BTreeSet::new();
        for h in handles {
            let parts = lines_by_partition(&h.join().expect("kafka"));
            keys.extend(parts.keys().cloned());
            got.extend(all_lines(&parts));
        }
        got.sort();
        assert!(
            !keys.contains(&done_key),
            "a Done partition is not read again"
        );
        assert_eq!(keys.len(), 2);
        assert_eq!(got.len(), expected_rest.len(), "{peers} worker(s)");
        assert_eq!(got, expected_rest, "{peers} worker(s)");
    }
}

fn wait_for_commits(brokers: &str, group: &str, topic: &str, want: &[Option<i64>]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got =
            testing::committed_offsets(brokers, group, topic, want.len() as i32).expect("kafka");
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let back = testing::read_all(brokers, topic).expect("kafka");
    (0..partitions)
        .map(|p| {
            back.iter()
                .filter(|m| m.partition == p)
                .map(|m| m.offset + 1)
                .max()
        })
        .collect()
}

#[test]
fn offsets_are_committed_only_after_a_checkpoint_completes() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("commit");
    let group = testing::unique_topic("group");
    testing::create_topic(&brokers, &topic, 2).expect("kafka");
    let rs = readings(400);
    produce(&brokers, &topic, &rs);
    let ends = high_watermarks(&brokers, &topic, 2);

    let ctx = JobContext::new();
    let commits = Commits::new(&ctx);
    let config = KafkaSourceConfig {
        group_id: Some(group.clone()),
        start: StartFrom::Committed,
        commit_interval_ms: 100,
        ..KafkaSourceConfig::new(&brokers, &[&topic])
    };
    let mut source = KafkaSource::new(config.clone(), 0, 1, vec![]).expect("kafka");
    let stats = source.stats();
    source.attach_commits(commits.clone());
    let (tx, mut rx) = bridge::<iotflow_core::Result<Chunk>>(8, None);
    let runner = std::thread::spawn(move || source.run(&tx));

    // Read everything (streaming mode: the source keeps running).
    let mut positions: HashMap<Arc<str>, Position> = HashMap::new();
    let mut lines = 0;
    while lines < rs.len() {
        let c = rx.recv_blocking().expect("kafka").expect("kafka");
        lines += c.data.iter().filter(|b| **b == b'\n').count();
        if let Some(r) = c.resume {
            positions.insert(r.partition, r.position);
        }
    }
    assert_eq!(lines, rs.len());
    // Read, but no checkpoint yet: nothing is committed.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        testing::committed_offsets(&brokers, &group, &topic, 2).expect("kafka"),
        vec![None, None]
    );

    // Checkpoint 1 holds partition 0 half-way and partition 1 complete.
    let p0 = Arc::<str>::from(format!("kafka:{topic}/0"));
    let p1 = Arc::<str>::from(format!("kafka:{topic}/1"));
    let half = ends[0].expect("kafka") as u64 / 2;
    commits.record(
        1,
        [
            Resume {
                partition: p0,
                position: Position::Offset(half),
            },
            Resume {
                partition: p1.clone(),
                position: positions[&p1].clone(),
            },
        ],
    );
    commits.record(
        2,
        positions.iter().map(|(k, p)| Resume {
            partition: k.clone(),
            position: p.clone(),
        }),
    );
    ctx.checkpoint_committed(1);
    wait_for_commits(&brokers, &group, &topic, &[Some(half as i64), ends[1]]);

    // The job stops: checkpoint 2 completes, then commits end.
    drop(rx);
    std::thread::sleep(Duration::from_millis(300));
    ctx.checkpoint_committed(2);
    ctx.end_commits();
    runner.join().expect("kafka").expect("kafka");
    wait_for_commits(&brokers, &group, &topic, &ends);
    assert!(stats.commits.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(
        stats
            .commit_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // A new run starting from the committed offsets has nothing left.
    let again = KafkaSourceConfig {
        stop_at_end: true,
        ..config
    };
    let parts = lines_by_partition(
        &run_to_end(KafkaSource::new(again, 0, 1, vec![]).expect("kafka"))
            .join()
            .expect("kafka"),
    );
    assert_eq!(parts.len(), 2);
    assert!(parts.values().all(Vec::is_empty), "{parts:?}");
}

#[test]
fn bounded_source_commits_the_final_checkpoint_after_it_returns() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("bounded-commit");
    let group = testing::unique_topic("group");
    testing::create_topic(&brokers, &topic, 2).expect("kafka");
    produce(&brokers, &topic, &readings(100));
    let ends = high_watermarks(&brokers, &topic, 2);

    let ctx = JobContext::new();
    let commits = Commits::new(&ctx);
    let mut source = KafkaSource::new(
        KafkaSourceConfig {
            group_id: Some(group.clone()),
            ..bounded(&brokers, &topic)
        },
        0,
        1,
        vec![],
    )
    .expect("kafka");
    source.attach_commits(commits.clone());
    // As the event-time source does: run, drop the channel, then finish
    // (which waits for the job's last checkpoint and commits it).
    let chunks = read_to_end(&mut source);
    // The worker's final checkpoint saw every partition Done.
    let done: Vec<Resume> = chunks
        .iter()
        .filter_map(|c| c.resume.clone())
        .filter(|r| r.position == Position::Done)
        .collect();
    assert_eq!(done.len(), 2);
    let job = ctx;
    let coordinator = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        commits.record(1, done);
        job.checkpoint_committed(1);
        job.end_commits();
    });
    source.finish();
    coordinator.join().expect("coordinator");
    wait_for_commits(&brokers, &group, &topic, &ends);
}

#[test]
fn empty_payloads_and_line_breaks() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("empty");
    testing::create_topic(&brokers, &topic, 1).expect("kafka");
    let mut sink = KafkaRawSink::new(KafkaSinkConfig::new(&brokers, &topic)).expect("kafka");
    let batch = vec![
        RawRecord {
            key: None,
            payload: b"{\"a\":1}".to_vec(),
        },
        RawRecord {
            key: None,
            payload: Vec::new(),
        },
        RawRecord {
            key: Some(b"k".to_vec()),
            payload: b" \r\n ".to_vec(),
        },
        RawRecord {
            key: None,
            payload: b"{\"a\":\n\"x\"}\r\n".to_vec(),
        },
    ];
    Sink::<RawRecord>::write(&mut sink, &batch).expect("kafka");
    Sink::<Vec<u8>>::write(&mut sink, &[b"raw bytes".to_vec()]).expect("kafka");
    Sink::<RawRecord>::close(&mut sink).expect("kafka");

    let source = KafkaSource::new(bounded(&brokers, &topic), 0, 1, vec![]).expect("kafka");
    let stats = source.stats();
    let parts = lines_by_partition(&run_to_end(source).join().expect("kafka"));
    let lines = &parts[&format!("kafka:{topic}/0")];
    let want: Vec<&[u8]> = vec![
        b"{\"a\":1}",
        b"\0",
        b"\0",
        b"{\"a\": \"x\"}  ",
        b"raw bytes",
    ];
    assert_eq!(lines.iter().map(Vec::as_slice).collect::<Vec<_>>(), want);
    assert_eq!(
        stats
            .empty_payloads
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn keys_and_every_codec_round_trip() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let features = testing::builtin_features().expect("kafka");
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(
            features.split(',').any(|f| f == codec),
            "{codec} not in {features}"
        );
    }
    let rs = readings(200);
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = testing::unique_topic(compression.as_str());
        testing::create_topic(&brokers, &topic, 2).expect("kafka");
        let config = KafkaSinkConfig {
            compression,
            ..KafkaSinkConfig::new(&brokers, &topic)
        };
        let mut sink = KafkaSink::<Reading>::keyed_by_device(config).expect("kafka");
        sink.write(&rs).expect("kafka");
        sink.close().expect("kafka");
        let back = testing::read_all(&brokers, &topic).expect("kafka");
        assert_eq!(back.len(), rs.len(), "{compression:?}");
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = back
            .into_iter()
            .map(|m| (m.key.expect("kafka"), m.payload))
            .collect();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = rs
            .iter()
            .map(|r| (r.device.as_str().as_bytes().to_vec(), json(r)))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{compression:?}");
    }
    // A custom key function, and no key.
    let topic = testing::unique_topic("custom-key");
    testing::create_topic(&brokers, &topic, 1).expect("kafka");
    let mut sink = KafkaSink::<Reading>::new(KafkaSinkConfig::new(&brokers, &topic))
        .expect("kafka")
        .with_key(|r| (r.ts % 2 == 0).then(|| format!("even-{}", r.ts).into_bytes()));
    sink.write(&rs[..4]).expect("kafka");
    sink.close().expect("kafka");
    let keys: Vec<Option<Vec<u8>>> = testing::read_all(&brokers, &topic)
        .expect("kafka")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(
        keys,
        vec![
            Some(b"even-0".to_vec()),
            None,
            Some(b"even-2".to_vec()),
            None
        ]
    );
}

#[test]
fn testing_helpers_produce_round_robin_and_by_device() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("helpers");
    testing::create_topic(&brokers, &topic, 3).expect("kafka");
    assert!(
        testing::create_topic(&brokers, &topic, 3).is_err(),
        "exists already"
    );
    let lines: Vec<Vec<u8>> = readings(30).iter().map(json).collect();
    assert_eq!(
        testing::produce_lines(&brokers, &topic, &lines, Keying::RoundRobin).expect("kafka"),
        30
    );
    let back = testing::read_all(&brokers, &topic).expect("kafka");
    for p in 0..3 {
        assert_eq!(back.iter().filter(|m| m.partition == p).count(), 10);
    }
    testing::produce_lines(&brokers, &topic, &lines, Keying::ByDevice).expect("kafka");
    let back = testing::read_all(&brokers, &topic).expect("kafka");
    assert_eq!(back.len(), 60);
    assert!(back.iter().filter(|m| m.key.is_some()).count() == 30);
}

#[test]
fn unknown_topic_is_an_error() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("missing");
    let mut source = KafkaSource::new(bounded(&brokers, &topic), 0, 1, vec![]).expect("kafka");
    let (tx, _rx) = bridge::<iotflow_core::Result<Chunk>>(8, None);
    let err = source.run(&tx).expect_err("must fail");
    assert!(err.to_string().contains(&topic), "{err}");
}

#[test]
fn new_partitions_are_discovered_and_read_from_their_start() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let topic = testing::unique_topic("discover");
    testing::create_topic(&brokers, &topic, 1).expect("kafka");
    let first: Vec<Vec<u8>> = readings(10).iter().map(json).collect();
    testing::produce_lines(&brokers, &topic, &first, Keying::RoundRobin).expect("kafka");
    let config = KafkaSourceConfig {
        start: StartFrom::Earliest,
        discovery_interval_ms: 200,
        ..KafkaSourceConfig::new(&brokers, &[&topic])
    };
    let mut source = KafkaSource::new(config, 0, 1, vec![]).expect("kafka");
    let (tx, mut rx) = bridge::<iotflow_core::Result<Chunk>>(8, None);
    let runner = std::thread::spawn(move || source.run(&tx));
    let mut lines = 0;
    let mut announced = BTreeSet::new();
    let mut take = |c: Chunk, lines: &mut usize| {
        if c.data.is_empty() && c.resume.is_none() {
            announced.insert(c.source.to_string());
        }
        *lines += c.data.iter().filter(|b| **b == b'\n').count();
    };
    while lines < 10 {
        take(
            rx.recv_blocking().expect("open").expect("chunk"),
            &mut lines,
        );
    }
    if let Err(e) = testing::add_partitions(&brokers, &topic, 2) {
        eprintln!("skipped the discovery half: the broker cannot add partitions: {e}");
        drop(rx);
        runner.join().expect("thread").expect("run");
        return;
    }
    // Round robin: 5 more to partition 0, 5 to the new partition 1.
    testing::produce_lines(&brokers, &topic, &first, Keying::RoundRobin).expect("kafka");
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines < 20 {
        assert!(Instant::now() < deadline, "read {lines} of 20");
        take(
            rx.recv_blocking().expect("open").expect("chunk"),
            &mut lines,
        );
    }
    assert_eq!(lines, 20);
    assert!(
        announced.contains(&format!("kafka:{topic}/1")),
        "{announced:?}"
    );
    drop(rx);
    runner.join().expect("thread").expect("run");
}
