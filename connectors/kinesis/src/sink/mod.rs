//! The sinks: [`KinesisSink`] (records as JSON) and [`KinesisRawSink`]
//! (bytes as they are), over one `PutRecords` producer.
//!
//! `write` sends the whole batch before it returns (no records wait in the
//! sink between calls), so `close` has nothing left to flush: it reports
//! whether everything was delivered. Delivery is at least once: a request
//! that timed out may have been stored and is sent again, and records whose
//! entries failed are retried after the others of their request, so per-key
//! order holds only while nothing is retried.

mod batch;
mod key;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use iotflow_core::sink::Sink;
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::Error;
use crate::backoff::Backoff;
use crate::client::{self, Connect, Fault, classify, entry_is_retryable};
use crate::config::{KinesisSinkConfig, MAX_RECORD_BYTES};
use key::KeyRule;

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct KinesisSinkStats {
    /// Records Kinesis accepted.
    pub records: AtomicU64,
    /// Bytes of accepted records (data only).
    pub bytes: AtomicU64,
    /// `PutRecords` requests sent (retries included).
    pub requests: AtomicU64,
    /// Record entries sent again after Kinesis reported them failed.
    pub retried_records: AtomicU64,
    /// Whole requests sent again after a throttle, timeout or server fault.
    pub retried_requests: AtomicU64,
    /// Records given up on after all retries.
    pub undelivered: AtomicU64,
}

/// A record for [`KinesisRawSink`]: bytes and an optional partition key
/// (the sink's [`PartitionKey`](crate::PartitionKey) rule when `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRecord {
    /// The partition key; at most 256 characters are used.
    pub partition_key: Option<String>,
    /// The record's data.
    pub data: Vec<u8>,
}

/// One record ready to send.
#[derive(Debug)]
struct Entry {
    key: String,
    data: Vec<u8>,
}

/// Sends entries with `PutRecords`, batching and retrying.
struct Producer {
    config: KinesisSinkConfig,
    io: Option<(Runtime, Client)>,
    keys: KeyRule,
    stats: Arc<KinesisSinkStats>,
    undelivered: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.config.stream)
            .field("connected", &self.io.is_some())
            .field("undelivered", &self.undelivered)
            .finish()
    }
}

impl Producer {
    fn new(config: KinesisSinkConfig) -> Result<Self, iotflow_core::Error> {
        config
            .validate()
            .map_err(|e| e.into_sink_error(&config.stream))?;
        Ok(Producer {
            keys: KeyRule::new(&config.partition_key),
            config,
            io: None,
            stats: Arc::default(),
            undelivered: 0,
        })
    }

    fn fail(&self, e: Error) -> iotflow_core::Error {
        tracing::error!(stream = %self.config.stream, error = %e, "kinesis sink failed");
        e.into_sink_error(&self.config.stream)
    }

    /// Sends `entries` (records in order), all of them or an error.
    fn send(&mut self, entries: Vec<Entry>) -> Result<(), iotflow_core::Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let sizes: Vec<usize> = entries.iter().map(|e| e.data.len() + e.key.len()).collect();
        if let Some((index, &size)) = sizes
            .iter()
            .enumerate()
            .find(|(_, s)| **s > MAX_RECORD_BYTES)
        {
            return Err(self.fail(Error::RecordTooLarge {
                stream: self.config.stream.clone(),
                index,
                size,
                limit: MAX_RECORD_BYTES,
            }));
        }
        if self.io.is_none() {
            let rt = client::runtime().map_err(|e| self.fail(e))?;
            let connect = Connect {
                endpoint_url: self.config.endpoint_url.as_deref(),
                region: self.config.region.as_deref(),
                credentials: self.config.credentials.as_ref(),
                request_timeout: Duration::from_millis(self.config.request_timeout_ms),
            };
            let kinesis = rt
                .block_on(client::build_client(&connect))
                .map_err(|e| self.fail(e))?;
            self.io = Some((rt, kinesis));
        }
        let batches = batch::plan(
            &sizes,
            self.config.max_batch_records,
            self.config.max_batch_bytes,
        );
        let Some((rt, kinesis)) = &self.io else {
            return Ok(());
        };
        for (n, range) in batches.iter().enumerate() {
            let sent = rt.block_on(put_with_retry(
                kinesis,
                &self.config,
                &entries[range.clone()],
                &self.stats,
            ));
            if let Err(e) = sent {
                // This batch's failures and every later batch are undelivered.
                let failed = match &e {
                    Error::Undelivered { failed, .. } => *failed,
                    _ => range.len(),
                };
                let later: usize = batches[n + 1..].iter().map(ExactSizeIterator::len).sum();
                let lost = (failed + later) as u64;
                self.undelivered += lost;
                self.stats.undelivered.fetch_add(lost, Ordering::Relaxed);
                return Err(self.fail(e));
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), iotflow_core::Error> {
        if self.undelivered > 0 {
            return Err(self.fail(Error::Undelivered {
                stream: self.config.stream.clone(),
                failed: usize::try_from(self.undelivered).unwrap_or(usize::MAX),
                attempts: self.config.max_retries + 1,
                last_error: "see earlier errors".into(),
            }));
        }
        tracing::debug!(
            stream = %self.config.stream,
            records = self.stats.records.load(Ordering::Relaxed),
            "kinesis sink closed",
        );
        Ok(())
    }
}

/// Puts `entries` (one request's worth), retrying failed entries and failed
/// requests with backoff up to `max_retries` times.
async fn put_with_retry(
    kinesis: &Client,
    config: &KinesisSinkConfig,
    entries: &[Entry],
    stats: &KinesisSinkStats,
) -> Result<(), Error> {
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let mut backoff = Backoff::new(
        Duration::from_millis(config.backoff_base_ms),
        Duration::from_millis(config.backoff_max_ms),
    );
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let records = pending
            .iter()
            .map(|&i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(entries[i].key.clone())
                    .data(Blob::new(entries[i].data.clone()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Api {
                op: "PutRecords",
                stream: config.stream.clone(),
                message: e.to_string(),
            })?;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let result = kinesis
            .put_records()
            .stream_name(&config.stream)
            .set_records(Some(records))
            .send()
            .await;
        let last_error = match result {
            Ok(out) => {
                let results = out.records();
                let mut failed = Vec::new();
                let mut last_error = String::new();
                let mut permanent = false;
                for (pos, &i) in pending.iter().enumerate() {
                    // Results are positional; a missing one counts as failed.
                    let code = match results.get(pos) {
                        Some(r) => match r.error_code() {
                            Some(code) => {
                                last_error = format!("{code}: {}", r.error_message().unwrap_or(""));
                                Some(code)
                            }
                            None => None,
                        },
                        None => {
                            last_error = "no result for the entry".into();
                            Some("Missing")
                        }
                    };
                    match code {
                        Some(code) => {
                            permanent |= !entry_is_retryable(code);
                            failed.push(i);
                        }
                        None => {
                            stats.records.fetch_add(1, Ordering::Relaxed);
                            stats
                                .bytes
                                .fetch_add(entries[i].data.len() as u64, Ordering::Relaxed);
                        }
                    }
                }
                if failed.is_empty() {
                    return Ok(());
                }
                if permanent {
                    return Err(Error::Undelivered {
                        stream: config.stream.clone(),
                        failed: failed.len(),
                        attempts,
                        last_error,
                    });
                }
                stats
                    .retried_records
                    .fetch_add(failed.len() as u64, Ordering::Relaxed);
                pending = failed;
                last_error
            }
            Err(e) => {
                let f = classify(&e);
                if matches!(
                    f.fault,
                    Fault::Fatal | Fault::NotFound | Fault::ExpiredIterator
                ) {
                    return Err(Error::Api {
                        op: "PutRecords",
                        stream: config.stream.clone(),
                        message: f.message,
                    });
                }
                stats.retried_requests.fetch_add(1, Ordering::Relaxed);
                f.message
            }
        };
        if attempts > config.max_retries {
            return Err(Error::Undelivered {
                stream: config.stream.clone(),
                failed: pending.len(),
                attempts,
                last_error,
            });
        }
        let delay = backoff.next_delay();
        tracing::debug!(
            stream = %config.stream,
            pending = pending.len(),
            attempts,
            ?delay,
            error = %last_error,
            "kinesis PutRecords incomplete; retrying",
        );
        tokio::time::sleep(delay).await;
    }
}

/// A partition key chosen by the caller.
type KeyFn<D> = Box<dyn Fn(&D) -> String + Send>;

/// A sink writing each record as one JSON Kinesis record.
pub struct KinesisSink<D> {
    producer: Producer,
    key_fn: Option<KeyFn<D>>,
    _records: PhantomData<fn(&D)>,
}

impl<D> std::fmt::Debug for KinesisSink<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSink")
            .field("producer", &self.producer)
            .field("key_fn", &self.key_fn.is_some())
            .finish()
    }
}

impl<D: Serialize> KinesisSink<D> {
    /// A sink writing to `config.stream`; connects on the first write.
    pub fn new(config: KinesisSinkConfig) -> Result<Self, iotflow_core::Error> {
        Ok(KinesisSink {
            producer: Producer::new(config)?,
            key_fn: None,
            _records: PhantomData,
        })
    }

    /// Takes partition keys from `f` instead of the configured rule (keys
    /// are cut to 256 characters; an empty key gets a round-robin one).
    pub fn with_key_fn(mut self, f: impl Fn(&D) -> String + Send + 'static) -> Self {
        self.key_fn = Some(Box::new(f));
        self
    }

    /// The sink's counters.
    pub fn stats(&self) -> Arc<KinesisSinkStats> {
        Arc::clone(&self.producer.stats)
    }
}

impl<D: Serialize + 'static> Sink<D> for KinesisSink<D> {
    fn write(&mut self, batch: &[D]) -> iotflow_core::Result<()> {
        let mut entries = Vec::with_capacity(batch.len());
        for item in batch {
            let data = serde_json::to_vec(item).map_err(|e| iotflow_core::Error::Sink {
                sink: format!("kinesis:{}", self.producer.config.stream),
                message: format!("cannot serialize a record as JSON: {e}"),
            })?;
            let key = match &self.key_fn {
                Some(f) => self.producer.keys.fixed(f(item)),
                None => self.producer.keys.of_json(&data),
            };
            entries.push(Entry { key, data });
        }
        self.producer.send(entries)
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.producer.close()
    }
}

/// A sink writing bytes as they are: [`RawRecord`]s, or plain `Vec<u8>`
/// (keyed by the configured rule applied to the bytes as JSON).
#[derive(Debug)]
pub struct KinesisRawSink {
    producer: Producer,
}

impl KinesisRawSink {
    /// A sink writing to `config.stream`; connects on the first write.
    pub fn new(config: KinesisSinkConfig) -> Result<Self, iotflow_core::Error> {
        Ok(KinesisRawSink {
            producer: Producer::new(config)?,
        })
    }

    /// The sink's counters.
    pub fn stats(&self) -> Arc<KinesisSinkStats> {
        Arc::clone(&self.producer.stats)
    }
}

impl Sink<RawRecord> for KinesisRawSink {
    fn write(&mut self, batch: &[RawRecord]) -> iotflow_core::Result<()> {
        let entries = batch
            .iter()
            .map(|r| Entry {
                key: match &r.partition_key {
                    Some(k) => self.producer.keys.fixed(k.clone()),
                    None => self.producer.keys.of_json(&r.data),
                },
                data: r.data.clone(),
            })
            .collect();
        self.producer.send(entries)
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.producer.close()
    }
}

impl Sink<Vec<u8>> for KinesisRawSink {
    fn write(&mut self, batch: &[Vec<u8>]) -> iotflow_core::Result<()> {
        let entries = batch
            .iter()
            .map(|data| Entry {
                key: self.producer.keys.of_json(data),
                data: data.clone(),
            })
            .collect();
        self.producer.send(entries)
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.producer.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_record_is_an_error_not_a_drop() {
        // No endpoint is contacted: the batch is checked before connecting.
        let mut config = KinesisSinkConfig::new("s");
        config.endpoint_url = Some("http://127.0.0.1:9".into());
        let mut sink = KinesisRawSink::new(config).expect("valid config");
        let batch = vec![
            RawRecord {
                partition_key: Some("k".into()),
                data: b"small".to_vec(),
            },
            RawRecord {
                partition_key: Some("k".into()),
                data: vec![b'x'; MAX_RECORD_BYTES],
            },
        ];
        let err = Sink::<RawRecord>::write(&mut sink, &batch).expect_err("too large");
        let text = err.to_string();
        assert!(
            text.contains("record 1") && text.contains("1048577"),
            "{text}"
        );
        assert_eq!(sink.stats().requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let mut config = KinesisSinkConfig::new("s");
        config.max_batch_records = 0;
        assert!(matches!(
            KinesisSink::<u32>::new(config),
            Err(iotflow_core::Error::Config(_))
        ));
    }
}
