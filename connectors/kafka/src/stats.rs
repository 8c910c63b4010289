//! Counters of a running source or sink, shared as atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one [`KafkaSource`](crate::KafkaSource) instance.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Messages handed to the worker.
    pub messages: AtomicU64,
    /// Payload bytes handed to the worker (before the added newlines).
    pub bytes: AtomicU64,
    /// Empty or whitespace-only payloads, each handed on as one `0x00` line.
    pub empty_payloads: AtomicU64,
    /// Chunks sent (announcements and ends included).
    pub chunks: AtomicU64,
    /// Partitions this instance reads.
    pub partitions: AtomicU64,
    /// Errors reported by librdkafka (it retries them itself) or retried
    /// requests of the source.
    pub retries: AtomicU64,
    /// Offset commits sent to the group.
    pub commits: AtomicU64,
    /// Offset commits the broker refused (the checkpoint still holds the
    /// positions: nothing is lost, lag tools just lag).
    pub commit_failures: AtomicU64,
}

/// Counters of one [`KafkaSink`](crate::KafkaSink) or
/// [`KafkaRawSink`](crate::KafkaRawSink).
#[derive(Debug, Default)]
pub struct KafkaSinkStats {
    /// Messages handed to the producer.
    pub sent: AtomicU64,
    /// Messages the brokers acknowledged.
    pub delivered: AtomicU64,
    /// Messages that failed for good (after librdkafka's own retries).
    pub failed: AtomicU64,
    /// Payload bytes handed to the producer.
    pub bytes: AtomicU64,
    /// Times the producer's queue was full and the sink waited.
    pub queue_full_waits: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
