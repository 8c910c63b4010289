//! The Kafka source: a share of the topics' partitions per timely worker,
//! read with `assign()`, offsets committed after completed checkpoints.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Commits, Position, Resume, Source};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::assign::{owner, parse_partition_key, partition_key};
use crate::client::SourceContext;
use crate::commit::{Committer, final_checkpoint};
use crate::config::{KafkaSourceConfig, StartFrom};
use crate::error::{Error, Result};
use crate::stats::{KafkaStats, add};

type KafkaConsumer = BaseConsumer<SourceContext>;

/// How long one poll waits when nothing has arrived.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long the source keeps draining fetched messages before it flushes
/// its partial chunks, acknowledges checkpoints and looks for new
/// partitions: the upper bound this adds to latency.
const DRAIN_BUDGET: Duration = Duration::from_millis(50);
/// Attempts of a metadata / watermark / offset request before giving up.
const REQUEST_ATTEMPTS: u32 = 5;

/// Reads a share of the partitions of Kafka topics for one timely worker.
///
/// Every worker of the job runs one instance with the same config; each
/// reads the partitions [`owner`](crate::assign::owner) gives it, through
/// `assign()` (no group rebalances: the assignment is deterministic and
/// positions come from checkpoints, like Flink's `KafkaSource`).
///
/// Each chunk holds messages of one partition, one per line: `\n` and `\r`
/// inside a payload become spaces (JSON strings cannot hold them raw), and
/// an empty or whitespace-only payload becomes a single `0x00` byte, so
/// the decoder rejects it as `invalid_json` into the dead-letter output
/// instead of skipping a blank line (counted in
/// [`KafkaStats::empty_payloads`]). Partitions are announced by an empty
/// chunk before their first data; in bounded mode each ends with a `Done`
/// chunk.
///
/// Offsets are committed to `group_id` (if set), never automatically by
/// librdkafka: with checkpoints ([`Source::attach_commits`]) only what a
/// completed checkpoint holds; without, what was handed to the worker,
/// every `commit_interval_ms` and when the source ends.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    worker: usize,
    peers: usize,
    resume: HashMap<Arc<str>, Position>,
    consumer: Arc<KafkaConsumer>,
    stats: Arc<KafkaStats>,
    commits: Option<Commits>,
    /// Bounded mode: the committer and end offsets, for the commit of the
    /// job's last checkpoint in [`Source::finish`].
    final_commit: Option<(Committer, HashMap<Arc<str>, u64>)>,
    name: String,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topics", &self.config.topics)
            .field("worker", &self.worker)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// The source of worker `worker` of `peers`; `resume` holds the
    /// positions of the job's last checkpoint (all partitions, any worker).
    pub fn new(
        config: KafkaSourceConfig,
        worker: usize,
        peers: usize,
        resume: Vec<Resume>,
    ) -> Result<KafkaSource, iotflow_core::Error> {
        let what = config.topics.join(",");
        Self::build(config, worker, peers, resume).map_err(|e| e.into_source_error(&what))
    }

    fn build(
        config: KafkaSourceConfig,
        worker: usize,
        peers: usize,
        resume: Vec<Resume>,
    ) -> Result<KafkaSource> {
        config.validate()?;
        if peers == 0 || worker >= peers {
            return Err(Error::Config(format!(
                "worker {worker} of {peers} peers is out of range"
            )));
        }
        let mut positions = HashMap::new();
        for r in resume {
            if parse_partition_key(&r.partition).is_none() {
                continue;
            }
            if let Position::Sequence(s) = &r.position {
                return Err(Error::Config(format!(
                    "checkpoint holds sequence {s} for Kafka partition {}",
                    r.partition
                )));
            }
            positions.insert(r.partition, r.position);
        }
        let stats = Arc::new(KafkaStats::default());
        let consumer: KafkaConsumer = config
            .client_config(worker)
            .create_with_context(SourceContext {
                stats: stats.clone(),
            })
            .map_err(|e| Error::Config(format!("consumer: {e}")))?;
        Ok(KafkaSource {
            name: format!("kafka:{}#{worker}", config.topics.join(",")),
            config,
            worker,
            peers,
            resume: positions,
            consumer: Arc::new(consumer),
            stats,
            commits: None,
            final_commit: None,
        })
    }

    /// Live counters of this instance.
    pub fn stats(&self) -> Arc<KafkaStats> {
        self.stats.clone()
    }

    fn run_inner(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> Result<()> {
        let mut reader = Reader {
            consumer: self.consumer.clone(),
            config: &self.config,
            stats: &self.stats,
            parts: Vec::new(),
            known: HashSet::new(),
            committer: Committer::new(self.consumer.clone(), &self.config, self.stats.clone()),
            out,
            last_hit: 0,
        };
        let layout = reader.discover()?;
        let ended = match reader.start(&layout, &self.resume, self.worker, self.peers, true) {
            Ok(()) => reader.read(self.commits.as_ref(), &self.resume, self.worker, self.peers)?,
            Err(Stop::Closed) => Ended::Stopped,
            Err(Stop::Failed(e)) => return Err(e),
        };
        let Reader {
            parts,
            mut committer,
            ..
        } = reader;
        let done_at: HashMap<Arc<str>, u64> =
            parts.iter().map(|p| (p.key.clone(), p.sent)).collect();
        match (&self.commits, ended) {
            (None, _) => {
                // No checkpoints: acknowledge what the worker was handed.
                let list = parts
                    .iter()
                    .map(|p| (p.topic.to_string(), p.partition, p.sent))
                    .collect();
                committer.commit(list, CommitMode::Sync);
            }
            (Some(c), Ended::Stopped) => {
                if let Some(positions) = final_checkpoint(c) {
                    committer.commit_positions(&positions, &done_at, CommitMode::Sync);
                }
            }
            (Some(_), Ended::AllDone) => {
                // The job's last checkpoint completes only after `run`
                // returns and its channel is dropped: `finish` commits it.
                self.final_commit = Some((committer, done_at));
            }
        }
        Ok(())
    }
}

impl Source for KafkaSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> iotflow_core::Result<()> {
        let what = self.config.topics.join(",");
        self.run_inner(out).map_err(|e| e.into_source_error(&what))
    }

    fn attach_commits(&mut self, commits: Commits) {
        self.commits = Some(commits);
    }

    fn finish(&mut self) {
        if let (Some(c), Some((mut committer, done_at))) = (&self.commits, self.final_commit.take())
            && let Some(positions) = final_checkpoint(c)
        {
            committer.commit_positions(&positions, &done_at, CommitMode::Sync);
        }
    }
}

/// How the read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Bounded mode: every partition reached its end.
    AllDone,
    /// The job stopped (the channel closed).
    Stopped,
}

/// Why sending stopped.
enum Stop {
    /// The channel closed: the job is stopping.
    Closed,
    /// A fatal error.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// One partition this instance reads.
struct Part {
    topic: Arc<str>,
    partition: i32,
    key: Arc<str>,
    /// Offset of the first message in `buf`.
    first: u64,
    /// Offset after the last message in `buf` (or sent).
    next: u64,
    /// Offset after the last message handed to the worker.
    sent: u64,
    /// Bounded mode: the high watermark at start.
    end: Option<u64>,
    /// Messages in `buf` and their payload bytes.
    buffered: (u64, u64),
    buf: Vec<u8>,
    done: bool,
}

impl Part {
    /// Appends one message as one line.
    fn take(&mut self, payload: Option<&[u8]>, offset: u64, empty: &mut u64) {
        if self.buf.is_empty() {
            self.first = offset;
        }
        match payload {
            Some(p) if !p.iter().all(u8::is_ascii_whitespace) => {
                let at = self.buf.len();
                self.buf.extend_from_slice(p);
                // One message per line: JSON strings cannot hold raw line
                // breaks, so outside them a space means the same.
                for b in &mut self.buf[at..] {
                    if *b == b'\n' || *b == b'\r' {
                        *b = b' ';
                    }
                }
                self.buffered.1 += p.len() as u64;
            }
            _ => {
                // A blank line would be skipped; NUL is rejected as
                // invalid JSON, so the empty message reaches the dead
                // letters.
                self.buf.push(0);
                *empty += 1;
            }
        }
        self.buf.push(b'\n');
        self.buffered.0 += 1;
        self.next = offset + 1;
    }

    /// Bounded mode, on the fetcher's end-of-partition event: whether the
    /// partition has been read to at least the end it had at start, given
    /// the consumer's position (`None`: unknown).
    fn reached_end(&self, position: Option<u64>) -> bool {
        self.end
            .is_some_and(|e| self.next.max(position.unwrap_or(0)) >= e)
    }
}

/// A partition to start: topic, partition, key, checkpointed offset.
type Fresh = (Arc<str>, i32, Arc<str>, Option<u64>);

/// Partitions of each topic, as the brokers list them.
type Layout = BTreeMap<Arc<str>, Vec<i32>>;

/// The read loop's state (borrows the source's config and channel).
struct Reader<'a> {
    consumer: Arc<KafkaConsumer>,
    config: &'a KafkaSourceConfig,
    stats: &'a Arc<KafkaStats>,
    parts: Vec<Part>,
    /// Every partition of the job seen so far (owned or not, done or not).
    known: HashSet<(Arc<str>, i32)>,
    committer: Committer,
    out: &'a BridgeSender<iotflow_core::Result<Chunk>>,
    /// Index of the part the last message belonged to (messages come in
    /// runs of one partition).
    last_hit: usize,
}

impl Reader<'_> {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// Retries a broker request with backoff; errors that a retry cannot
    /// fix (authorization, unknown topic) fail at once.
    fn retry<T>(
        &self,
        op: &str,
        mut f: impl FnMut() -> rdkafka::error::KafkaResult<T>,
    ) -> Result<T> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if attempt < REQUEST_ATTEMPTS && is_transient(&e) => {
                    add(&self.stats.retries, 1);
                    tracing::warn!(
                        "kafka {op} failed (attempt {attempt}, retrying in {delay:?}): {e}"
                    );
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => return Err(Error::client(op, e)),
            }
        }
    }

    /// The partitions of every topic.
    fn discover(&self) -> Result<Layout> {
        let mut layout = Layout::new();
        for topic in &self.config.topics {
            let md = self.retry(&format!("fetch metadata of {topic}"), || {
                self.consumer.fetch_metadata(Some(topic), self.timeout())
            })?;
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                return Err(Error::Topic {
                    topic: topic.clone(),
                    reason: "not in the brokers' metadata".into(),
                });
            };
            if let Some(err) = t.error() {
                return Err(Error::Topic {
                    topic: topic.clone(),
                    reason: RDKafkaErrorCode::from(err).to_string(),
                });
            }
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            if ids.is_empty() {
                return Err(Error::Topic {
                    topic: topic.clone(),
                    reason: "has no partitions (does it exist?)".into(),
                });
            }
            ids.sort_unstable();
            layout.insert(Arc::from(topic.as_str()), ids);
        }
        Ok(layout)
    }

    /// Takes the owned partitions of `layout` not seen before: resolves
    /// their start, announces them and assigns them to the consumer.
    /// `initial` partitions start per the config; ones discovered later
    /// start at the earliest offset (nothing produced to them is missed).
    fn start(
        &mut self,
        layout: &Layout,
        resume: &HashMap<Arc<str>, Position>,
        worker: usize,
        peers: usize,
        initial: bool,
    ) -> Result<(), Stop> {
        let mut fresh = Vec::new();
        for (topic, ids) in layout {
            for &p in ids {
                if !self.known.insert((topic.clone(), p)) {
                    continue;
                }
                if owner(topic, p, peers) != worker {
                    continue;
                }
                let key = partition_key(topic, p);
                match resume.get(&key) {
                    Some(Position::Done) => {
                        tracing::debug!(partition = %key, "done in the checkpoint; not read again");
                    }
                    Some(Position::Offset(o)) => fresh.push((topic.clone(), p, key, Some(*o))),
                    _ => fresh.push((topic.clone(), p, key, None)),
                }
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let start = if initial {
            self.config.start
        } else {
            StartFrom::Earliest
        };
        let committed = if start == StartFrom::Committed && self.config.group_id.is_some() {
            self.committed_offsets(&fresh)?
        } else {
            HashMap::new()
        };
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, key, resumed) in fresh {
            let (low, high) = self.retry(&format!("fetch watermarks of {key}"), || {
                self.consumer
                    .fetch_watermarks(&topic, partition, self.timeout())
            })?;
            let (low, high) = (low.max(0) as u64, high.max(0) as u64);
            let from = match resumed {
                Some(o) => o,
                None => match start {
                    StartFrom::Earliest => low,
                    StartFrom::Latest => high,
                    StartFrom::Committed => committed
                        .get(&(topic.clone(), partition))
                        .copied()
                        .unwrap_or(low),
                },
            };
            tracing::info!(
                partition = %key, from, low, high,
                resumed = resumed.is_some(),
                "kafka partition assigned"
            );
            let part = Part {
                topic: topic.clone(),
                partition,
                key: key.clone(),
                first: from,
                next: from,
                sent: from,
                end: self.config.stop_at_end.then_some(high),
                buffered: (0, 0),
                buf: Vec::new(),
                done: false,
            };
            self.send(Chunk {
                source: key.clone(),
                offset: from,
                data: Vec::new(),
                resume: None,
            })?;
            add(&self.stats.partitions, 1);
            self.parts.push(part);
            // Even a partition already at its end is assigned: its end-of-
            // partition event ends it (see `on_partition_eof`).
            tpl.add_partition_offset(&topic, partition, Offset::Offset(from as i64))
                .map_err(|e| Error::client(format!("assign {key}"), e))?;
        }
        if tpl.count() > 0 {
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| Error::client("assign partitions", e))?;
        }
        Ok(())
    }

    /// Committed offsets of the group for `parts`; partitions without one
    /// are left out.
    fn committed_offsets(&self, parts: &[Fresh]) -> Result<HashMap<(Arc<str>, i32), u64>> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p, _, _) in parts {
            tpl.add_partition(topic, *p);
        }
        let got = self.retry("fetch committed offsets", || {
            self.consumer.committed_offsets(tpl.clone(), self.timeout())
        })?;
        let mut out = HashMap::new();
        for e in got.elements() {
            if let Offset::Offset(o) = e.offset()
                && o >= 0
                && let Some((topic, ..)) = parts
                    .iter()
                    .find(|(t, p, ..)| &**t == e.topic() && *p == e.partition())
            {
                out.insert((topic.clone(), e.partition()), o as u64);
            }
        }
        Ok(out)
    }

    fn send(&mut self, chunk: Chunk) -> Result<(), Stop> {
        self.out
            .send_blocking(Ok(chunk))
            .map_err(|_| Stop::Closed)?;
        add(&self.stats.chunks, 1);
        Ok(())
    }

    /// Hands the buffered messages of part `idx` to the worker.
    fn flush(&mut self, idx: usize) -> Result<(), Stop> {
        let p = &mut self.parts[idx];
        if p.buf.is_empty() {
            return Ok(());
        }
        let cap = self.config.max_chunk_bytes + self.config.max_chunk_bytes / 8;
        let data = std::mem::replace(&mut p.buf, Vec::with_capacity(cap));
        let (messages, bytes) = std::mem::take(&mut p.buffered);
        let chunk = Chunk {
            source: p.key.clone(),
            offset: p.first,
            data,
            resume: Some(Resume {
                partition: p.key.clone(),
                position: Position::Offset(p.next),
            }),
        };
        let next = p.next;
        self.send(chunk)?;
        let p = &mut self.parts[idx];
        p.sent = next;
        add(&self.stats.messages, messages);
        add(&self.stats.bytes, bytes);
        Ok(())
    }

    /// Bounded mode: flushes part `idx`, ends it with a `Done` chunk and
    /// stops fetching it.
    fn finish_part(&mut self, idx: usize) -> Result<(), Stop> {
        self.flush(idx)?;
        let p = &mut self.parts[idx];
        p.done = true;
        let key = p.key.clone();
        let (topic, partition, sent) = (p.topic.clone(), p.partition, p.sent);
        tracing::info!(partition = %key, end = sent, "kafka partition read to its end");
        self.send(Chunk {
            source: key.clone(),
            offset: sent,
            data: Vec::new(),
            resume: Some(Resume {
                partition: key,
                position: Position::Done,
            }),
        })?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::debug!("pause {topic}/{partition}: {e}");
        }
        Ok(())
    }

    /// Bounded mode: the fetcher reached the end of partition number `p`
    /// (of some topic: librdkafka's event does not say which). Every part
    /// with that number whose position has passed the end it had at start
    /// is finished.
    ///
    /// Why not stop at the high watermark alone: tansu answers ListOffsets
    /// with the base offset of the last record batch + 1, short of the
    /// true end when that batch holds several records (and a Kafka topic
    /// with transactions ends in control records no message reaches). The
    /// end-of-partition event comes after every fetched message of the
    /// partition, so the whole last batch has been taken by then. With
    /// several topics, an event for `t1/p` may end `t2/p` once it has
    /// passed its start-time end; on Kafka that end is exact, on tansu its
    /// last batch may be cut.
    fn on_partition_eof(&mut self, consumer: &KafkaConsumer, p: i32) -> Result<(), Stop> {
        let candidates: Vec<usize> = (0..self.parts.len())
            .filter(|&i| self.parts[i].partition == p && !self.parts[i].done)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let positions = consumer.position().ok();
        for idx in candidates {
            let part = &self.parts[idx];
            let position = positions.as_ref().and_then(|tpl| {
                match tpl.find_partition(&part.topic, part.partition)?.offset() {
                    Offset::Offset(o) => u64::try_from(o).ok(),
                    _ => None,
                }
            });
            if part.reached_end(position) {
                self.finish_part(idx)?;
            }
        }
        Ok(())
    }

    fn part_of(&mut self, topic: &str, partition: i32) -> Option<usize> {
        let hit = |p: &Part| p.partition == partition && &*p.topic == topic;
        if self.parts.get(self.last_hit).is_some_and(hit) {
            return Some(self.last_hit);
        }
        let idx = self.parts.iter().position(hit)?;
        self.last_hit = idx;
        Some(idx)
    }

    /// The poll loop.
    fn read(
        &mut self,
        commits: Option<&Commits>,
        resume: &HashMap<Arc<str>, Position>,
        worker: usize,
        peers: usize,
    ) -> Result<Ended> {
        let commit_every = Duration::from_millis(self.config.commit_interval_ms.max(100));
        let discover_every = Duration::from_millis(self.config.discovery_interval_ms);
        let discovery = !self.config.stop_at_end && self.config.discovery_interval_ms > 0;
        let (mut last_commit, mut last_discovery) = (Instant::now(), Instant::now());
        let consumer = self.consumer.clone();
        let mut errors_logged = 0u64;
        match self.read_loop(
            &consumer,
            commits,
            resume,
            worker,
            peers,
            (commit_every, &mut last_commit),
            (discovery, discover_every, &mut last_discovery),
            &mut errors_logged,
        ) {
            Ok(ended) => Ok(ended),
            Err(Stop::Closed) => Ok(Ended::Stopped),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read_loop(
        &mut self,
        consumer: &KafkaConsumer,
        commits: Option<&Commits>,
        resume: &HashMap<Arc<str>, Position>,
        worker: usize,
        peers: usize,
        (commit_every, last_commit): (Duration, &mut Instant),
        (discovery, discover_every, last_discovery): (bool, Duration, &mut Instant),
        errors_logged: &mut u64,
    ) -> Result<Ended, Stop> {
        let max_chunk = self.config.max_chunk_bytes;
        loop {
            if self.out.is_closed() {
                return Ok(Ended::Stopped);
            }
            if self.config.stop_at_end && self.parts.iter().all(|p| p.done) {
                return Ok(Ended::AllDone);
            }
            match commits {
                Some(c) => {
                    if let Some(positions) = c.take() {
                        let done_at: HashMap<Arc<str>, u64> =
                            self.parts.iter().map(|p| (p.key.clone(), p.sent)).collect();
                        self.committer
                            .commit_positions(&positions, &done_at, CommitMode::Async);
                    }
                }
                None if last_commit.elapsed() >= commit_every => {
                    let list = self
                        .parts
                        .iter()
                        .map(|p| (p.topic.to_string(), p.partition, p.sent))
                        .collect();
                    self.committer.commit(list, CommitMode::Async);
                    *last_commit = Instant::now();
                }
                None => {}
            }
            if discovery && last_discovery.elapsed() >= discover_every {
                *last_discovery = Instant::now();
                match self.discover() {
                    Ok(layout) => self.start(&layout, resume, worker, peers, false)?,
                    // Brokers may be briefly away; the next round retries.
                    Err(e) => tracing::warn!("kafka partition discovery failed: {e}"),
                }
            }

            let started = Instant::now();
            let mut wait = POLL_WAIT;
            let mut empty = 0u64;
            let mut n = 0u32;
            while let Some(polled) = consumer.poll(wait) {
                wait = Duration::ZERO;
                match polled {
                    Ok(m) => {
                        let Ok(offset) = u64::try_from(m.offset()) else {
                            continue;
                        };
                        let Some(idx) = self.part_of(m.topic(), m.partition()) else {
                            continue;
                        };
                        let part = &mut self.parts[idx];
                        if part.done {
                            // Bounded mode: past the end taken at start.
                            continue;
                        }
                        part.take(m.payload(), offset, &mut empty);
                        if part.buf.len() >= max_chunk {
                            self.flush(idx)?;
                        }
                    }
                    Err(KafkaError::PartitionEOF(p)) => self.on_partition_eof(consumer, p)?,
                    Err(e) => {
                        if is_fatal(&e) {
                            return Err(Stop::Failed(Error::client("consume", e)));
                        }
                        add(&self.stats.retries, 1);
                        *errors_logged += 1;
                        if errors_logged.is_power_of_two() {
                            tracing::warn!(
                                errors = *errors_logged,
                                "kafka consumer error (librdkafka retries): {e}"
                            );
                        }
                    }
                }
                n = n.wrapping_add(1);
                if n.is_multiple_of(256) && started.elapsed() >= DRAIN_BUDGET {
                    break;
                }
            }
            add(&self.stats.empty_payloads, empty);
            for idx in 0..self.parts.len() {
                self.flush(idx)?;
            }
        }
    }
}

/// Errors a retry cannot fix.
fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::Fatal
        )
    )
}

/// Errors of a request that a later attempt may not hit.
fn is_transient(e: &KafkaError) -> bool {
    !is_fatal(e)
        && !matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> Part {
        Part {
            topic: Arc::from("t"),
            partition: 0,
            key: partition_key("t", 0),
            first: 0,
            next: 0,
            sent: 0,
            end: Some(3),
            buffered: (0, 0),
            buf: Vec::new(),
            done: false,
        }
    }

    #[test]
    fn messages_become_lines() {
        let mut p = part();
        let mut empty = 0;
        p.take(Some(b"{\"a\":\n1}\r\n"), 7, &mut empty);
        p.take(Some(b""), 8, &mut empty);
        p.take(Some(b" \t\n"), 9, &mut empty);
        p.take(None, 10, &mut empty);
        p.take(Some(b"x"), 11, &mut empty);
        assert_eq!(p.buf, b"{\"a\": 1}  \n\0\n\0\n\0\nx\n");
        assert_eq!(empty, 3);
        assert_eq!((p.first, p.next), (7, 12));
        assert_eq!(p.buffered, (5, 11));
        assert!(p.reached_end(None));
    }

    #[test]
    fn end_is_the_high_watermark_at_start_or_later() {
        let mut p = part();
        let mut empty = 0;
        p.take(Some(b"a"), 0, &mut empty);
        p.take(Some(b"b"), 1, &mut empty);
        assert!(!p.reached_end(None));
        assert!(!p.reached_end(Some(2)));
        // Control records past the last message move the position on.
        assert!(p.reached_end(Some(3)));
        p.take(Some(b"c"), 2, &mut empty);
        assert!(p.reached_end(None));
        p.end = None;
        assert!(!p.reached_end(Some(10)));
    }

    #[test]
    fn constructor_checks_config_and_positions() {
        let c = KafkaSourceConfig::new("127.0.0.1:1", &["t"]);
        assert!(KafkaSource::new(c.clone(), 2, 2, vec![]).is_err());
        assert!(KafkaSource::new(c.clone(), 0, 0, vec![]).is_err());
        let bad = vec![Resume {
            partition: partition_key("t", 0),
            position: Position::Sequence("5".into()),
        }];
        assert!(KafkaSource::new(c.clone(), 0, 1, bad).is_err());
        let other = vec![Resume {
            partition: Arc::from("kinesis:s/shardId-1"),
            position: Position::Sequence("5".into()),
        }];
        let s = KafkaSource::new(c, 0, 1, other).expect("valid");
        assert!(s.resume.is_empty());
        assert_eq!(s.name(), "kafka:t#0");
    }
}
