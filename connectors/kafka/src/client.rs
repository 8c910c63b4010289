//! librdkafka client contexts: its logs and errors go to `tracing`, and
//! what it reports asynchronously (commits, deliveries) to the counters.

use std::sync::{Arc, Mutex};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use rdkafka::{ClientContext, Message, TopicPartitionList};

use crate::stats::{KafkaSinkStats, KafkaStats, add};

fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac}: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}

/// Context of the source's consumer.
pub(crate) struct SourceContext {
    pub(crate) stats: Arc<KafkaStats>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka retries these itself (broker down, connection reset).
        add(&self.stats.retries, 1);
        tracing::warn!(target: "librdkafka", "consumer: {error}: {reason}");
    }
}

impl ConsumerContext for SourceContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "offsets committed"),
            Err(e) => {
                add(&self.stats.commit_failures, 1);
                tracing::warn!(
                    partitions = offsets.count(),
                    "offset commit failed (positions stay in the checkpoint): {e}"
                );
            }
        }
    }
}

/// How many delivery failures the sink keeps the reason of.
const KEPT_FAILURES: usize = 8;

/// Context of the sink's producer: counts delivery reports.
pub(crate) struct SinkContext {
    pub(crate) stats: Arc<KafkaSinkStats>,
    /// The first few failure reasons.
    pub(crate) failures: Mutex<Vec<String>>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", "producer: {error}: {reason}");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => add(&self.stats.delivered, 1),
            Err((e, m)) => {
                let n = self
                    .stats
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let what = format!("{}[{}]: {e}", m.topic(), m.partition());
                if n == 0 {
                    tracing::error!("kafka delivery failed: {what}");
                }
                if let Ok(mut f) = self.failures.lock()
                    && f.len() < KEPT_FAILURES
                {
                    f.push(what);
                }
            }
        }
    }
}
