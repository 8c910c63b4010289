//! Failure handling against a scripted Kinesis endpoint on 127.0.0.1: a
//! small HTTP/1.1 server answering the JSON protocol the SDK speaks, so
//! that throttling, failed entries and expired iterators happen on cue
//! (moto and kinesalite never throttle or fail entries).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use iotflow_core::sink::Sink;
use iotflow_kinesis::testing::{self, collect, lines};
use iotflow_kinesis::{KinesisRawSink, KinesisSource, RawRecord};
use serde_json::{Value, json};

type Handler = dyn Fn(&str, &Value) -> (u16, Value) + Send + Sync;

/// Serves `handler(operation, request body)` on a fresh port; returns the
/// endpoint URL. The server lives until the test process ends.
fn serve(handler: Arc<Handler>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let handler = Arc::clone(&handler);
            std::thread::spawn(move || {
                let _ = handle(conn, &*handler);
            });
        }
    });
    url
}

fn handle(conn: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut target = String::new();
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = value.trim().to_owned(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let op = target.rsplit('.').next().unwrap_or("").to_owned();
        let (status, reply) = handler(&op, &request);
        let text = reply.to_string();
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n",
            text.len()
        );
        if let Some(t) = reply.get("__type").and_then(Value::as_str) {
            head.push_str(&format!("x-amzn-ErrorType: {t}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
}

fn error(code: &str) -> (u16, Value) {
    (400, json!({"__type": code, "message": "scripted failure"}))
}

fn raw(n: usize) -> Vec<RawRecord> {
    (0..n)
        .map(|i| RawRecord {
            partition_key: Some(format!("k{i}")),
            data: format!("record {i}").into_bytes(),
        })
        .collect()
}

#[test]
fn failed_entries_are_retried_until_they_are_stored() {
    let stored = Arc::new(Mutex::new(Vec::<String>::new()));
    let calls = Arc::new(Mutex::new(0u32));
    let (s, c) = (Arc::clone(&stored), Arc::clone(&calls));
    let url = serve(Arc::new(move |op: &str, req: &Value| {
        assert_eq!(op, "PutRecords");
        let mut calls = c.lock().expect("lock");
        *calls += 1;
        let entries = req["Records"].as_array().cloned().unwrap_or_default();
        let mut results = Vec::new();
        let mut failed = 0;
        for (i, e) in entries.iter().enumerate() {
            // First request: every other entry is throttled.
            if *calls == 1 && i % 2 == 0 {
                failed += 1;
                results.push(json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}));
            } else {
                let data = B64
                    .decode(e["Data"].as_str().unwrap_or(""))
                    .expect("base64");
                s.lock()
                    .expect("lock")
                    .push(String::from_utf8(data).expect("utf8"));
                results.push(json!({"SequenceNumber": "1", "ShardId": "shardId-000000000000"}));
            }
        }
        (
            200,
            json!({"FailedRecordCount": failed, "Records": results}),
        )
    }));
    let mut sink = KinesisRawSink::new(testing::sink_config(&url, "s")).expect("sink");
    let stats = sink.stats();
    Sink::<RawRecord>::write(&mut sink, &raw(300)).expect("all delivered after a retry");
    Sink::<RawRecord>::close(&mut sink).expect("close");
    let mut got = stored.lock().expect("lock").clone();
    got.sort();
    let mut want: Vec<String> = (0..300).map(|i| format!("record {i}")).collect();
    want.sort();
    assert_eq!(got, want, "each record stored exactly once");
    assert_eq!(stats.requests.load(Ordering::Relaxed), 2);
    assert_eq!(stats.retried_records.load(Ordering::Relaxed), 150);
    assert_eq!(stats.records.load(Ordering::Relaxed), 300);
}

#[test]
fn entries_failing_past_the_retry_cap_fail_write_and_close() {
    let url = serve(Arc::new(|_op: &str, req: &Value| {
        // Entry "k0" is always throttled; the others succeed.
        let entries = req["Records"].as_array().cloned().unwrap_or_default();
        let results: Vec<Value> = entries
            .iter()
            .map(|e| {
                if e["PartitionKey"] == "k0" {
                    json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"})
                } else {
                    json!({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
                }
            })
            .collect();
        let failed = results
            .iter()
            .filter(|r| r.get("ErrorCode").is_some())
            .count();
        (
            200,
            json!({"FailedRecordCount": failed, "Records": results}),
        )
    }));
    let mut config = testing::sink_config(&url, "s");
    config.max_retries = 3;
    config.backoff_base_ms = 1;
    config.backoff_max_ms = 5;
    let mut sink = KinesisRawSink::new(config).expect("sink");
    let stats = sink.stats();
    let err = Sink::<RawRecord>::write(&mut sink, &raw(10)).expect_err("k0 never stored");
    assert!(
        err.to_string()
            .contains("1 record(s) not delivered after 4 attempts"),
        "{err}"
    );
    assert_eq!(stats.requests.load(Ordering::Relaxed), 4);
    assert_eq!(stats.records.load(Ordering::Relaxed), 9);
    assert_eq!(stats.undelivered.load(Ordering::Relaxed), 1);
    assert!(
        Sink::<RawRecord>::close(&mut sink).is_err(),
        "close reports the loss too"
    );
}

#[test]
fn throttled_whole_requests_are_retried() {
    let calls = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&calls);
    let url = serve(Arc::new(move |_op: &str, req: &Value| {
        let mut calls = c.lock().expect("lock");
        *calls += 1;
        if *calls <= 2 {
            return error("LimitExceededException");
        }
        let n = req["Records"].as_array().map_or(0, Vec::len);
        let results: Vec<Value> = (0..n)
            .map(|_| json!({"SequenceNumber": "1", "ShardId": "shardId-0"}))
            .collect();
        (200, json!({"FailedRecordCount": 0, "Records": results}))
    }));
    let mut sink = KinesisRawSink::new(testing::sink_config(&url, "s")).expect("sink");
    let stats = sink.stats();
    Sink::<Vec<u8>>::write(&mut sink, &[b"{\"device\":\"d\"}".to_vec()]).expect("write");
    assert_eq!(stats.retried_requests.load(Ordering::Relaxed), 2);
    assert_eq!(stats.records.load(Ordering::Relaxed), 1);
}

fn record(seq: u64) -> Value {
    json!({
        "SequenceNumber": seq.to_string(),
        "Data": B64.encode(format!("{{\"n\":{seq}}}")),
        "PartitionKey": "k",
        "ApproximateArrivalTimestamp": 1_700_000_000.0,
    })
}

#[test]
fn the_source_backs_off_when_throttled_and_renews_expired_iterators() {
    let iterators = Arc::new(Mutex::new(Vec::<Value>::new()));
    let calls = Arc::new(Mutex::new(0u32));
    let (its, c) = (Arc::clone(&iterators), Arc::clone(&calls));
    let url = serve(Arc::new(move |op: &str, req: &Value| match op {
        "ListShards" => (
            200,
            json!({"Shards": [{
                "ShardId": "shardId-000000000000",
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"}
            }]}),
        ),
        "GetShardIterator" => {
            its.lock().expect("lock").push(req.clone());
            (200, json!({"ShardIterator": "iterator"}))
        }
        "GetRecords" => {
            let mut calls = c.lock().expect("lock");
            *calls += 1;
            match *calls {
                1 | 2 => error("ProvisionedThroughputExceededException"),
                3 => (
                    200,
                    json!({"Records": [record(1), record(2), record(3)], "NextShardIterator": "next", "MillisBehindLatest": 0}),
                ),
                4 => error("ExpiredIteratorException"),
                5 => (
                    200,
                    json!({"Records": [record(4), record(5)], "NextShardIterator": "next", "MillisBehindLatest": 0}),
                ),
                _ => (
                    200,
                    json!({"Records": [], "NextShardIterator": "next", "MillisBehindLatest": 0}),
                ),
            }
        }
        other => panic!("unexpected operation {other}"),
    }));
    let source =
        KinesisSource::new(testing::source_config(&url, "s"), 0, 1, Vec::new()).expect("source");
    let stats = source.stats();
    let chunks = collect(source, None).expect("source ran");
    assert_eq!(
        lines(&chunks),
        (1..=5)
            .map(|n| format!("{{\"n\":{n}}}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(stats.throttled.load(Ordering::Relaxed), 2);
    assert_eq!(stats.iterator_renewals.load(Ordering::Relaxed), 1);
    let its = iterators.lock().expect("lock");
    assert_eq!(its.len(), 2);
    assert_eq!(its[0]["ShardIteratorType"], "TRIM_HORIZON");
    assert_eq!(its[1]["ShardIteratorType"], "AFTER_SEQUENCE_NUMBER");
    assert_eq!(its[1]["StartingSequenceNumber"], "3");
}

#[test]
fn the_source_gives_up_after_too_many_server_faults_in_a_row() {
    let url = serve(Arc::new(|op: &str, _req: &Value| match op {
        "ListShards" => (500, json!({"__type": "InternalFailure", "message": "boom"})),
        other => panic!("unexpected operation {other}"),
    }));
    let mut config = testing::source_config(&url, "s");
    config.max_consecutive_errors = 3;
    config.backoff_base_ms = 1;
    config.backoff_max_ms = 5;
    let source = KinesisSource::new(config, 0, 1, Vec::new()).expect("source");
    let stats = source.stats();
    let err = collect(source, None).expect_err("fails");
    assert!(err.to_string().contains("InternalFailure"), "{err}");
    assert!(err.is_retryable(), "an external fault");
    assert_eq!(stats.listings.load(Ordering::Relaxed), 0);
}

#[test]
fn an_expired_latest_iterator_continues_from_when_it_was_issued() {
    let iterators = Arc::new(Mutex::new(Vec::<Value>::new()));
    let calls = Arc::new(Mutex::new(0u32));
    let (its, c) = (Arc::clone(&iterators), Arc::clone(&calls));
    let url = serve(Arc::new(move |op: &str, req: &Value| match op {
        "ListShards" => (
            200,
            json!({"Shards": [{
                "ShardId": "shardId-000000000000",
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"}
            }]}),
        ),
        "GetShardIterator" => {
            its.lock().expect("lock").push(req.clone());
            (200, json!({"ShardIterator": "iterator"}))
        }
        "GetRecords" => {
            let mut calls = c.lock().expect("lock");
            *calls += 1;
            match *calls {
                1 => error("ExpiredIteratorException"),
                2 => (
                    200,
                    json!({"Records": [record(7)], "NextShardIterator": "next", "MillisBehindLatest": 0}),
                ),
                _ => (
                    200,
                    json!({"Records": [], "NextShardIterator": "next", "MillisBehindLatest": 0}),
                ),
            }
        }
        other => panic!("unexpected operation {other}"),
    }));
    let mut config = testing::source_config(&url, "s");
    config.start = iotflow_kinesis::StartPosition::Latest;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let source = KinesisSource::new(config, 0, 1, Vec::new()).expect("source");
    let chunks = collect(source, None).expect("source ran");
    assert_eq!(lines(&chunks), vec!["{\"n\":7}".to_owned()]);
    let its = iterators.lock().expect("lock");
    assert_eq!(its.len(), 2);
    assert_eq!(its[0]["ShardIteratorType"], "LATEST");
    assert_eq!(its[1]["ShardIteratorType"], "AT_TIMESTAMP");
    let ts = its[1]["Timestamp"].as_f64().expect("epoch seconds");
    assert!(ts > before - 5.0 && ts < before + 5.0, "{ts} vs {before}");
}
