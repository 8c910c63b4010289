//! The Kafka sinks: records as JSON messages ([`KafkaSink`]) or raw bytes
//! ([`KafkaRawSink`]), through librdkafka's batching, compressing,
//! idempotent producer.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotflow_core::sink::Sink;
use iotflow_types::{Alert, Reading, SeriesKey, WindowResult};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde::Serialize;

use crate::client::SinkContext;
use crate::config::KafkaSinkConfig;
use crate::error::{Error, Result};
use crate::stats::{KafkaSinkStats, add, get};

/// Records whose Kafka key is their device id, so one device's records
/// land in one partition, in order.
pub trait DeviceKey {
    /// The device id.
    fn device_key(&self) -> &str;
}

impl DeviceKey for Reading {
    fn device_key(&self) -> &str {
        self.device.as_str()
    }
}

impl DeviceKey for Alert {
    fn device_key(&self) -> &str {
        self.device.as_str()
    }
}

impl<V> DeviceKey for WindowResult<SeriesKey, V> {
    fn device_key(&self) -> &str {
        self.key.device.as_str()
    }
}

/// One message of the raw sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRecord {
    /// The key (partitioning); `None`: spread over partitions.
    pub key: Option<Vec<u8>>,
    /// The payload, as is.
    pub payload: Vec<u8>,
}

/// Writes a record's key into the buffer; `false`: no key.
type KeyFn<D> = Box<dyn Fn(&D, &mut Vec<u8>) -> bool + Send>;

/// The producer both sinks share.
struct Output {
    producer: ThreadedProducer<SinkContext>,
    context: Arc<SinkContext>,
    config: KafkaSinkConfig,
    stats: Arc<KafkaSinkStats>,
    name: String,
    closed: bool,
}

impl Output {
    fn new(config: KafkaSinkConfig) -> Result<Output> {
        config.validate()?;
        let stats = Arc::new(KafkaSinkStats::default());
        let producer: ThreadedProducer<SinkContext> = config
            .client_config()
            .create_with_context(SinkContext {
                stats: stats.clone(),
                failures: Mutex::new(Vec::new()),
            })
            .map_err(|e| Error::Config(format!("producer: {e}")))?;
        let context = producer.context().clone();
        Ok(Output {
            name: format!("kafka:{}", config.topic),
            producer,
            context,
            config,
            stats,
            closed: false,
        })
    }

    /// Hands one message to the producer, waiting while its queue is full.
    fn send(&self, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.config.topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        let deadline = Instant::now() + Duration::from_millis(self.config.message_timeout_ms);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    add(&self.stats.sent, 1);
                    add(&self.stats.bytes, payload.len() as u64);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    // Backpressure: the background thread drains the queue
                    // as the brokers acknowledge.
                    add(&self.stats.queue_full_waits, 1);
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => {
                    return Err(Error::client(
                        format!("produce to {}", self.config.topic),
                        e,
                    ));
                }
            }
        }
    }

    /// Fails if any delivery failed so far.
    fn check(&self) -> Result<()> {
        let failed = get(&self.stats.failed);
        if failed == 0 {
            return Ok(());
        }
        let first = self
            .context
            .failures
            .lock()
            .ok()
            .and_then(|f| f.first().cloned())
            .unwrap_or_default();
        Err(Error::Delivery {
            topic: self.config.topic.clone(),
            failed,
            first,
        })
    }

    fn close(&mut self) -> Result<()> {
        if self.closed {
            return self.check();
        }
        self.closed = true;
        let timeout = Duration::from_millis(self.config.flush_timeout_ms);
        self.producer
            .flush(timeout)
            .map_err(|e| Error::client(format!("flush {}", self.config.topic), e))?;
        self.check()?;
        let (sent, delivered) = (get(&self.stats.sent), get(&self.stats.delivered));
        if delivered != sent {
            return Err(Error::Delivery {
                topic: self.config.topic.clone(),
                failed: sent.saturating_sub(delivered),
                first: "no delivery report after flush".into(),
            });
        }
        tracing::debug!(sink = %self.name, sent, "kafka sink closed");
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.closed {
            let pending = self.producer.in_flight_count();
            if pending > 0 {
                tracing::warn!(sink = %self.name, pending, "kafka sink dropped without close; flushing");
                let _ = self.producer.flush(Duration::from_secs(5));
            }
        }
    }
}

/// Writes records as JSON messages (one record per message) to a topic.
///
/// Messages are keyed by the key function given ([`with_key`](Self::with_key),
/// [`keyed_by_device`](Self::keyed_by_device)), or not at all. The producer
/// batches (`linger_ms`, `batch_size`), compresses and is idempotent;
/// [`write`](Sink::write) fails as soon as a delivery has failed, and
/// [`close`](Sink::close) flushes and fails unless every message was
/// acknowledged.
pub struct KafkaSink<D> {
    out: Output,
    key: Option<KeyFn<D>>,
    buf: Vec<u8>,
    key_buf: Vec<u8>,
    _records: PhantomData<fn(&D)>,
}

impl<D> std::fmt::Debug for KafkaSink<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.out.config.topic)
            .field("keyed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: Serialize> KafkaSink<D> {
    /// A sink writing unkeyed messages.
    pub fn new(config: KafkaSinkConfig) -> Result<Self, iotflow_core::Error> {
        let name = format!("kafka:{}", config.topic);
        let out = Output::new(config).map_err(|e| e.into_sink_error(&name))?;
        Ok(KafkaSink {
            out,
            key: None,
            buf: Vec::with_capacity(1024),
            key_buf: Vec::with_capacity(64),
            _records: PhantomData,
        })
    }

    /// Keys each message by `key(record)`; `None` leaves it unkeyed.
    pub fn with_key(self, key: impl Fn(&D) -> Option<Vec<u8>> + Send + 'static) -> Self {
        self.with_key_into(move |d, buf| match key(d) {
            Some(k) => {
                buf.extend_from_slice(&k);
                true
            }
            None => false,
        })
    }

    /// Keys each message by what `key` writes into the (cleared) buffer it
    /// gets; it returns `false` for no key. Allocates nothing per record.
    pub fn with_key_into(
        mut self,
        key: impl Fn(&D, &mut Vec<u8>) -> bool + Send + 'static,
    ) -> Self {
        self.key = Some(Box::new(key));
        self
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<KafkaSinkStats> {
        self.out.stats.clone()
    }
}

impl<D: Serialize + DeviceKey> KafkaSink<D> {
    /// A sink keying each message by its record's device id.
    pub fn keyed_by_device(config: KafkaSinkConfig) -> Result<Self, iotflow_core::Error> {
        Ok(Self::new(config)?.with_key_into(|d: &D, buf| {
            buf.extend_from_slice(d.device_key().as_bytes());
            true
        }))
    }
}

impl<D: Serialize + 'static> Sink<D> for KafkaSink<D> {
    fn write(&mut self, batch: &[D]) -> iotflow_core::Result<()> {
        let name = &self.out.name;
        for record in batch {
            self.buf.clear();
            serde_json::to_writer(&mut self.buf, record).map_err(|e| {
                iotflow_core::Error::Sink {
                    sink: name.clone(),
                    message: format!("cannot encode a record as JSON: {e}"),
                }
            })?;
            self.key_buf.clear();
            let keyed = self
                .key
                .as_ref()
                .is_some_and(|k| k(record, &mut self.key_buf));
            self.out
                .send(keyed.then_some(self.key_buf.as_slice()), &self.buf)
                .map_err(|e| e.into_sink_error(name))?;
        }
        self.out.check().map_err(|e| e.into_sink_error(name))
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        let name = self.out.name.clone();
        self.out.close().map_err(|e| e.into_sink_error(&name))
    }
}

/// Writes raw messages ([`RawRecord`]s, or bare payloads as `Vec<u8>`)
/// with the same producer settings and guarantees as [`KafkaSink`].
pub struct KafkaRawSink {
    out: Output,
}

impl std::fmt::Debug for KafkaRawSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRawSink")
            .field("topic", &self.out.config.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaRawSink {
    /// A raw sink.
    pub fn new(config: KafkaSinkConfig) -> Result<Self, iotflow_core::Error> {
        let name = format!("kafka:{}", config.topic);
        let out = Output::new(config).map_err(|e| e.into_sink_error(&name))?;
        Ok(KafkaRawSink { out })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<KafkaSinkStats> {
        self.out.stats.clone()
    }

    /// Hands one message to the producer.
    pub fn send(&mut self, key: Option<&[u8]>, payload: &[u8]) -> iotflow_core::Result<()> {
        self.out
            .send(key, payload)
            .map_err(|e| e.into_sink_error(&self.out.name))
    }

    fn checked(&self) -> iotflow_core::Result<()> {
        self.out
            .check()
            .map_err(|e| e.into_sink_error(&self.out.name))
    }
}

impl Sink<RawRecord> for KafkaRawSink {
    fn write(&mut self, batch: &[RawRecord]) -> iotflow_core::Result<()> {
        for r in batch {
            self.send(r.key.as_deref(), &r.payload)?;
        }
        self.checked()
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        let name = self.out.name.clone();
        self.out.close().map_err(|e| e.into_sink_error(&name))
    }
}

impl Sink<Vec<u8>> for KafkaRawSink {
    fn write(&mut self, batch: &[Vec<u8>]) -> iotflow_core::Result<()> {
        for p in batch {
            self.send(None, p)?;
        }
        self.checked()
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        <Self as Sink<RawRecord>>::close(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys() {
        let r = Reading::new("dev-1", 5, "temp", 1.0);
        assert_eq!(r.device_key(), "dev-1");
        let w = WindowResult {
            key: SeriesKey::of(&r),
            start: 0,
            end: 10,
            stats: (),
            kind: Default::default(),
        };
        assert_eq!(w.device_key(), "dev-1");
    }

    #[test]
    fn undelivered_messages_fail_close_and_are_counted() {
        // Nothing listens on 127.0.0.1:1: every message times out.
        let config = KafkaSinkConfig {
            message_timeout_ms: 300,
            ..KafkaSinkConfig::new("127.0.0.1:1", "t")
        };
        let mut sink = KafkaSink::<Reading>::keyed_by_device(config).expect("valid");
        let rs = vec![
            Reading::new("d", 1, "m", 1.0),
            Reading::new("e", 2, "m", 2.0),
        ];
        sink.write(&rs).expect("queued");
        let e = sink.close().expect_err("nothing was delivered");
        assert!(e.to_string().contains("2 message(s) not delivered"), "{e}");
        let stats = sink.stats();
        assert_eq!(get(&stats.sent), 2);
        assert_eq!(get(&stats.failed), 2);
        assert_eq!(get(&stats.delivered), 0);
        // Later writes fail too.
        assert!(sink.write(&rs).is_err());
    }

    #[test]
    fn oversized_message_fails_the_write() {
        let mut sink = KafkaRawSink::new(KafkaSinkConfig::new("127.0.0.1:1", "t")).expect("valid");
        let big = vec![b'x'; 2 << 20];
        let e = Sink::<Vec<u8>>::write(&mut sink, &[big]).expect_err("over message.max.bytes");
        assert!(matches!(e, iotflow_core::Error::Sink { .. }), "{e}");
    }

    #[test]
    fn bad_config_is_a_config_error() {
        let e = KafkaSink::<Reading>::new(KafkaSinkConfig::new("127.0.0.1:1", ""))
            .expect_err("must fail");
        assert!(matches!(e, iotflow_core::Error::Config(_)), "{e}");
        let mut c = KafkaSinkConfig::new("127.0.0.1:1", "t");
        c.properties.insert("no.such.property".into(), "1".into());
        assert!(matches!(
            KafkaRawSink::new(c).expect_err("must fail"),
            iotflow_core::Error::Config(_)
        ));
    }
}
