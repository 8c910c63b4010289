//! Reading and writing against moto's Kinesis (`IOTFLOW_TEST_KINESIS_URL`,
//! started by `.ci/services.sh`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use iotflow_core::sink::Sink;
use iotflow_core::source::{Position, Resume};
use iotflow_kinesis::testing::{self, collect, lines};
use iotflow_kinesis::{KinesisSink, KinesisSource, StartPosition};

const VAR: &str = "IOTFLOW_TEST_KINESIS_URL";

#[test]
fn reads_every_shard_exactly_once_with_one_and_two_workers() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("all-shards");
    testing::create_stream(&url, &stream, 2).expect("create");
    let sent = readings(0, 600, 16);
    testing::put_lines(&url, &stream, &sent).expect("put");

    let config = testing::source_config(&url, &stream);
    for peers in [1, 2] {
        let per_worker = run_workers(&config, peers, &[]);
        let mut all = Vec::new();
        let mut owned = BTreeSet::new();
        for chunks in &per_worker {
            for key in check_protocol(chunks) {
                assert!(owned.insert(key.clone()), "{key} read by two workers");
            }
            // Bounded: every partition read is announced done.
            let done = chunks
                .iter()
                .filter(|c| {
                    c.resume
                        .as_ref()
                        .is_some_and(|r| r.position == Position::Done)
                })
                .count();
            assert_eq!(done, check_protocol(chunks).len());
            all.extend(lines(chunks));
        }
        assert_eq!(owned.len(), 2, "both shards read with {peers} worker(s)");
        assert!(
            owned
                .iter()
                .all(|k| k.starts_with(&format!("kinesis:{stream}/shardId-")))
        );
        assert_exactly(&all, &sent);
        assert_per_key_order(&all);
    }
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn resumes_from_positions_mid_stream_and_skips_done_shards() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("resume");
    testing::create_stream(&url, &stream, 2).expect("create");
    let sent = readings(0, 400, 8);
    testing::put_lines(&url, &stream, &sent).expect("put");
    let mut config = testing::source_config(&url, &stream);
    // Small batches so that stopping mid-stream leaves positions mid-shard.
    config.max_records = 25;

    // First run: stop (close the output) after about a third.
    let first = KinesisSource::new(config.clone(), 0, 1, Vec::new()).expect("source");
    let part = collect(first, Some(130)).expect("first run");
    let got_first = lines(&part);
    assert!(
        got_first.len() >= 130 && got_first.len() < 400,
        "{}",
        got_first.len()
    );
    let checkpoint = positions(&part);
    assert!(
        checkpoint
            .iter()
            .all(|r| matches!(r.position, Position::Sequence(_)))
    );

    // Second run, on two workers: exactly the rest.
    let rest: Vec<String> = run_workers(&config, 2, &checkpoint)
        .iter()
        .flat_map(|c| lines(c))
        .collect();
    let mut both = got_first;
    both.extend(rest.iter().cloned());
    assert_exactly(&both, &sent);

    // A shard restored as done is not read again.
    let shard0 = format!("kinesis:{stream}/shardId-000000000000");
    let done = vec![Resume {
        partition: shard0.clone().into(),
        position: Position::Done,
    }];
    let third = KinesisSource::new(config, 0, 1, done).expect("source");
    let chunks = collect(third, None).expect("third run");
    assert!(chunks.iter().all(|c| c.source.as_ref() != shard0));
    assert!(!lines(&chunks).is_empty());
    assert!(lines(&chunks).len() < sent.len());
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn latest_reads_only_records_put_after_the_start() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("latest");
    testing::create_stream(&url, &stream, 2).expect("create");
    testing::put_lines(&url, &stream, &readings(0, 50, 4)).expect("put old");

    let mut config = testing::source_config(&url, &stream);
    config.start = StartPosition::Latest;
    config.stop_at_end = false;
    let source = KinesisSource::new(config, 0, 1, Vec::new()).expect("source");
    let stats = source.stats();
    let reader = std::thread::spawn(move || collect(source, Some(30)));
    // Both shards positioned at LATEST once each has been polled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.get_records_calls.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "source never polled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = readings(1000, 1030, 4);
    testing::put_lines(&url, &stream, &new).expect("put new");
    let chunks = reader.join().expect("reader").expect("source ran");
    assert_exactly(&lines(&chunks), &new);
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn at_timestamp_starts_at_the_first_record_from_that_time() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("at-ts");
    testing::create_stream(&url, &stream, 2).expect("create");
    testing::put_lines(&url, &stream, &readings(0, 40, 4)).expect("put early");
    std::thread::sleep(Duration::from_millis(1200));
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(1200));
    let late = readings(100, 160, 4);
    testing::put_lines(&url, &stream, &late).expect("put late");

    let mut config = testing::source_config(&url, &stream);
    config.start = StartPosition::AtTimestamp(at);
    let got: Vec<String> = run_workers(&config, 1, &[])
        .iter()
        .flat_map(|c| lines(c))
        .collect();
    assert_exactly(&got, &late);
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn lists_shards_across_pages() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("pages");
    testing::create_stream(&url, &stream, 5).expect("create");
    let sent = readings(0, 200, 20);
    testing::put_lines(&url, &stream, &sent).expect("put");
    let source = KinesisSource::new(testing::source_config(&url, &stream), 0, 1, Vec::new())
        .expect("source")
        .with_list_page_size(2);
    let stats = source.stats();
    let chunks = collect(source, None).expect("source ran");
    assert_eq!(
        check_protocol(&chunks).len(),
        5,
        "all five shards, over three pages"
    );
    assert_exactly(&lines(&chunks), &sent);
    assert_eq!(stats.records.load(Ordering::Relaxed), 200);
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn payloads_become_single_lines_and_blank_ones_a_nul() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("payloads");
    testing::create_stream(&url, &stream, 1).expect("create");
    let records = ["{\"device\":\"a\",\n\"v\":1}", "   ", "plain"];
    testing::put_lines(&url, &stream, &records).expect("put");
    let source = KinesisSource::new(testing::source_config(&url, &stream), 0, 1, Vec::new())
        .expect("source");
    let stats = source.stats();
    let got = lines(&collect(source, None).expect("source ran"));
    let want: BTreeSet<String> = ["{\"device\":\"a\", \"v\":1}", "\0", "plain"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(stats.empty_payloads.load(Ordering::Relaxed), 1);
    testing::delete_stream(&url, &stream).expect("delete");
}

#[derive(serde::Serialize)]
struct Reading {
    device: String,
    ts: u64,
    metric: &'static str,
    value: f64,
}

#[test]
fn sink_puts_many_batches_and_everything_arrives() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("sink");
    testing::create_stream(&url, &stream, 2).expect("create");
    let items: Vec<Reading> = (0..1300)
        .map(|n| Reading {
            device: format!("d{}", n % 10),
            ts: n,
            metric: "seq",
            value: (n / 10) as f64,
        })
        .collect();
    let mut sink = KinesisSink::<Reading>::new(testing::sink_config(&url, &stream)).expect("sink");
    let stats = sink.stats();
    // 1300 records in one write: three PutRecords requests of ≤ 500.
    sink.write(&items).expect("write");
    sink.write(&items[..0]).expect("empty write");
    sink.close().expect("close");
    assert_eq!(stats.records.load(Ordering::Relaxed), 1300);
    assert_eq!(stats.requests.load(Ordering::Relaxed), 3);
    let expected: Vec<String> = items
        .iter()
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    let got = testing::read_all(&url, &stream).expect("read back");
    assert_exactly(&got, &expected);
    // Keyed by device: each device's records sit in one shard, in order.
    assert_per_key_order(&got);
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn a_missing_stream_fails_the_source_and_the_sink() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("missing");
    let mut config = testing::source_config(&url, &stream);
    config.max_consecutive_errors = 2;
    let source = KinesisSource::new(config, 0, 1, Vec::new()).expect("source");
    let err = collect(source, None).expect_err("no such stream");
    assert!(err.to_string().contains("ListShards"), "{err}");

    let mut sink = KinesisSink::<Reading>::new(testing::sink_config(&url, &stream)).expect("sink");
    let r = Reading {
        device: "d".into(),
        ts: 1,
        metric: "m",
        value: 1.0,
    };
    let err = sink.write(&[r]).expect_err("no such stream");
    assert!(err.to_string().contains("PutRecords"), "{err}");
}
