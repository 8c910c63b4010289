//! Sources: where records enter a pipeline.
//!
//! A [`Source`] runs on an I/O thread (started by
//! [`event_time_source`](crate::event_time::event_time_source)) and pushes
//! [`Chunk`]s of whole records into a [`BridgeSender`]. Each timely worker
//! owns one source instance with its share of the input (file splits, Kafka
//! partitions, …); decoding, validation and watermarking happen on the
//! worker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::bridge::BridgeSender;
use crate::context::JobContext;

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

    /// Called once before [`run`](Source::run) when the job checkpoints:
    /// `commits` tells the source which of its positions are in a completed
    /// checkpoint, so it can acknowledge them upstream (commit Kafka
    /// offsets, ack MQTT messages) and never earlier. The default ignores
    /// it (files need no acknowledgement).
    fn attach_commits(&mut self, commits: Commits) {
        let _ = commits;
    }

    /// Called on the I/O thread after [`run`](Source::run) returned and its
    /// channel was dropped: the worker can then see the input end and the
    /// job take its last checkpoint. A source whose input ended on its own
    /// (bounded mode, an idle timeout) acknowledges that checkpoint here
    /// (wait on [`Commits`] until it [`ended`](Commits::ended)); during
    /// `run` it would wait for itself. The job joins this thread at its
    /// end. The default does nothing.
    fn finish(&mut self) {}
}

/// What a source has consumed at each checkpoint, and which checkpoints
/// have completed: the source's side of "acknowledge upstream only after a
/// checkpoint completes".
///
/// The event-time source records, for every checkpoint it answers, the
/// positions of all partitions its worker had consumed before the
/// checkpoint's time; the committer marks checkpoints complete in the
/// [`JobContext`]. The I/O thread polls [`take`](Commits::take) (or blocks
/// in [`wait`](Commits::wait)) and acknowledges what it returns.
///
/// A job that stops ends its commits ([`JobContext::end_commits`]) after
/// its final checkpoint; a source that holds unacknowledged input should,
/// once its output channel is closed, [`wait`](Commits::wait) until
/// [`ended`](Commits::ended), acknowledge the last [`take`](Commits::take),
/// and return.
///
/// In a cluster of several processes only process 0 runs the committer, so
/// only its sources learn of completed checkpoints; sources of other
/// processes acknowledge nothing (their positions are still in the
/// checkpoints, so nothing is lost or doubled on restore).
#[derive(Clone, Debug)]
pub struct Commits {
    ctx: JobContext,
    /// Positions per checkpoint id, oldest first; cumulative maps.
    pending: Arc<Mutex<BTreeMap<u64, Vec<Resume>>>>,
}

impl Commits {
    /// Commits of the job `ctx` belongs to.
    pub fn new(ctx: &JobContext) -> Self {
        Commits {
            ctx: ctx.clone(),
            pending: Arc::default(),
        }
    }

    /// Records that at checkpoint `id` this worker's source had consumed up
    /// to `positions` (every partition it has read, cumulative).
    pub fn record(&self, id: u64, positions: impl IntoIterator<Item = Resume>) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, positions.into_iter().collect());
        }
    }

    /// The positions at the newest checkpoint that has completed since the
    /// last call (every partition the source had read by then), or `None`
    /// when no further checkpoint has completed.
    pub fn take(&self) -> Option<Vec<Resume>> {
        let done = self.ctx.last_committed();
        let mut p = self.pending.lock().ok()?;
        let mut newest = None;
        while let Some(entry) = p.first_entry() {
            if *entry.key() > done {
                break;
            }
            newest = Some(entry.remove());
        }
        newest
    }

    /// Waits up to `timeout` for a checkpoint to complete or commits to
    /// end, then [`take`](Commits::take)s.
    pub fn wait(&self, timeout: Duration) -> Option<Vec<Resume>> {
        let first_pending = self
            .pending
            .lock()
            .ok()
            .and_then(|p| p.keys().next().copied());
        if let Some(id) = first_pending {
            self.ctx.wait_commit(id.saturating_sub(1), timeout);
        } else if !self.ended() {
            self.ctx.wait_commit(self.ctx.last_committed(), timeout);
        }
        self.take()
    }

    /// Whether no further checkpoint will complete in this run.
    pub fn ended(&self) -> bool {
        self.ctx.commits_ended()
    }
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

    fn at(key: &str, offset: u64) -> Resume {
        Resume {
            partition: Arc::from(key),
            position: Position::Offset(offset),
        }
    }

    #[test]
    fn commits_release_only_completed_checkpoints_newest_first() {
        let ctx = JobContext::new();
        let c = Commits::new(&ctx);
        c.record(1, [at("p", 10)]);
        c.record(2, [at("p", 20)]);
        c.record(3, [at("p", 30)]);
        // Nothing completed yet: nothing may be acknowledged.
        assert_eq!(c.take(), None);
        ctx.checkpoint_committed(2);
        // Checkpoints 1 and 2 completed: the newer one's positions.
        assert_eq!(c.take(), Some(vec![at("p", 20)]));
        assert_eq!(c.take(), None);
        ctx.checkpoint_committed(3);
        assert_eq!(c.take(), Some(vec![at("p", 30)]));
        assert!(!c.ended());
        ctx.end_commits();
        assert!(c.ended());
    }

    #[test]
    fn commits_wait_wakes_on_completion_and_on_end() {
        let ctx = JobContext::new();
        let c = Commits::new(&ctx);
        c.record(1, [at("p", 5)]);
        let waker = ctx.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.checkpoint_committed(1);
        });
        assert_eq!(c.wait(Duration::from_secs(10)), Some(vec![at("p", 5)]));
        t.join().expect("join");
        // With nothing pending, wait returns once commits end.
        let ender = ctx;
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ender.end_commits();
        });
        let started = std::time::Instant::now();
        assert_eq!(c.wait(Duration::from_secs(10)), None);
        assert!(started.elapsed() < Duration::from_secs(10));
        t.join().expect("join");
    }

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
