//! Against the real mosquitto started by `.ci/services.sh start` (and a
//! private one for the restart test). Each test is skipped, and says so,
//! when its environment variable is unset.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use iotflow_core::context::JobContext;
use iotflow_core::sink::Sink;
use iotflow_core::source::{Commits, Position, Resume, Source};
use iotflow_mqtt::testing::{self, Mosquitto, SourceRun, Subscriber};
use iotflow_mqtt::{
    BackoffConfig, MqttRawSink, MqttSink, MqttSinkConfig, MqttSource, MqttSourceConfig,
    MqttSourceStats, TlsConfig,
};
use serde_json::json;

fn source_config(url: &str, topics: &[String], client_id: &str) -> MqttSourceConfig {
    MqttSourceConfig {
        url: url.to_owned(),
        topics: topics.to_vec(),
        client_id: client_id.to_owned(),
        session_expiry_secs: 300,
        stop_after_idle_ms: Some(1_500),
        final_commit_wait_secs: 10,
        reconnect: BackoffConfig {
            initial_ms: 50,
            max_ms: 500,
        },
        ..MqttSourceConfig::default()
    }
}

fn wait_subscribed(stats: &MqttSourceStats, run: &SourceRun) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats.subscriptions.load(Ordering::Relaxed) == 0 {
        assert!(
            !run.is_finished(),
            "source ended before subscribing: {:?}",
            run.errors()
        );
        assert!(Instant::now() < deadline, "no SUBACK within 15 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn numbered(n: usize, from: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!(r#"{{"seq":{i}}}"#))
        .collect()
}

fn seqs(lines: &[Vec<u8>]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("json line");
            v["seq"].as_u64().expect("seq")
        })
        .collect()
}

fn tls(ca: bool, client: bool) -> Option<TlsConfig> {
    let path = |v: &str| std::env::var(v).ok().map(Into::into);
    Some(TlsConfig {
        ca_file: if ca { path(testing::CA_VAR) } else { None },
        client_cert_file: if client {
            path(testing::CLIENT_CERT_VAR)
        } else {
            None
        },
        client_key_file: if client {
            path(testing::CLIENT_KEY_VAR)
        } else {
            None
        },
    })
}

#[test]
fn wildcard_subscription_round_trip_exactly_n() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    let prefix = testing::unique("iotflow-wild");
    let filters = vec![format!("{prefix}/+/metrics/#")];
    let source = MqttSource::new(
        source_config(&url, &filters, &testing::unique("src")),
        0,
        1,
        vec![],
    )
    .expect("source");
    let stats = source.stats();
    let key = source.partition();
    let run = SourceRun::spawn(source);
    wait_subscribed(&stats, &run);

    // Through the raw sink with a topic template: device i%5, metric by parity.
    const N: usize = 500;
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let metric = if i % 2 == 0 { "temp" } else { "hum" };
            json!({"device": format!("d{}", i % 5), "metric": metric, "seq": i})
                .to_string()
                .into_bytes()
        })
        .collect();
    let mut sink = MqttRawSink::new(MqttSinkConfig {
        url: url.clone(),
        topic: format!("{prefix}/{{device}}/metrics/{{metric}}"),
        ..MqttSinkConfig::default()
    })
    .expect("sink");
    Sink::<Vec<u8>>::write(&mut sink, &payloads).expect("write");
    Sink::<Vec<u8>>::close(&mut sink).expect("close waits for all PUBACKs");
    assert_eq!(sink.stats().acked.load(Ordering::Relaxed), N as u64);
    // Not matched by the filter: must not arrive.
    testing::publish_lines(
        &url,
        &format!("{prefix}/d0/status"),
        &["{\"seq\":999999}"],
        1,
    )
    .expect("publish");

    assert_eq!(run.wait_for_lines(N, Duration::from_secs(30)), N);
    std::thread::sleep(Duration::from_millis(300));
    let lines = run.lines();
    let chunks = run.chunks();
    run.join(Duration::from_secs(30))
        .expect("source ends after idling");

    assert_eq!(
        lines.len(),
        N,
        "exactly N messages, nothing from unmatched topics"
    );
    let got: BTreeSet<u64> = seqs(&lines).into_iter().collect();
    assert_eq!(got, (0..N as u64).collect::<BTreeSet<_>>());
    // Announcement first, then chunks of this partition with increasing positions.
    assert!(chunks[0].data.is_empty() && chunks[0].resume.is_none());
    assert_eq!(chunks[0].source, key);
    let mut next = 0u64;
    for c in &chunks[1..] {
        assert_eq!(c.source, key);
        assert_eq!(
            c.offset, next,
            "a chunk's offset is its first message's number"
        );
        let lines_in = c.data.iter().filter(|&&b| b == b'\n').count() as u64;
        next += lines_in;
        assert_eq!(
            c.resume,
            Some(Resume {
                partition: key.clone(),
                position: Position::Offset(next)
            })
        );
    }
    assert_eq!(next, N as u64);
    assert_eq!(stats.messages.load(Ordering::Relaxed), N as u64);
    assert_eq!(
        stats.acks.load(Ordering::Relaxed),
        N as u64,
        "no checkpoints: acked once handed on"
    );
}

#[test]
fn empty_payload_becomes_a_nul_line_and_newlines_become_spaces() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    let topic = testing::unique("iotflow-empty");
    let source = MqttSource::new(
        source_config(&url, std::slice::from_ref(&topic), &testing::unique("src")),
        0,
        1,
        vec![],
    )
    .expect("source");
    let stats = source.stats();
    let run = SourceRun::spawn(source);
    wait_subscribed(&stats, &run);
    testing::publish_lines(&url, &topic, &["", "{\"a\":\n1}", "  "], 1).expect("publish");
    assert_eq!(run.wait_for_lines(3, Duration::from_secs(20)), 3);
    let lines = run.lines();
    run.join(Duration::from_secs(30)).expect("source ends");
    assert_eq!(
        lines,
        vec![b"\0".to_vec(), b"{\"a\": 1}".to_vec(), b"\0".to_vec()]
    );
    assert_eq!(stats.empty_payloads.load(Ordering::Relaxed), 2);
}

#[test]
fn tls_and_mutual_tls_round_trip() {
    let (Some(tls_url), Some(mtls_url), Some(_), Some(_), Some(_)) = (
        testing::env(testing::TLS_URL_VAR),
        testing::env(testing::MTLS_URL_VAR),
        testing::env(testing::CA_VAR),
        testing::env(testing::CLIENT_CERT_VAR),
        testing::env(testing::CLIENT_KEY_VAR),
    ) else {
        return;
    };
    let topic = testing::unique("iotflow-tls");
    // The source on the mutual-TLS listener, the publisher on the TLS one.
    let source = MqttSource::new(
        MqttSourceConfig {
            tls: tls(true, true),
            ..source_config(
                &mtls_url,
                std::slice::from_ref(&topic),
                &testing::unique("src"),
            )
        },
        0,
        1,
        vec![],
    )
    .expect("source");
    let stats = source.stats();
    let run = SourceRun::spawn(source);
    wait_subscribed(&stats, &run);
    let lines = numbered(20, 0);
    testing::publish_with(
        MqttSinkConfig {
            url: tls_url,
            topic,
            tls: tls(true, false),
            ..MqttSinkConfig::default()
        },
        &lines,
    )
    .expect("publish over TLS");
    assert_eq!(run.wait_for_lines(20, Duration::from_secs(20)), 20);
    let got = run.lines();
    run.join(Duration::from_secs(30)).expect("source ends");
    assert_eq!(seqs(&got), (0..20).collect::<Vec<_>>());
}

#[test]
fn mutual_tls_without_a_client_certificate_fails_clearly() {
    let (Some(mtls_url), Some(_)) = (
        testing::env(testing::MTLS_URL_VAR),
        testing::env(testing::CA_VAR),
    ) else {
        return;
    };
    let source = MqttSource::new(
        MqttSourceConfig {
            tls: tls(true, false),
            stop_after_idle_ms: None,
            ..source_config(&mtls_url, &["x/#".to_owned()], &testing::unique("src"))
        },
        0,
        1,
        vec![],
    )
    .expect("config is valid");
    let run = SourceRun::spawn(source);
    let started = Instant::now();
    let err = run
        .join(Duration::from_secs(20))
        .expect_err("a broker that requires a client certificate refuses us");
    let msg = err.to_string();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        msg.contains("certificate"),
        "the error should say what is missing: {msg}"
    );
    eprintln!("mTLS without a client certificate: {msg}");

    // The sink reports it too (on close, at the latest).
    let mut sink = MqttRawSink::new(MqttSinkConfig {
        url: mtls_url,
        topic: "x/y".into(),
        tls: tls(true, false),
        close_timeout_secs: 10,
        ..MqttSinkConfig::default()
    })
    .expect("config is valid");
    let wrote = Sink::<Vec<u8>>::write(&mut sink, &[b"{}".to_vec()]);
    let closed = Sink::<Vec<u8>>::close(&mut sink);
    let e = wrote.and(closed).expect_err("nothing can be published");
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[test]
fn acks_wait_for_completed_checkpoints() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    const N: usize = 50;
    let topic = testing::unique("iotflow-acks");
    let client_id = testing::unique("src-acks");
    let config = source_config(&url, &[format!("{topic}/#")], &client_id);
    let key: Arc<str> = Arc::from(format!("mqtt:{client_id}"));
    let at = |n: u64| {
        vec![Resume {
            partition: key.clone(),
            position: Position::Offset(n),
        }]
    };

    // Run 1: read everything, a checkpoint that never completes.
    let ctx = JobContext::new();
    let commits = Commits::new(&ctx);
    let mut source = MqttSource::new(config.clone(), 0, 1, vec![]).expect("source");
    source.attach_commits(commits.clone());
    let stats = source.stats();
    let run = SourceRun::spawn(source);
    wait_subscribed(&stats, &run);
    testing::publish_lines(&url, &format!("{topic}/a"), &numbered(N, 0), 1).expect("publish");
    assert_eq!(run.wait_for_lines(N, Duration::from_secs(20)), N);
    commits.record(1, at(N as u64));
    run.close(); // the job stops…
    ctx.end_commits(); // …and its checkpoint never completed
    run.join(Duration::from_secs(20)).expect("run 1 ends");
    assert_eq!(
        stats.acks.load(Ordering::Relaxed),
        0,
        "nothing acknowledged without a checkpoint"
    );

    // Run 2, same client id: all N again; a checkpoint covering 20 completes.
    let ctx = JobContext::new();
    let commits = Commits::new(&ctx);
    let mut source = MqttSource::new(config.clone(), 0, 1, vec![]).expect("source");
    source.attach_commits(commits.clone());
    let stats = source.stats();
    let run = SourceRun::spawn(source);
    assert_eq!(
        run.wait_for_lines(N, Duration::from_secs(20)),
        N,
        "unacknowledged messages are redelivered"
    );
    assert_eq!(seqs(&run.lines()), (0..N as u64).collect::<Vec<_>>());
    assert_eq!(stats.acks.load(Ordering::Relaxed), 0);
    commits.record(1, at(20));
    commits.record(2, at(N as u64));
    ctx.checkpoint_committed(1);
    wait_until("20 acks", Duration::from_secs(10), || {
        stats.acks.load(Ordering::Relaxed) == 20
    });
    run.close();
    ctx.end_commits(); // checkpoint 2 never completes
    run.join(Duration::from_secs(20)).expect("run 2 ends");
    assert_eq!(stats.acks.load(Ordering::Relaxed), 20);

    // Run 3 (no checkpoints: acks on hand-off): only the 30 unacknowledged.
    let source = MqttSource::new(config.clone(), 0, 1, vec![]).expect("source");
    let stats = source.stats();
    let run = SourceRun::spawn(source);
    run.wait_for_lines(N - 20, Duration::from_secs(20));
    let got = run.lines();
    run.join(Duration::from_secs(30))
        .expect("run 3 ends after idling");
    assert_eq!(
        seqs(&got),
        (20..N as u64).collect::<Vec<_>>(),
        "acked messages are not redelivered"
    );
    assert_eq!(stats.acks.load(Ordering::Relaxed), (N - 20) as u64);

    // Run 4: nothing left.
    let source = MqttSource::new(config, 0, 1, vec![]).expect("source");
    let run = SourceRun::spawn(source);
    run.wait_for_lines(1, Duration::from_secs(3));
    let got = run.lines();
    run.join(Duration::from_secs(30)).expect("run 4 ends");
    assert!(got.is_empty(), "everything was acknowledged: {got:?}");
}

#[test]
fn broker_restart_mid_stream_loses_nothing_at_qos1() {
    restart_mid_stream(false);
}

#[test]
fn broker_restart_mid_stream_loses_nothing_with_acks_held_for_checkpoints() {
    restart_mid_stream(true);
}

/// A private mosquitto (persistence on) is stopped and started again while
/// a QoS 1 publisher (persistent session, retries) is publishing and the
/// source is reading; every message must arrive. With `checkpointed`, the
/// source holds its acks for checkpoints taken every 100 ms.
fn restart_mid_stream(checkpointed: bool) {
    let Some(bin) = testing::env(testing::MOSQUITTO_VAR) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Mosquitto::start(bin.as_ref(), dir.path()).expect("private mosquitto");
    let url = broker.url();
    let topic = testing::unique("iotflow-restart");
    let mut source = MqttSource::new(
        MqttSourceConfig {
            stop_after_idle_ms: Some(4_000),
            ..source_config(&url, &[format!("{topic}/#")], &testing::unique("src"))
        },
        0,
        1,
        vec![],
    )
    .expect("source");
    let ctx = JobContext::new();
    let commits = Commits::new(&ctx);
    if checkpointed {
        source.attach_commits(commits.clone());
    }
    let stats = source.stats();
    let run = SourceRun::spawn(source);
    wait_subscribed(&stats, &run);
    // A checkpoint of everything handed on so far, completed at once.
    let mut checkpoint_id = 0u64;
    let mut checkpoint = |run: &SourceRun| {
        if !checkpointed {
            return;
        }
        if let Some(r) = run.chunks().iter().rev().find_map(|c| c.resume.clone()) {
            checkpoint_id += 1;
            commits.record(checkpoint_id, vec![r]);
            ctx.checkpoint_committed(checkpoint_id);
        }
    };

    const N: usize = 3_000;
    let mut sink = MqttRawSink::new(MqttSinkConfig {
        url,
        topic: format!("{topic}/data"),
        client_id: Some(testing::unique("pub")),
        reconnect: BackoffConfig {
            initial_ms: 50,
            max_ms: 500,
        },
        close_timeout_secs: 60,
        ..MqttSinkConfig::default()
    })
    .expect("sink");
    let sink_stats = sink.stats();
    let publisher = std::thread::spawn(move || -> iotflow_core::Result<()> {
        let lines: Vec<Vec<u8>> = numbered(N, 0).into_iter().map(String::into_bytes).collect();
        for batch in lines.chunks(50) {
            Sink::<Vec<u8>>::write(&mut sink, batch)?;
            std::thread::sleep(Duration::from_millis(10));
        }
        Sink::<Vec<u8>>::close(&mut sink)
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    while sink_stats.acked.load(Ordering::Relaxed) < (N / 3) as u64 {
        assert!(
            Instant::now() < deadline,
            "a third not published within 30 s"
        );
        checkpoint(&run);
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.stop().expect("stop broker");
    std::thread::sleep(Duration::from_millis(1_000));
    broker.resume().expect("start broker again");
    while !publisher.is_finished() {
        checkpoint(&run);
        std::thread::sleep(Duration::from_millis(100));
    }
    publisher
        .join()
        .expect("publisher thread")
        .expect("every QoS 1 message acknowledged across the restart");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut distinct = BTreeSet::new();
    while distinct.len() < N && Instant::now() < deadline && !run.is_finished() {
        distinct = seqs(&run.lines()).into_iter().collect();
        checkpoint(&run);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    checkpoint(&run);
    let lines = run.lines();
    if checkpointed {
        // Wait for the source to idle out, then end the job's commits.
        while !run.is_finished() && stats.acks.load(Ordering::Relaxed) < lines.len() as u64 {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(4_500));
        ctx.end_commits();
    }
    run.join(Duration::from_secs(30))
        .expect("source ends after idling");
    let distinct: BTreeSet<u64> = seqs(&lines).into_iter().collect();
    let missing: Vec<u64> = (0..N as u64).filter(|i| !distinct.contains(i)).collect();
    eprintln!(
        "broker restart (acks {}): {N} published, {} received, {} distinct, {} duplicates, \
         {} redelivered, {} redeliveries recognised and skipped, {} acks, {} source reconnects, {} sink reconnects",
        if checkpointed {
            "on checkpoints"
        } else {
            "on hand-off"
        },
        lines.len(),
        distinct.len(),
        lines.len() - distinct.len(),
        stats.redelivered.load(Ordering::Relaxed),
        stats.redeliveries_skipped.load(Ordering::Relaxed),
        stats.acks.load(Ordering::Relaxed),
        stats.reconnects.load(Ordering::Relaxed),
        sink_stats.reconnects.load(Ordering::Relaxed),
    );
    assert!(
        missing.is_empty(),
        "lost {} messages, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        stats.reconnects.load(Ordering::Relaxed) >= 1,
        "the source saw the restart"
    );
}

#[test]
fn sink_fills_topic_templates_and_reports_missing_fields() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    let prefix = testing::unique("iotflow-sink");
    let sub = Subscriber::start(&url, &format!("{prefix}/#"), None).expect("subscriber");
    let mut sink: MqttSink<serde_json::Value> = MqttSink::new(MqttSinkConfig {
        url,
        topic: format!("{prefix}/devices/{{device}}/metrics/{{metric}}"),
        ..MqttSinkConfig::default()
    })
    .expect("sink");
    let batch = vec![
        json!({"device": "d1", "metric": "temp", "value": 1.0}),
        json!({"device": "d2", "value": 2.0}),
        json!({"device": "d3", "metric": "hum", "value": 3.0}),
    ];
    let err = sink.write(&batch).expect_err("record 1 has no metric");
    assert!(
        err.to_string().contains("record 1") && err.to_string().contains("`metric`"),
        "{err}"
    );
    sink.write(&batch[..1]).expect("write");
    sink.close().expect("close");
    let stats = sink.stats();
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
    assert_eq!(stats.acked.load(Ordering::Relaxed), 3);

    let got = sub.wait_for(3, Duration::from_secs(10));
    let mut topics: Vec<String> = got.iter().map(|r| r.topic.clone()).collect();
    topics.sort();
    assert_eq!(
        topics,
        vec![
            format!("{prefix}/devices/d1/metrics/temp"),
            format!("{prefix}/devices/d1/metrics/temp"),
            format!("{prefix}/devices/d3/metrics/hum"),
        ]
    );
    let v: serde_json::Value = serde_json::from_slice(&got[0].payload).expect("json payload");
    assert_eq!(v["device"], "d1");
}

#[test]
fn only_worker_zero_reads_without_a_shared_group() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    let source = MqttSource::new(
        source_config(&url, &["x".to_owned()], &testing::unique("src")),
        1,
        2,
        vec![],
    )
    .expect("source");
    let run = SourceRun::spawn(source);
    run.join(Duration::from_secs(5))
        .expect("worker 1 returns at once");
}

#[test]
fn shared_group_spreads_messages_over_workers() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    let topic = testing::unique("iotflow-shared");
    let group = testing::unique("g");
    let client = testing::unique("src");
    let config = MqttSourceConfig {
        shared_group: Some(group),
        ..source_config(&url, std::slice::from_ref(&topic), &client)
    };
    let runs: Vec<(SourceRun, Arc<MqttSourceStats>)> = (0..2)
        .map(|w| {
            let s = MqttSource::new(config.clone(), w, 2, vec![]).expect("source");
            assert_eq!(&*s.partition(), format!("mqtt:{client}-{w}"));
            let stats = s.stats();
            (SourceRun::spawn(s), stats)
        })
        .collect();
    for (run, stats) in &runs {
        wait_subscribed(stats, run);
    }
    const N: usize = 200;
    testing::publish_lines(&url, &topic, &numbered(N, 0), 1).expect("publish");
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs.iter().map(|(r, _)| r.lines().len()).sum::<usize>() < N && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut all = Vec::new();
    let mut per_worker = Vec::new();
    for (run, _) in runs {
        let lines = run.lines();
        per_worker.push(lines.len());
        all.extend(seqs(&lines));
        run.join(Duration::from_secs(30)).expect("source ends");
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..N as u64).collect::<Vec<_>>(),
        "each message to exactly one worker"
    );
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers got some: {per_worker:?}"
    );
}
