//! Kafka for iotflow: a partitioned source whose offsets live in
//! checkpoints, and batching, compressing, idempotent sinks.
//!
//! # Source
//!
//! [`KafkaSource`] is one timely worker's share of a set of topics. Every
//! worker reads the same metadata and takes the partitions
//! [`assign::owner`] gives it, with `assign()` rather than a consumer-group
//! subscription: no rebalances, and each partition's position comes from
//! the job's checkpoint (key `kafka:{topic}/{partition}`, position the
//! next offset to read), so a job checkpointed with `W` workers resumes on
//! any number. Partitions without a checkpointed position start at the
//! configured [`StartFrom`]; new partitions of the topics are discovered
//! every `discovery_interval_ms` and start at their earliest offset.
//!
//! Messages of one partition are batched into chunks of whole lines (one
//! message per line; see [`KafkaSource`] for line breaks and empty
//! payloads); the pipeline's decoder parses them. Offsets are committed to
//! the consumer group only after the checkpoint that holds them has
//! completed (`enable.auto.commit` is off), so lag tools see progress
//! while the checkpoint stays the truth. In bounded mode (`stop_at_end`)
//! each partition is read up to the high watermark it had at start.
//!
//! # Sinks
//!
//! [`KafkaSink`] writes each record as one JSON message, keyed by a
//! function of the record ([`KafkaSink::keyed_by_device`] for readings,
//! window results and alerts); [`KafkaRawSink`] writes bytes. Both use a
//! `ThreadedProducer` with batching (`linger_ms`, `batch_size`),
//! [`Compression`] (gzip, snappy, lz4, zstd: all built into the bundled
//! librdkafka — snappy and lz4 from its own sources, zlib and zstd through
//! the `libz` / `zstd` features) and the idempotent producer. Every
//! delivery report is counted: `write` fails once a delivery has failed
//! and `close` flushes and fails unless every message was acknowledged.
//!
//! # Security
//!
//! Extra librdkafka properties (`properties` in both configs) are passed
//! through, for example `security.protocol` and `sasl.*`. The workspace
//! builds librdkafka without OpenSSL (its `builtin.features` are `gzip,
//! snappy, sasl, regex, lz4, sasl_gssapi, sasl_plain, plugins, zstd`):
//! `SASL_PLAINTEXT` with `PLAIN` works as is; TLS, SCRAM and OAUTHBEARER
//! need the `ssl` (or `ssl-vendored`) feature of `rdkafka`.
//!
//! # Tests
//!
//! [`testing`] creates topics, produces lines and reads topics back; the
//! tests of this crate and the pipeline's end-to-end tests run against a
//! real broker named by `IOTFLOW_TEST_KAFKA_BROKERS` (`.ci/services.sh`
//! starts one on 127.0.0.1:9092).

pub mod assign;
mod client;
mod commit;
mod config;
mod error;
mod sink;
mod source;
mod stats;
pub mod testing;

pub use config::{Compression, KafkaSinkConfig, KafkaSourceConfig, StartFrom};
pub use error::{Error, Result};
pub use sink::{DeviceKey, KafkaRawSink, KafkaSink, RawRecord};
pub use source::KafkaSource;
pub use stats::{KafkaSinkStats, KafkaStats};
