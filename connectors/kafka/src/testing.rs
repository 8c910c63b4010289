//! Helpers for tests that talk to a real broker (this crate's, and the
//! pipeline's end-to-end tests): create topics, produce lines, read a topic
//! back. They block, use the bundled librdkafka like the connector, and
//! only ever talk to the brokers they are given (tests pass
//! `IOTFLOW_TEST_KAFKA_BROKERS`, which `.ci/services.sh` points at a local
//! broker on 127.0.0.1).
//!
//! ```no_run
//! use iotflow_kafka::testing;
//! let Some(brokers) = testing::brokers_from_env() else { return Ok(()) };
//! let topic = testing::unique_topic("demo");
//! testing::create_topic(&brokers, &topic, 4)?;
//! testing::produce_lines(&brokers, &topic, &["{\"a\":1}", "{\"a\":2}"], testing::Keying::RoundRobin)?;
//! let back = testing::read_all(&brokers, &topic)?;
//! assert_eq!(back.len(), 2);
//! # Ok::<(), iotflow_kafka::Error>(())
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result};

/// The environment variable naming the test brokers.
pub const BROKERS_ENV: &str = "IOTFLOW_TEST_KAFKA_BROKERS";

/// The brokers of `IOTFLOW_TEST_KAFKA_BROKERS`, or `None` after printing
/// `skipped: set IOTFLOW_TEST_KAFKA_BROKERS (see .ci/services.sh)` to
/// stderr: a test then returns early and passes.
pub fn brokers_from_env() -> Option<String> {
    match std::env::var(BROKERS_ENV) {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ => {
            eprintln!("skipped: set {BROKERS_ENV} (see .ci/services.sh)");
            None
        }
    }
}

/// A topic name no other test (or earlier run against the same broker)
/// uses: `{prefix}-{pid}-{nanos}-{n}`.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// Creates `topic` with `partitions` partitions (replication 1); an
/// existing topic is an error. Waits until its metadata shows them all.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| Error::client("create admin client", e))?;
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .map_err(|e| Error::client(format!("create topic {topic}"), e))?;
    for r in results {
        if let Err((t, code)) = r {
            return Err(Error::Topic {
                topic: t,
                reason: format!("create: {code}"),
            });
        }
    }
    // Metadata may lag the creation a little.
    let consumer = plain_consumer(brokers)?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let n = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|md| {
                md.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len())
            });
        if n == Some(partitions as usize) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Topic {
                topic: topic.to_owned(),
                reason: format!("created, but metadata shows {n:?} partitions"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Grows `topic` to `total` partitions.
pub fn add_partitions(brokers: &str, topic: &str, total: usize) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| Error::client("create admin client", e))?;
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let new = NewPartitions::new(topic, total);
    let results = futures_executor::block_on(admin.create_partitions([&new], &opts))
        .map_err(|e| Error::client(format!("add partitions to {topic}"), e))?;
    for r in results {
        if let Err((t, code)) = r {
            return Err(Error::Topic {
                topic: t,
                reason: format!("add partitions: {code}"),
            });
        }
    }
    Ok(())
}

/// How [`produce_lines`] places messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    /// Unkeyed; message `i` goes to partition `i % partitions`.
    RoundRobin,
    /// Keyed by the line's `"device_id"` JSON field (the fleet-v1 wire
    /// format; `"device"` when it has none; librdkafka's partitioner hashes
    /// it), unkeyed when the line has neither.
    ByDevice,
}

/// Produces one message per line and waits until all are acknowledged;
/// returns how many were sent.
pub fn produce_lines<S: AsRef<[u8]>>(
    brokers: &str,
    topic: &str,
    lines: &[S],
    keying: Keying,
) -> Result<u64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| Error::client("create producer", e))?;
    let partitions = match keying {
        Keying::RoundRobin => partition_count(&producer, topic)?,
        Keying::ByDevice => 0,
    };
    for (i, line) in lines.iter().enumerate() {
        let line = line.as_ref();
        let key = match keying {
            Keying::ByDevice => device_field(line),
            Keying::RoundRobin => None,
        };
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(line);
        if let Some(k) = key {
            record = record.key(k);
        }
        if keying == Keying::RoundRobin {
            record = record.partition((i % partitions.max(1)) as i32);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(Error::client(format!("produce to {topic}"), e)),
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| Error::client(format!("flush {topic}"), e))?;
    Ok(lines.len() as u64)
}

fn device_field(line: &[u8]) -> Option<&[u8]> {
    #[derive(serde::Deserialize)]
    struct D<'a> {
        #[serde(borrow)]
        device_id: Option<&'a str>,
        #[serde(borrow)]
        device: Option<&'a str>,
    }
    serde_json::from_slice::<D<'_>>(line)
        .ok()
        .and_then(|d| d.device_id.or(d.device))
        .map(str::as_bytes)
}

fn partition_count(p: &ThreadedProducer<DefaultProducerContext>, topic: &str) -> Result<usize> {
    let md = p
        .client()
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| Error::client(format!("fetch metadata of {topic}"), e))?;
    md.topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Topic {
            topic: topic.to_owned(),
            reason: "not found".into(),
        })
}

fn plain_consumer(brokers: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "iotflow-kafka-testing")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| Error::client("create consumer", e))
}

/// One message read back by [`read_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadBack {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload (empty for none).
    pub payload: Vec<u8>,
}

/// Reads every message `topic` holds now (until librdkafka reports the
/// end of every partition), in partition then offset order.
///
/// The end comes from the fetcher's end-of-partition events, not from the
/// high watermark: tansu reports the base offset of the last record batch
/// + 1 as the high watermark.
pub fn read_all(brokers: &str, topic: &str) -> Result<Vec<ReadBack>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "iotflow-kafka-testing")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(|e| Error::client("create consumer", e))?;
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| Error::client(format!("fetch metadata of {topic}"), e))?;
    let mut open: std::collections::HashSet<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &open {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(|e| Error::client("assign", e))?;
    }
    let mut out = Vec::new();
    if open.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::client("assign", e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !open.is_empty() {
        if std::time::Instant::now() >= deadline {
            return Err(Error::Topic {
                topic: topic.to_owned(),
                reason: format!(
                    "read back timed out with {} partition(s) unfinished",
                    open.len()
                ),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(ReadBack {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            }),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => tracing::debug!("read back: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|m| (m.partition, m.offset));
    Ok(out)
}

/// The offsets `group` has committed for `topic`'s partitions `0..partitions`
/// (`None` where it has none).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<Option<i64>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| Error::client("create consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(|e| Error::client(format!("committed offsets of {group}"), e))?;
    Ok((0..partitions)
        .map(|p| {
            got.find_partition(topic, p).and_then(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            })
        })
        .collect())
}

/// The compression codecs and other features compiled into the bundled
/// librdkafka (its `builtin.features` property).
pub fn builtin_features() -> Result<String> {
    let native = ClientConfig::new()
        .create_native_config()
        .map_err(|e| Error::client("native config", e))?;
    native
        .get("builtin.features")
        .map_err(|e| Error::client("builtin.features", e))
}
