//! The pipeline's end of the ingest queue: a [`Source`] of one partition.

use std::sync::Arc;
use std::time::Duration;

use iotflow_core::Result;
use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Commits, Position, Resume, Source};

use super::queue::{IngestQueue, Taken};

/// The partition key of HTTP ingest: one partition per job, whatever the
/// number of workers.
pub const INGEST_PARTITION: &str = "http:ingest";

/// Chunks are cut at about this many bytes (a request's readings are never
/// split, so one request may make a larger chunk).
const CHUNK_BYTES: usize = 64 * 1024;

/// How long the source waits for readings before it looks again whether
/// its job has stopped.
const POLL: Duration = Duration::from_millis(100);

/// Drains an [`IngestQueue`] into a pipeline: readings posted to
/// `POST /ingest` and `POST /ingest/batch`, one compact JSON line each.
///
/// - **One partition**, [`INGEST_PARTITION`], announced by an empty chunk
///   before any data. Chunks hold whole requests' readings, up to about
///   64 KiB (one large request makes one larger chunk); a chunk's `offset`
///   is the number of readings delivered before it and its `resume` is
///   `Position::Offset` of the readings delivered after it.
/// - **One per process, on worker 0.** The queue is the process's; give
///   the other workers a source that yields nothing (e.g.
///   `MemorySource::default()`).
/// - **Ends** when the queue is [closed](IngestQueue::close) (the server
///   closes it when it stops serving) once everything queued is delivered;
///   otherwise runs until its job stops (its channel closes). Then the
///   queue refuses new readings (`503`), and readings still queued are
///   counted as lost ([`IngestStats::lost_readings`](super::IngestStats)).
/// - **Durability.** HTTP has no replay: a reading is durable once a
///   checkpoint holding it completes. Readings accepted (`202`) but not
///   yet in a completed checkpoint are lost if the process crashes. With
///   checkpoints, [`IngestStats::checkpointed_position`](super::IngestStats)
///   tells how far that is. Nothing is acknowledged upstream.
/// - **Restarts.** [`resume_from`](Self::resume_from) continues the
///   position where the restored checkpoint left it, so positions keep
///   growing across restarts (nothing is re-read: HTTP cannot replay).
#[derive(Debug)]
pub struct IngestSource {
    queue: IngestQueue,
    /// Readings delivered on the partition, including before a restart.
    position: u64,
    commits: Option<Commits>,
    /// Whether the queue has been told that this source is gone.
    gone: bool,
}

impl IngestSource {
    pub(super) fn new(queue: IngestQueue) -> Self {
        IngestSource {
            queue,
            position: 0,
            commits: None,
            gone: false,
        }
    }

    /// Continues from the [`INGEST_PARTITION`] position among `resume` (the
    /// positions a job restored from its checkpoint), if there is one.
    pub fn resume_from(mut self, resume: &[Resume]) -> Self {
        let ours = resume.iter().filter(|r| &*r.partition == INGEST_PARTITION);
        for r in ours {
            match r.position {
                Position::Offset(n) => {
                    self.position = n;
                    self.queue.set_position(n);
                    self.queue.set_checkpointed(n);
                }
                ref other => {
                    tracing::warn!(position = ?other, "ignoring a non-offset HTTP ingest position")
                }
            }
        }
        self
    }

    /// The queue this source drains (for its counters).
    pub fn queue(&self) -> &IngestQueue {
        &self.queue
    }

    /// The position: readings delivered since the job first started.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Takes the newest completed checkpoint's position, for the gauge.
    fn poll_commits(&self) {
        let Some(positions) = self.commits.as_ref().and_then(Commits::take) else {
            return;
        };
        for r in positions {
            if &*r.partition == INGEST_PARTITION
                && let Position::Offset(n) = r.position
            {
                self.queue.set_checkpointed(n);
            }
        }
    }

    /// The job stopped: no reading will be delivered again.
    fn stop(&mut self, undelivered: usize) {
        self.poll_commits();
        let left = self.queue.consumer_gone();
        self.gone = true;
        if undelivered > 0 {
            self.queue.count_lost(undelivered);
        }
        let lost = left + undelivered;
        if lost > 0 {
            tracing::error!(
                lost,
                position = self.position,
                "the pipeline stopped before HTTP ingest delivered every accepted reading"
            );
        } else {
            tracing::info!(position = self.position, "HTTP ingest source stopped");
        }
    }
}

impl Source for IngestSource {
    fn name(&self) -> String {
        "http-ingest".to_owned()
    }

    fn run(&mut self, out: &BridgeSender<Result<Chunk>>) -> Result<()> {
        let key: Arc<str> = Arc::from(INGEST_PARTITION);
        let announce = Chunk {
            source: key.clone(),
            offset: self.position,
            data: Vec::new(),
            resume: None,
        };
        if out.send_blocking(Ok(announce)).is_err() {
            self.stop(0);
            return Ok(());
        }
        tracing::info!(
            position = self.position,
            capacity = self.queue.capacity(),
            "HTTP ingest source started"
        );
        loop {
            self.poll_commits();
            if out.is_closed() {
                self.stop(0);
                return Ok(());
            }
            let (data, count) = match self.queue.take(CHUNK_BYTES, POLL) {
                Taken::Data { data, count } => (data, count),
                Taken::Empty => continue,
                Taken::Closed => {
                    // Everything accepted was delivered: the input is complete.
                    tracing::info!(position = self.position, "HTTP ingest input ended");
                    self.queue.consumer_gone();
                    self.gone = true;
                    return Ok(());
                }
            };
            let next = self.position + count as u64;
            let chunk = Chunk {
                source: key.clone(),
                offset: self.position,
                data,
                resume: Some(Resume {
                    partition: key.clone(),
                    position: Position::Offset(next),
                }),
            };
            if out.send_blocking(Ok(chunk)).is_err() {
                self.stop(count);
                return Ok(());
            }
            self.position = next;
            self.queue.count_delivered(count, next);
        }
    }

    fn attach_commits(&mut self, commits: Commits) {
        self.commits = Some(commits);
    }
}

impl Drop for IngestSource {
    fn drop(&mut self) {
        // A source dropped without running (or after) must not leave the
        // routes accepting readings nobody will read.
        if !self.gone {
            let left = self.queue.consumer_gone();
            if left > 0 {
                tracing::error!(
                    lost = left,
                    "HTTP ingest source dropped with accepted readings queued"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use iotflow_core::bridge::bridge;

    use super::*;
    use crate::ingest::queue::Batch;

    fn batch(count: usize, width: usize) -> Batch {
        let line = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(width));
        Batch {
            data: line.repeat(count).into_bytes(),
            count,
        }
    }

    /// Runs `source` until its queue is closed and drained.
    fn run_to_end(mut source: IngestSource) -> Vec<Chunk> {
        let (tx, mut rx) = bridge::<Result<Chunk>>(1024, None);
        let runner = std::thread::spawn(move || source.run(&tx));
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv_blocking() {
            chunks.push(c.expect("chunk"));
        }
        runner
            .join()
            .expect("source thread")
            .expect("source result");
        chunks
    }

    #[test]
    fn positions_continue_from_the_restored_checkpoint() {
        let (queue, source) = IngestQueue::new(100);
        let source = source.resume_from(&[
            Resume {
                partition: Arc::from("kafka:t/0"),
                position: Position::Offset(7),
            },
            Resume {
                partition: Arc::from(INGEST_PARTITION),
                position: Position::Offset(40),
            },
        ]);
        assert_eq!(source.position(), 40);
        assert_eq!(queue.offer(batch(2, 1)), Ok(2));
        queue.close();
        let chunks = run_to_end(source);
        assert_eq!(chunks[0].offset, 40, "the announcement");
        assert_eq!(chunks[1].offset, 40);
        assert_eq!(
            chunks[1].resume.as_ref().map(|r| &r.position),
            Some(&Position::Offset(42))
        );
        assert_eq!(queue.stats().position, 42);
    }

    #[test]
    fn chunks_are_cut_near_64_kib_without_splitting_a_request() {
        let (queue, source) = IngestQueue::new(100_000);
        // 100 requests of 10 readings of ~1 KiB: ~1 MiB in all.
        for _ in 0..100 {
            assert_eq!(queue.offer(batch(10, 1000)), Ok(10));
        }
        // One request of ~200 KiB stays whole.
        assert_eq!(queue.offer(batch(200, 1000)), Ok(200));
        queue.close();
        let chunks = run_to_end(source);
        let data: Vec<&Chunk> = chunks.iter().skip(1).collect();
        let total: usize = data
            .iter()
            .map(|c| c.data.iter().filter(|&&b| b == b'\n').count())
            .sum();
        assert_eq!(total, 1200);
        for c in &data[..data.len() - 1] {
            assert!(c.data.len() <= CHUNK_BYTES, "{}", c.data.len());
            assert!(c.data.len() > CHUNK_BYTES / 2, "{}", c.data.len());
        }
        assert!(
            data[data.len() - 1].data.len() > CHUNK_BYTES,
            "the large request"
        );
    }

    #[test]
    fn a_dropped_source_closes_its_queue() {
        let (queue, source) = IngestQueue::new(10);
        assert_eq!(queue.offer(batch(1, 1)), Ok(1));
        drop(source);
        assert!(queue.is_closed());
        assert_eq!(queue.stats().lost_readings, 1);
    }
}
