//! Splits and merges against kinesalite (`IOTFLOW_TEST_KINESALITE_URL`,
//! started by `.ci/services.sh`): moto's SplitShard moves the parent's
//! records into the children and its closed shards never end, so it cannot
//! show that a split loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use iotflow_core::source::Position;
use iotflow_kinesis::KinesisSource;
use iotflow_kinesis::testing::{self, collect, lines};

const VAR: &str = "IOTFLOW_TEST_KINESALITE_URL";

/// Position in `chunks` of the announcement of `shard` and of its Done.
fn announce_and_done(
    chunks: &[iotflow_core::source::Chunk],
    shard: &str,
) -> (Option<usize>, Option<usize>) {
    let mut announce = None;
    let mut done = None;
    for (i, c) in chunks.iter().enumerate() {
        if shard_of(&c.source) != shard {
            continue;
        }
        match &c.resume {
            None if c.data.is_empty() => announce = announce.or(Some(i)),
            Some(r) if r.position == Position::Done => done = Some(i),
            _ => {}
        }
    }
    (announce, done)
}

#[test]
fn a_split_mid_stream_loses_nothing_and_reads_parents_first() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("split");
    testing::create_stream(&url, &stream, 2).expect("create");
    let first = readings(0, 300, 12);
    testing::put_lines(&url, &stream, &first).expect("put first part");

    // Read part of it, then stop: positions mid-shard.
    let mut config = testing::source_config(&url, &stream);
    config.max_records = 20;
    let source = KinesisSource::new(config.clone(), 0, 1, Vec::new()).expect("source");
    let part = collect(source, Some(100)).expect("first run");
    let read_first = lines(&part);
    assert!(read_first.len() < first.len());
    let checkpoint = positions(&part);

    let children = testing::split_shard(&url, &stream, "shardId-000000000000").expect("split");
    assert_eq!(children.len(), 2);
    let second = readings(300, 600, 12);
    testing::put_lines(&url, &stream, &second).expect("put second part");
    let shards = testing::list_shards(&url, &stream).expect("list");
    assert_eq!(shards.len(), 4);
    assert!(!shards[0].open);

    let mut all_sent = first;
    all_sent.extend(second.iter().cloned());
    for peers in [1, 2] {
        let per_worker = run_workers(&config, peers, &checkpoint);
        let mut all = read_first.clone();
        for chunks in &per_worker {
            check_protocol(chunks);
            all.extend(lines(chunks));
            // The parent is done before either child is announced.
            let (_, parent_done) = announce_and_done(chunks, "shardId-000000000000");
            for child in &children {
                let (child_announced, child_done) = announce_and_done(chunks, child);
                if let Some(a) = child_announced {
                    let p = parent_done.expect("child read on the parent's worker");
                    assert!(p < a, "child {child} announced at {a}, parent done at {p}");
                    assert!(child_done.is_some());
                }
            }
        }
        assert_exactly(&all, &all_sent);
        // Per device: the rest of the run is in order, and after the first part.
        let rest: Vec<String> = all[read_first.len()..].to_vec();
        assert_per_key_order(&rest);
    }
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn a_running_source_follows_a_split() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("live-split");
    testing::create_stream(&url, &stream, 1).expect("create");
    let first = readings(0, 100, 6);
    testing::put_lines(&url, &stream, &first).expect("put first part");

    let mut config = testing::source_config(&url, &stream);
    config.stop_at_end = false;
    let source = KinesisSource::new(config, 0, 1, Vec::new()).expect("source");
    let stats = source.stats();
    let reader = std::thread::spawn(move || collect(source, Some(250)));
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.records.load(std::sync::atomic::Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "first part not read");
        std::thread::sleep(Duration::from_millis(20));
    }
    let children = testing::split_shard(&url, &stream, "shardId-000000000000").expect("split");
    let second = readings(100, 250, 6);
    testing::put_lines(&url, &stream, &second).expect("put second part");
    let chunks = reader.join().expect("reader").expect("source ran");

    let got = lines(&chunks);
    let mut sent = first;
    sent.extend(second);
    assert_exactly(&got, &sent);
    assert_per_key_order(&got);
    check_protocol(&chunks);
    let (_, parent_done) = announce_and_done(&chunks, "shardId-000000000000");
    let parent_done = parent_done.expect("closed parent announced done");
    for child in &children {
        let (a, _) = announce_and_done(&chunks, child);
        assert!(
            a.is_some_and(|a| a > parent_done),
            "{child} announced before its parent finished"
        );
    }
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn a_merge_reads_both_parents_before_the_child() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("merge");
    testing::create_stream(&url, &stream, 2).expect("create");
    let first = readings(0, 200, 10);
    testing::put_lines(&url, &stream, &first).expect("put first part");
    let child = testing::merge_shards(
        &url,
        &stream,
        "shardId-000000000000",
        "shardId-000000000001",
    )
    .expect("merge");
    let second = readings(200, 400, 10);
    testing::put_lines(&url, &stream, &second).expect("put second part");
    let mut sent = first;
    sent.extend(second);

    let mut config = testing::source_config(&url, &stream);
    // With 2 and 3 workers the two parents sit on different workers: the
    // bounded run ends only because the adjacent parent's end reaches the
    // child's worker through the process-local registry (not a timeout).
    config.foreign_parent_timeout_ms = 600_000;
    for peers in [1, 2, 3] {
        let per_worker = run_workers(&config, peers, &[]);
        let reader_of = |shard: &str| {
            per_worker
                .iter()
                .position(|c| announce_and_done(c, shard).0.is_some())
                .expect("every shard read")
        };
        if peers > 1 {
            assert_ne!(
                reader_of("shardId-000000000000"),
                reader_of("shardId-000000000001")
            );
        }
        assert_eq!(reader_of(&child), reader_of("shardId-000000000000"));
        let mut all = Vec::new();
        for chunks in &per_worker {
            check_protocol(chunks);
            all.extend(lines(chunks));
        }
        assert_exactly(&all, &sent);
        // The child goes to the worker of its ParentShardId; with one worker
        // (or both parents there) the child follows both parents' Done.
        let with_child = per_worker
            .iter()
            .find(|c| announce_and_done(c, &child).0.is_some())
            .expect("merged child read");
        let (a, _) = announce_and_done(with_child, &child);
        let (_, p0) = announce_and_done(with_child, "shardId-000000000000");
        assert!(
            p0.is_some_and(|p| Some(p) < a),
            "peers={peers}: parent not done before child"
        );
        if let (_, Some(p1)) = announce_and_done(with_child, "shardId-000000000001") {
            assert!(
                Some(p1) < a,
                "peers={peers}: adjacent parent done after child started"
            );
        }
        if peers == 1 {
            assert_per_key_order(&all);
        }
    }
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn a_merged_child_waits_for_a_foreign_parent_only_up_to_the_timeout() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("merge-foreign");
    testing::create_stream(&url, &stream, 2).expect("create");
    testing::put_lines(&url, &stream, &readings(0, 50, 5)).expect("put first part");
    let child = testing::merge_shards(
        &url,
        &stream,
        "shardId-000000000000",
        "shardId-000000000001",
    )
    .expect("merge");
    testing::put_lines(&url, &stream, &readings(50, 100, 5)).expect("put second part");

    // Worker 1 of 2 owns shard 0 and the child; worker 0 (owner of the
    // adjacent parent, shard 1) never runs, as if in another process.
    let mut config = testing::source_config(&url, &stream);
    config.foreign_parent_timeout_ms = 300;
    let started = Instant::now();
    let source = KinesisSource::new(config, 1, 2, Vec::new()).expect("source");
    let chunks = collect(source, None).expect("source ran");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (p0_done, child_announced) = (
        announce_and_done(&chunks, "shardId-000000000000").1,
        announce_and_done(&chunks, &child).0,
    );
    assert!(p0_done.is_some_and(|p| child_announced.is_some_and(|a| p < a)));
    assert!(
        announce_and_done(&chunks, "shardId-000000000001")
            .0
            .is_none()
    );
    testing::delete_stream(&url, &stream).expect("delete");
}

#[test]
fn latest_after_a_split_does_not_replay_the_children() {
    let Some(url) = server(VAR) else { return };
    let stream = testing::unique_name("latest-split");
    testing::create_stream(&url, &stream, 1).expect("create");
    testing::put_lines(&url, &stream, &readings(0, 40, 4)).expect("put into the parent");
    testing::split_shard(&url, &stream, "shardId-000000000000").expect("split");
    testing::put_lines(&url, &stream, &readings(40, 80, 4)).expect("put into the children");

    let mut config = testing::source_config(&url, &stream);
    config.start = iotflow_kinesis::StartPosition::Latest;
    config.stop_at_end = false;
    let source = KinesisSource::new(config, 0, 1, Vec::new()).expect("source");
    let stats = source.stats();
    let reader = std::thread::spawn(move || collect(source, Some(30)));
    // The closed parent ends at once; both children are then polled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats
        .get_records_calls
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3
    {
        assert!(Instant::now() < deadline, "children never polled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = readings(1000, 1030, 4);
    testing::put_lines(&url, &stream, &new).expect("put after the start");
    let chunks = reader.join().expect("reader").expect("source ran");
    assert_exactly(&lines(&chunks), &new);
    testing::delete_stream(&url, &stream).expect("delete");
}
