//! Configuration of the Kafka source and sink (serde; the doc comments are
//! the user documentation of the `[source.kafka]` / `[sink.kafka]` tables).

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a partition that has no checkpointed position starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// The oldest message the broker still holds.
    Earliest,
    /// Only messages produced after the source starts.
    Latest,
    /// The offset committed for `group_id`; partitions without one (or a
    /// source without `group_id`) start at the earliest. The default.
    #[default]
    Committed,
}

/// Configuration of [`KafkaSource`](crate::KafkaSource).
///
/// ```toml
/// brokers = "127.0.0.1:9092"
/// topics = ["readings"]
/// group_id = "fleet-monitor"
/// start = "committed"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`. Default `127.0.0.1:9092`.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Topics to read (all their partitions). Required.
    pub topics: Vec<String>,
    /// Consumer group the source commits its offsets to, after each
    /// completed checkpoint (so lag tools see progress) — never
    /// automatically on its own. Partitions are not assigned through the
    /// group: every worker computes its share itself. Default: none (no
    /// commits; `start = "committed"` then means earliest).
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where partitions without a checkpointed position start. Default
    /// `committed`.
    #[serde(default)]
    pub start: StartFrom,
    /// Bounded mode: read each partition up to the high watermark it had
    /// when the source started, then end. Default `false` (read forever).
    #[serde(default)]
    pub stop_at_end: bool,
    /// How often to look for new partitions of the topics, in ms (ignored
    /// in bounded mode); `0` turns discovery off. Default 30 000.
    #[serde(default = "default_discovery_ms")]
    pub discovery_interval_ms: u64,
    /// Largest chunk handed to the worker, in bytes: messages of one
    /// partition are batched up to this size. Default 262 144 (256 KiB).
    #[serde(default = "default_chunk_bytes")]
    pub max_chunk_bytes: usize,
    /// How often offsets are committed when the job does NOT checkpoint
    /// (what was handed to the worker is committed then), in ms. With
    /// checkpoints, offsets are committed when a checkpoint completes.
    /// Default 5 000.
    #[serde(default = "default_commit_ms")]
    pub commit_interval_ms: u64,
    /// Timeout of metadata, watermark and offset requests, in ms. Default
    /// 10 000.
    #[serde(default = "default_request_ms")]
    pub request_timeout_ms: u64,
    /// Extra librdkafka consumer properties, passed through as given (for
    /// example `security.protocol`, `sasl.mechanisms`, `sasl.username`,
    /// `fetch.max.bytes`). They override the connector's own settings,
    /// except `bootstrap.servers`, `group.id` and `enable.auto.commit`,
    /// which have fields or are fixed.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_brokers() -> String {
    "127.0.0.1:9092".to_owned()
}
fn default_discovery_ms() -> u64 {
    30_000
}
fn default_chunk_bytes() -> usize {
    256 * 1024
}
fn default_commit_ms() -> u64 {
    5_000
}
fn default_request_ms() -> u64 {
    10_000
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            brokers: default_brokers(),
            topics: Vec::new(),
            group_id: None,
            start: StartFrom::default(),
            stop_at_end: false,
            discovery_interval_ms: default_discovery_ms(),
            max_chunk_bytes: default_chunk_bytes(),
            commit_interval_ms: default_commit_ms(),
            request_timeout_ms: default_request_ms(),
            properties: BTreeMap::new(),
        }
    }
}

/// Properties the connector owns: set through fields, or fixed.
const RESERVED: [&str; 5] = [
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

fn check_properties(props: &BTreeMap<String, String>, reserved: &[&str]) -> Result<()> {
    for k in props.keys() {
        if reserved.contains(&k.as_str()) {
            return Err(Error::Config(format!(
                "property {k} is set by the connector (use its own field, or leave it)"
            )));
        }
    }
    Ok(())
}

impl KafkaSourceConfig {
    /// A config reading `topics` from `brokers`, defaults otherwise.
    pub fn new(brokers: impl Into<String>, topics: &[&str]) -> Self {
        KafkaSourceConfig {
            brokers: brokers.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            ..KafkaSourceConfig::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(Error::Config("brokers is empty".into()));
        }
        if self.topics.is_empty() {
            return Err(Error::Config("topics is empty".into()));
        }
        for (i, t) in self.topics.iter().enumerate() {
            if t.is_empty() || t.contains('\0') {
                return Err(Error::Config(format!("bad topic name {t:?}")));
            }
            if self.topics[..i].contains(t) {
                return Err(Error::Config(format!("topic {t} listed twice")));
            }
        }
        if self.group_id.as_deref().is_some_and(str::is_empty) {
            return Err(Error::Config("group_id is empty".into()));
        }
        if self.max_chunk_bytes < 1024 {
            return Err(Error::Config(format!(
                "max_chunk_bytes = {} is below 1024",
                self.max_chunk_bytes
            )));
        }
        if self.request_timeout_ms == 0 {
            return Err(Error::Config("request_timeout_ms must be > 0".into()));
        }
        check_properties(&self.properties, &RESERVED)
    }

    /// The librdkafka consumer configuration of worker `worker`.
    pub(crate) fn client_config(&self, worker: usize) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("iotflow-kafka-source-{worker}"))
            // Offsets are committed by the source, explicitly, only for
            // input a completed checkpoint holds.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A position the broker no longer holds (retention) restarts at
            // the oldest one it has: loss the user can see in lag metrics,
            // rather than a stuck job.
            .set("auto.offset.reset", "earliest")
            // Big fetches: fewer round trips, bigger chunks.
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "4194304")
            .set("queued.min.messages", "200000");
        if self.stop_at_end {
            // Bounded mode ends a partition when librdkafka reports that
            // its fetcher reached the end (see `KafkaSource`).
            c.set("enable.partition.eof", "true");
            // The last fetch of each partition waits this long for data
            // that will not come before the end is reported.
            c.set("fetch.wait.max.ms", "100");
        }
        // librdkafka's consumer needs a group even for assign(); without a
        // configured one it gets a name of its own and nothing is
        // committed to it.
        c.set(
            "group.id",
            self.group_id
                .as_deref()
                .unwrap_or("iotflow-kafka-uncommitted"),
        );
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Compression codec of produced batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (zlib, built in through the `libz` feature).
    Gzip,
    /// Snappy (librdkafka's own copy).
    Snappy,
    /// LZ4 (librdkafka's own copy). The default: cheap on CPU, good on JSON.
    #[default]
    Lz4,
    /// Zstandard (through the `zstd` feature).
    Zstd,
}

impl Compression {
    /// librdkafka's name of the codec.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Configuration of [`KafkaSink`](crate::KafkaSink) and
/// [`KafkaRawSink`](crate::KafkaRawSink).
///
/// ```toml
/// brokers = "127.0.0.1:9092"
/// topic = "alerts"
/// compression = "zstd"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`. Default `127.0.0.1:9092`.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Topic to write. Required.
    pub topic: String,
    /// Codec of produced batches. Default `lz4`.
    #[serde(default)]
    pub compression: Compression,
    /// How long the producer waits to fill a batch, in ms (`linger.ms`).
    /// Default 5.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Largest batch per partition, in bytes (`batch.size`). Default
    /// 1 000 000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The idempotent producer (`enable.idempotence`): no duplicates or
    /// reordering from the producer's own retries. Default `true`.
    #[serde(default = "default_true")]
    pub idempotence: bool,
    /// How long a message may wait for delivery, retries included, before
    /// it counts as failed (`message.timeout.ms`). Default 30 000.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// How long `close` waits for outstanding deliveries, in ms. Default
    /// 60 000.
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// Extra librdkafka producer properties, passed through as given (for
    /// example `security.protocol`, `sasl.*`, `acks`, `batch.num.messages`).
    /// They override the connector's own settings except
    /// `bootstrap.servers`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_linger_ms() -> u64 {
    5
}
fn default_batch_size() -> usize {
    1_000_000
}
fn default_true() -> bool {
    true
}
fn default_message_timeout_ms() -> u64 {
    30_000
}
fn default_flush_timeout_ms() -> u64 {
    60_000
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            brokers: default_brokers(),
            topic: String::new(),
            compression: Compression::default(),
            linger_ms: default_linger_ms(),
            batch_size: default_batch_size(),
            idempotence: true,
            message_timeout_ms: default_message_timeout_ms(),
            flush_timeout_ms: default_flush_timeout_ms(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSinkConfig {
    /// A config writing `topic` on `brokers`, defaults otherwise.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaSinkConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            ..KafkaSinkConfig::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(Error::Config("brokers is empty".into()));
        }
        if self.topic.is_empty() || self.topic.contains('\0') {
            return Err(Error::Config(format!("bad topic name {:?}", self.topic)));
        }
        if self.batch_size == 0 || self.batch_size > i32::MAX as usize {
            return Err(Error::Config(format!(
                "batch_size = {} is out of range",
                self.batch_size
            )));
        }
        if self.message_timeout_ms == 0 {
            return Err(Error::Config("message_timeout_ms must be > 0".into()));
        }
        check_properties(
            &self.properties,
            &["bootstrap.servers", "metadata.broker.list"],
        )
    }

    /// The librdkafka producer configuration.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "iotflow-kafka-sink")
            .set("compression.type", self.compression.as_str())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size.to_string())
            .set("batch.num.messages", "100000")
            .set("queue.buffering.max.kbytes", "262144")
            .set("enable.idempotence", self.idempotence.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string());
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_defaults_and_toml() {
        let c: KafkaSourceConfig = toml::from_str(
            r#"
            topics = ["a", "b"]
            group_id = "g"
            start = "earliest"
            [properties]
            "security.protocol" = "plaintext"
            "#,
        )
        .expect("valid config");
        assert_eq!(c.brokers, "127.0.0.1:9092");
        assert_eq!(c.start, StartFrom::Earliest);
        assert_eq!(c.discovery_interval_ms, 30_000);
        assert!(!c.stop_at_end);
        c.validate().expect("valid config");
        let cc = c.client_config(1);
        assert_eq!(cc.get("enable.auto.commit"), Some("false"));
        assert_eq!(cc.get("group.id"), Some("g"));
        assert_eq!(cc.get("security.protocol"), Some("plaintext"));
        let d: KafkaSourceConfig = toml::from_str("topics = [\"a\"]").expect("valid config");
        assert_eq!(d.start, StartFrom::Committed);
        assert_eq!(d, KafkaSourceConfig::new("127.0.0.1:9092", &["a"]));
    }

    #[test]
    fn source_rejects_bad_values() {
        assert!(toml::from_str::<KafkaSourceConfig>("topics = [\"a\"]\nbogus = 1").is_err());
        let bad = |f: &dyn Fn(&mut KafkaSourceConfig)| {
            let mut c = KafkaSourceConfig::new("b:9092", &["t"]);
            f(&mut c);
            c.validate().expect_err("must fail")
        };
        bad(&|c| c.topics.clear());
        bad(&|c| c.topics.push("t".into()));
        bad(&|c| c.brokers = " ".into());
        bad(&|c| c.group_id = Some(String::new()));
        bad(&|c| c.max_chunk_bytes = 10);
        let e = bad(&|c| {
            c.properties
                .insert("enable.auto.commit".into(), "true".into());
        });
        assert!(e.to_string().contains("enable.auto.commit"), "{e}");
        bad(&|c| {
            c.properties.insert("group.id".into(), "x".into());
        });
    }

    #[test]
    fn sink_defaults_and_codecs() {
        let c: KafkaSinkConfig =
            toml::from_str("topic = \"out\"\ncompression = \"zstd\"").expect("valid config");
        c.validate().expect("valid config");
        assert!(c.idempotence);
        assert_eq!(c.linger_ms, 5);
        let cc = c.client_config();
        assert_eq!(cc.get("compression.type"), Some("zstd"));
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        for (s, k) in [
            ("none", Compression::None),
            ("gzip", Compression::Gzip),
            ("snappy", Compression::Snappy),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            assert_eq!(k.as_str(), s);
        }
        assert!(
            toml::from_str::<KafkaSinkConfig>("topic = \"o\"\ncompression = \"brotli\"").is_err()
        );
        assert!(KafkaSinkConfig::new("b", "").validate().is_err());
    }
}
