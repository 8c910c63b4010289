//! Amazon Kinesis Data Streams for iotflow: a source over every shard of a
//! stream that follows resharding, and a `PutRecords` sink.
//!
//! # The source
//!
//! [`KinesisSource`] runs on the I/O thread of one timely worker. It lists
//! the stream's shards (`ListShards`, all pages) and reads the ones its
//! worker owns with `GetShardIterator` / `GetRecords`, each record one line
//! of a [`Chunk`](iotflow_core::source::Chunk) keyed `kinesis:{stream}/{shard}`.
//!
//! **Ownership** depends only on shard lineage: a shard belongs to worker
//! `fnv1a(root) % peers`, where `root` is the oldest ancestor reached through
//! `ParentShardId` that the stream still lists. Split children therefore
//! stay on their parent's worker, and a merged child on the worker of its
//! `ParentShardId`; the assignment is the same on every restart and for
//! every worker, whatever the worker count.
//!
//! **Resharding.** A child shard is read only after all of its parents have
//! been read to their end (a closed shard's `GetRecords` returns no
//! `NextShardIterator`), so the records of one partition key come out in
//! order across a split or a merge. Parents on the same worker are tracked
//! locally; the *adjacent* parent of a merged child may belong to another
//! worker: workers of one process share a registry of finished shards per
//! stream. **Limitation:** in a cluster of several processes that registry
//! does not cross processes; a merged child whose adjacent parent is read by
//! a worker of another process waits
//! [`foreign_parent_timeout_ms`](KinesisSourceConfig::foreign_parent_timeout_ms)
//! and is then read anyway (per-key order across that merge is then not
//! guaranteed; nothing is lost or doubled). The source re-lists shards every
//! [`list_interval_ms`](KinesisSourceConfig::list_interval_ms) and as soon
//! as one of its shards closes, so the children of a split are picked up.
//!
//! **Positions.** Every data chunk carries
//! `Position::Sequence(last sequence number in it)`; a restored position
//! resumes with `AFTER_SEQUENCE_NUMBER`, a restored `Position::Done` shard is
//! not read again (and its children become readable). A shard read to its
//! end is announced with a `Position::Done` chunk; a shard is announced with
//! an empty chunk before its first data. Kinesis has no upstream
//! acknowledgement, so the source ignores
//! [`attach_commits`](iotflow_core::source::Source::attach_commits).
//!
//! **Errors.** Throttling (`ProvisionedThroughputExceededException`,
//! `LimitExceededException`, `ThrottlingException`, KMS throttling) is
//! retried forever with exponential backoff and jitter; expired iterators
//! are re-created from the last sequence number; network errors and server
//! faults are retried up to
//! [`max_consecutive_errors`](KinesisSourceConfig::max_consecutive_errors)
//! times in a row; anything else (missing stream, access denied) fails the
//! job.
//!
//! **Payloads.** One record is one line: `\n` and `\r` inside a record
//! become spaces (JSON strings cannot hold raw newlines, so JSON stays
//! valid), and an empty or whitespace-only record becomes the single byte
//! `0x00`, which the pipeline's decoder rejects as `invalid_json` into the
//! dead-letter output (counted in [`KinesisStats::empty_payloads`]).
//!
//! # The sink
//!
//! [`KinesisSink`] serializes each record as JSON (one Kinesis record per
//! item) and [`KinesisRawSink`] sends bytes as they are. Both batch
//! `PutRecords` requests (at most 500 records and 5 MiB each), retry the
//! entries a response reports as failed with backoff up to a cap, and fail
//! (in `write` and again in `close`) when anything could not be delivered.
//! A record over Kinesis's 1 MiB limit is an error, never dropped.
//!
//! # Tests
//!
//! The tests talk to real servers: moto (`IOTFLOW_TEST_KINESIS_URL`) for
//! reading, writing, resuming and start positions, and kinesalite
//! (`IOTFLOW_TEST_KINESALITE_URL`) for splits and merges, which moto does not
//! model faithfully (its `SplitShard` moves the parent's records into the
//! children and its closed shards never end). [`testing`] has the helpers
//! other crates' end-to-end tests use.

mod backoff;
mod client;
mod config;
mod error;
mod payload;
mod shards;
mod sink;
mod source;
pub mod testing;

pub use config::{
    KinesisCredentials, KinesisSinkConfig, KinesisSourceConfig, PartitionKey, StartPosition,
};
pub use error::Error;
pub use sink::{KinesisRawSink, KinesisSink, KinesisSinkStats, RawRecord};
pub use source::{KinesisSource, KinesisStats};

/// The partition key of a shard in chunks and checkpoints:
/// `kinesis:{stream}/{shard_id}`.
pub fn partition_key(stream: &str, shard_id: &str) -> String {
    format!("kinesis:{stream}/{shard_id}")
}
