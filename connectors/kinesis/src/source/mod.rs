//! [`KinesisSource`]: every shard of a stream, for one timely worker.

mod api;
mod run;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Position, Resume, Source};

use crate::client::{self, Connect};
use crate::config::KinesisSourceConfig;
use crate::shards::{Finished, finished_registry, fnv1a};

/// Counters of one source, readable while it runs.
#[derive(Debug, Default)]
pub struct KinesisStats {
    /// Records read.
    pub records: AtomicU64,
    /// Payload bytes read.
    pub bytes: AtomicU64,
    /// Records with an empty or whitespace-only payload (sent as `0x00`).
    pub empty_payloads: AtomicU64,
    /// `GetRecords` calls.
    pub get_records_calls: AtomicU64,
    /// Calls answered with throttling, then retried after a backoff.
    pub throttled: AtomicU64,
    /// Network errors and server faults, retried after a backoff.
    pub transient_errors: AtomicU64,
    /// Shard iterators re-created after they expired.
    pub iterator_renewals: AtomicU64,
    /// Shards read to their end (closed shards; every shard in bounded mode).
    pub shards_finished: AtomicU64,
    /// `ListShards` listings.
    pub listings: AtomicU64,
}

impl KinesisStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A Kinesis source for one worker: reads the shards whose lineage this
/// worker owns, parents before children (see the crate docs).
#[derive(Debug)]
pub struct KinesisSource {
    config: KinesisSourceConfig,
    worker: usize,
    peers: usize,
    /// Restored positions of this stream's shards, by shard id.
    resume: HashMap<String, Position>,
    finished: Arc<Finished>,
    stats: Arc<KinesisStats>,
    list_page_size: i32,
}

impl KinesisSource {
    /// A source for `worker` of `peers`, resuming from `resume` (positions of
    /// all partitions of the job; those of other sources are ignored).
    pub fn new(
        config: KinesisSourceConfig,
        worker: usize,
        peers: usize,
        resume: Vec<Resume>,
    ) -> Result<KinesisSource, iotflow_core::Error> {
        config
            .validate()
            .map_err(|e| e.into_source_error(&config.stream))?;
        if peers == 0 || worker >= peers {
            return Err(iotflow_core::Error::Config(format!(
                "kinesis source: worker {worker} of {peers} peers"
            )));
        }
        let prefix = crate::partition_key(&config.stream, "");
        let mut positions = HashMap::new();
        for r in resume {
            let Some(shard) = r.partition.strip_prefix(prefix.as_str()) else {
                continue;
            };
            match &r.position {
                Position::Sequence(_) | Position::Done => {
                    positions.insert(shard.to_owned(), r.position.clone());
                }
                other => {
                    return Err(iotflow_core::Error::Config(format!(
                        "kinesis source: checkpointed position {other:?} of {} is not a \
                         sequence number",
                        r.partition
                    )));
                }
            }
        }
        let finished = finished_registry(&registry_key(&config, peers, &positions));
        Ok(KinesisSource {
            config,
            worker,
            peers,
            resume: positions,
            finished,
            stats: Arc::default(),
            list_page_size: 1000,
        })
    }

    /// The source's counters.
    pub fn stats(&self) -> Arc<KinesisStats> {
        Arc::clone(&self.stats)
    }

    /// Shards per `ListShards` page (default 1000, the API's maximum). Small
    /// pages exercise pagination in tests.
    pub fn with_list_page_size(mut self, shards: u16) -> Self {
        self.list_page_size = i32::from(shards.max(1));
        self
    }
}

/// The job's identity for the registry of finished shards: the sources of
/// one job agree on all of it, another job (or a restart) differs in the
/// restored positions or is not alive at the same time.
fn registry_key(
    c: &KinesisSourceConfig,
    peers: usize,
    resume: &HashMap<String, Position>,
) -> String {
    let mut entries: Vec<String> = resume.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    entries.sort();
    format!(
        "{}|{}|{}|{peers}|{:016x}",
        c.endpoint_url.as_deref().unwrap_or(""),
        c.region.as_deref().unwrap_or(""),
        c.stream,
        fnv1a(entries.join(",").as_bytes())
    )
}

impl Source for KinesisSource {
    fn name(&self) -> String {
        format!("kinesis:{}#{}", self.config.stream, self.worker)
    }

    fn run(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> iotflow_core::Result<()> {
        let stream = self.config.stream.clone();
        let fail = |e: crate::Error| e.into_source_error(&stream);
        // The runtime lives on this I/O thread; calls are driven one at a
        // time with `block_on` so that `send_blocking` is never called from
        // inside it.
        let rt = client::runtime().map_err(fail)?;
        let connect = Connect {
            endpoint_url: self.config.endpoint_url.as_deref(),
            region: self.config.region.as_deref(),
            credentials: self.config.credentials.as_ref(),
            request_timeout: Duration::from_millis(self.config.request_timeout_ms),
        };
        let kinesis = rt.block_on(client::build_client(&connect)).map_err(fail)?;
        let mut reader = run::Reader::new(self, rt, kinesis);
        match reader.run(out) {
            Ok(()) | Err(run::Halt::Stopped) => Ok(()),
            Err(run::Halt::Failed(e)) => {
                tracing::error!(
                    stream = %stream,
                    worker = self.worker,
                    error = %e,
                    "kinesis source failed",
                );
                Err(fail(e))
            }
        }
    }
}
