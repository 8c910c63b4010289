//! Kafka throughput on this machine: produce M fleet-like JSON messages
//! (~150 bytes) with the raw sink, then read them back with bounded
//! `KafkaSource`s on 1 and 2 workers, printing messages/s.
//!
//! ```text
//! .ci/services.sh start     # tansu on 127.0.0.1:9092
//! cargo run --release -p iotflow-kafka --example kafka_throughput -- 2000000
//! ```
//!
//! Arguments: `[MESSAGES] [PARTITIONS]` (defaults 200000 and 4); brokers
//! from `IOTFLOW_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`). The broker
//! runs on the same two cores, so the figures include its share.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use iotflow_core::bridge::bridge;
use iotflow_core::sink::Sink;
use iotflow_core::source::{Chunk, Source};
use iotflow_kafka::testing;
use iotflow_kafka::{
    Compression, KafkaRawSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig, RawRecord,
    StartFrom,
};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let partitions: i32 = args.next().map_or(Ok(4), |a| a.parse())?;
    let brokers = std::env::var(testing::BROKERS_ENV).unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = testing::unique_topic("throughput");
    testing::create_topic(&brokers, &topic, partitions).context("create topic")?;
    println!("topic {topic}: {partitions} partitions on {brokers}; {messages} messages");

    // Produce: keyed by device, lz4, idempotent (the sink's defaults).
    let config = KafkaSinkConfig {
        compression: Compression::Lz4,
        ..KafkaSinkConfig::new(&brokers, &topic)
    };
    let mut sink = KafkaRawSink::new(config)?;
    let mut bytes = 0u64;
    let t0 = Instant::now();
    let mut batch: Vec<RawRecord> = Vec::with_capacity(1000);
    for i in 0..messages {
        let device = format!("d-{:05}", i % 10_000);
        let mut payload = Vec::with_capacity(160);
        write!(
            payload,
            r#"{{"device_id":"{device}","tenant":"t-{:03}","ts":{},"metric":"temp","value":{:.2},"unit":"C","site":"plant-{:02}","fw":"1.4.{}","battery":{:.1}}}"#,
            i % 50,
            1_700_000_000_000u64 + i as u64 * 10,
            20.0 + (i % 1000) as f64 / 100.0,
            i % 17,
            i % 9,
            50.0 + (i % 500) as f64 / 10.0
        )?;
        bytes += payload.len() as u64;
        batch.push(RawRecord {
            key: Some(device.into_bytes()),
            payload,
        });
        if batch.len() == batch.capacity() {
            Sink::<RawRecord>::write(&mut sink, &batch)?;
            batch.clear();
        }
    }
    Sink::<RawRecord>::write(&mut sink, &batch)?;
    Sink::<RawRecord>::close(&mut sink)?;
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "produce: {messages} msgs, {:.0} B/msg avg, {:.2} s, {:.0} msgs/s, {:.1} MB/s",
        bytes as f64 / messages as f64,
        dt,
        messages as f64 / dt,
        bytes as f64 / dt / 1e6
    );

    for workers in [1usize, 2] {
        let t0 = Instant::now();
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let config = KafkaSourceConfig {
                    start: StartFrom::Earliest,
                    stop_at_end: true,
                    ..KafkaSourceConfig::new(&brokers, &[&topic])
                };
                let mut source = KafkaSource::new(config, w, workers, vec![])?;
                Ok(std::thread::spawn(move || -> Result<(u64, u64)> {
                    let (tx, mut rx) = bridge::<iotflow_core::Result<Chunk>>(4, None);
                    let counter = std::thread::spawn(move || {
                        let (mut lines, mut bytes) = (0u64, 0u64);
                        while let Some(Ok(c)) = rx.recv_blocking() {
                            lines += memchr_count(&c.data);
                            bytes += c.data.len() as u64;
                        }
                        (lines, bytes)
                    });
                    source.run(&tx)?;
                    drop(tx);
                    counter
                        .join()
                        .map_err(|_| anyhow::anyhow!("counter panicked"))
                }))
            })
            .collect::<Result<_>>()?;
        let (mut lines, mut bytes) = (0u64, 0u64);
        for h in handles {
            let (l, b) = h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
            lines += l;
            bytes += b;
        }
        let dt = t0.elapsed().as_secs_f64();
        anyhow::ensure!(
            lines == messages as u64,
            "read {lines} of {messages} messages"
        );
        println!(
            "consume, {workers} worker(s): {lines} msgs, {dt:.2} s, {:.0} msgs/s, {:.1} MB/s",
            lines as f64 / dt,
            bytes as f64 / dt / 1e6
        );
    }
    Ok(())
}

fn memchr_count(data: &[u8]) -> u64 {
    data.iter().filter(|b| **b == b'\n').count() as u64
}
