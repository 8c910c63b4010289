//! Sources: where records enter a pipeline.
//!
//! A [`Source`] runs on an I/O thread (started by
//! [`event_time_source`](crate::event_time::event_time_source)) and pushes
//! [`Chunk`]s of whole records into a [`BridgeSender`]. Each timely worker
//! owns one source instance with its share of the input (file splits, Kafka
//! partitions, …); decoding, validation and watermarking happen on the
//! worker.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::bridge::BridgeSender;

/// A block of whole, newline-terminated records from one source.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    /// Source name (file path, topic/partition, …).
    pub source: Arc<str>,
    /// Byte offset of `data[0]` in the source.
    pub offset: u64,
    /// Records separated by `\n`; the last may lack its `\n`.
    pub data: Vec<u8>,
    /// Where the source resumes once this chunk has been consumed (for
    /// checkpoints); `None` for sources that cannot resume.
    pub resume: Option<Resume>,
}

/// How far one partition of a source has been consumed.
///
/// A partition is whatever a source reads in order and can seek in: a file
/// split (keyed `path@start`), later a Kafka partition or a Kinesis shard.
/// Keys do not depend on which worker reads the partition, so positions
/// saved by `W` workers resume on any number of workers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resume {
    /// The partition.
    pub partition: Arc<str>,
    /// Its position.
    pub position: Position,
}

/// A position in a partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Position {
    /// The next record starts at this offset (a byte offset in a file).
    Offset(u64),
    /// The partition has been read to its end.
    Done,
}

impl Position {
    /// Whether `self` is further into the partition than `other`.
    pub fn is_after(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::Done, Position::Done) => false,
            (Position::Done, _) => true,
            (Position::Offset(_), Position::Done) => false,
            (Position::Offset(a), Position::Offset(b)) => a > b,
        }
    }
}

/// A producer of chunks for one worker.
pub trait Source: Send + 'static {
    /// A short name for logs.
    fn name(&self) -> String;

    /// Produces all chunks, blocking on `out` when it is full; returns when the
    /// input is exhausted, or early (with `Ok`) when `out` is closed.
    fn run(&mut self, out: &BridgeSender<Result<Chunk>>) -> Result<()>;
}

/// A source over chunks already in memory (tests, examples, generators).
#[derive(Debug, Default)]
pub struct MemorySource {
    chunks: Vec<Chunk>,
}

impl MemorySource {
    /// A source yielding `chunks` in order.
    pub fn new(chunks: Vec<Chunk>) -> Self {
        MemorySource { chunks }
    }

    /// A source over `lines`, `per_chunk` lines per chunk.
    pub fn from_lines<S: AsRef<[u8]>>(name: &str, lines: &[S], per_chunk: usize) -> Self {
        let name: Arc<str> = Arc::from(name);
        let mut chunks = Vec::new();
        let mut offset = 0u64;
        for group in lines.chunks(per_chunk.max(1)) {
            let mut data = Vec::new();
            for l in group {
                data.extend_from_slice(l.as_ref());
                data.push(b'\n');
            }
            let len = data.len() as u64;
            chunks.push(Chunk {
                source: name.clone(),
                offset,
                data,
                resume: None,
            });
            offset += len;
        }
        MemorySource { chunks }
    }
}

impl Source for MemorySource {
    fn name(&self) -> String {
        "memory".to_owned()
    }

    fn run(&mut self, out: &BridgeSender<Result<Chunk>>) -> Result<()> {
        for c in self.chunks.drain(..) {
            if out.send_blocking(Ok(c)).is_err() {
                break;
            }
        }
        Ok(())
    }
}
