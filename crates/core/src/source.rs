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
    /// The next record starts at this offset (a byte offset in a file, a
    /// Kafka offset).
    Offset(u64),
    /// The last record consumed has this sequence number, a decimal string
    /// of any length (a Kinesis sequence number).
    Sequence(String),
    /// The partition has been read to its end.
    Done,
}

impl Position {
    /// Whether `self` is further into the partition than `other`.
    ///
    /// Positions of different kinds do not occur in one partition; between
    /// them, `Done` is furthest and otherwise neither is after the other.
    pub fn is_after(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::Done, Position::Done) => false,
            (Position::Done, _) => true,
            (_, Position::Done) => false,
            (Position::Offset(a), Position::Offset(b)) => a > b,
            // Decimal strings: longer is larger, equal lengths compare as text.
            (Position::Sequence(a), Position::Sequence(b)) => {
                (a.len(), a.as_str()) > (b.len(), b.as_str())
            }
            (Position::Offset(_), Position::Sequence(_))
            | (Position::Sequence(_), Position::Offset(_)) => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_within_a_partition() {
        assert!(Position::Offset(10).is_after(&Position::Offset(9)));
        assert!(!Position::Offset(9).is_after(&Position::Offset(9)));
        assert!(Position::Done.is_after(&Position::Offset(u64::MAX)));
        assert!(!Position::Offset(1).is_after(&Position::Done));
        let seq = |s: &str| Position::Sequence(s.to_owned());
        // Kinesis sequence numbers are decimal strings of varying length.
        assert!(
            seq("49590338271490256608559692538361571095921575989136588898").is_after(&seq("9"))
        );
        assert!(seq("100").is_after(&seq("099")));
        assert!(!seq("099").is_after(&seq("100")));
        assert!(Position::Done.is_after(&seq("5")));
    }
}
