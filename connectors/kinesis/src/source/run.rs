//! The read loop of one source: list shards, start the owned ones whose
//! parents are done, poll them in turn, finish closed ones.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Position, Resume};
use tokio::runtime::Runtime;

use super::api::{self, Batch, IteratorStart};
use super::{KinesisSource, KinesisStats};
use crate::Error;
use crate::backoff::Backoff;
use crate::client::{Failure, Fault};
use crate::config::StartPosition;
use crate::payload::push_line;
use crate::shards::{Listing, Owners, ShardInfo, continues_restored_lineage};

/// Why the loop ended early.
#[derive(Debug)]
pub(super) enum Halt {
    /// The job stopped (the output channel closed).
    Stopped,
    /// A fatal error.
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Failed(e)
    }
}

/// Longest uninterrupted sleep: the loop notices a stopped job this fast.
const SLICE: Duration = Duration::from_millis(50);

/// An owned shard being read.
#[derive(Debug)]
struct Cursor {
    iterator: Option<String>,
    /// Where a new iterator starts when nothing has been consumed yet.
    start: IteratorStart,
    last_seq: Option<String>,
    next_poll: Instant,
    backoff: Backoff,
}

#[derive(Debug)]
enum Phase {
    /// Parents not done yet; `foreign_since` is when only parents of other
    /// workers were left.
    Waiting {
        foreign_since: Option<Instant>,
    },
    Reading(Cursor),
    Done,
}

#[derive(Debug)]
struct Shard {
    key: Arc<str>,
    phase: Phase,
    /// Listed when the source started and not continuing a restored
    /// lineage: the configured start applies.
    at_start: bool,
}

pub(super) struct Reader<'a> {
    src: &'a KinesisSource,
    rt: Runtime,
    client: Client,
    listing: Listing,
    owners: Owners,
    /// Owned shards by id.
    shards: BTreeMap<String, Shard>,
    /// Shards this source knows are done: read here, or restored as done.
    done: HashSet<String>,
    next_list: Instant,
    relist: bool,
    errors_in_a_row: u32,
    list_backoff: Backoff,
}

impl<'a> Reader<'a> {
    pub(super) fn new(src: &'a KinesisSource, rt: Runtime, client: Client) -> Self {
        let done: HashSet<String> = src
            .resume
            .iter()
            .filter(|(_, p)| **p == Position::Done)
            .map(|(s, _)| s.clone())
            .collect();
        for s in &done {
            src.finished.insert(s);
        }
        Reader {
            rt,
            client,
            listing: Listing::default(),
            owners: Owners::new(src.peers),
            shards: BTreeMap::new(),
            done,
            next_list: Instant::now(),
            relist: true,
            errors_in_a_row: 0,
            list_backoff: src.backoff(),
            src,
        }
    }

    fn stats(&self) -> &KinesisStats {
        &self.src.stats
    }

    fn stream(&self) -> &str {
        &self.src.config.stream
    }

    fn bounded(&self) -> bool {
        self.src.config.stop_at_end
    }

    pub(super) fn run(
        &mut self,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
    ) -> Result<(), Halt> {
        self.list(out, true)?;
        tracing::info!(
            stream = %self.stream(),
            worker = self.src.worker,
            peers = self.src.peers,
            owned = self.shards.len(),
            listed = self.listing.iter().count(),
            bounded = self.bounded(),
            "kinesis source started"
        );
        loop {
            if out.is_closed() {
                return Err(Halt::Stopped);
            }
            if !self.bounded() && (self.relist || Instant::now() >= self.next_list) {
                self.list(out, false)?;
            }
            self.start_ready(out)?;
            if self.bounded() && self.shards.values().all(|s| matches!(s.phase, Phase::Done)) {
                tracing::info!(
                    stream = %self.stream(),
                    worker = self.src.worker,
                    "kinesis source read all its shards to their end",
                );
                return Ok(());
            }
            let next = self
                .shards
                .iter()
                .filter_map(|(id, s)| match &s.phase {
                    Phase::Reading(c) => Some((c.next_poll, id.clone())),
                    _ => None,
                })
                .min();
            let now = Instant::now();
            match next {
                Some((at, id)) if at <= now => self.poll(&id, out)?,
                Some((at, _)) => {
                    let until = if self.bounded() {
                        at
                    } else {
                        at.min(self.next_list)
                    };
                    pause(out, until.saturating_duration_since(now).min(SLICE))?;
                }
                // Only shards waiting for parents, or none owned yet.
                None => pause(out, SLICE)?,
            }
        }
    }

    /// Lists the stream's shards and takes on the owned ones not seen yet.
    fn list(
        &mut self,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
        first: bool,
    ) -> Result<(), Halt> {
        let shards = loop {
            let listed = self.rt.block_on(api::list_shards(
                &self.client,
                &self.src.config.stream,
                self.src.list_page_size,
            ));
            match listed {
                Ok(s) => {
                    self.list_backoff.reset();
                    self.errors_in_a_row = 0;
                    break s;
                }
                Err(f) if f.fault == Fault::NotFound => {
                    return Err(self.api_error("ListShards", f).into());
                }
                Err(f) => {
                    let delay = self.retry_delay("ListShards", f, None)?;
                    pause(out, delay)?;
                }
            }
        };
        KinesisStats::add(&self.stats().listings, 1);
        self.listing = Listing::new(shards);
        self.relist = false;
        self.next_list = Instant::now() + Duration::from_millis(self.src.config.list_interval_ms);
        let ids: Vec<String> = self.listing.iter().map(|s| s.id.clone()).collect();
        for id in ids {
            let owner = self.owners.owner(&self.listing, &id);
            if owner != self.src.worker || self.shards.contains_key(&id) {
                continue;
            }
            let key: Arc<str> = crate::partition_key(&self.src.config.stream, &id).into();
            let phase = if self.done.contains(&id) {
                Phase::Done
            } else {
                Phase::Waiting {
                    foreign_since: None,
                }
            };
            // The configured start applies to the shards of the first
            // listing (LATEST and AT_TIMESTAMP then hold for children that
            // already exist too), unless they continue a lineage the
            // checkpoint was in the middle of.
            let at_start =
                first && !continues_restored_lineage(&self.listing, &id, &self.src.resume);
            tracing::debug!(
                stream = %self.stream(),
                shard = %id,
                at_start,
                "kinesis shard assigned to this worker",
            );
            self.shards.insert(
                id,
                Shard {
                    key,
                    phase,
                    at_start,
                },
            );
        }
        Ok(())
    }

    /// Starts reading the waiting shards whose parents are done.
    fn start_ready(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> Result<(), Halt> {
        let now = Instant::now();
        let timeout = Duration::from_millis(self.src.config.foreign_parent_timeout_ms);
        let mut ready = Vec::new();
        for (id, shard) in &mut self.shards {
            let Phase::Waiting { foreign_since } = &mut shard.phase else {
                continue;
            };
            let mut local_pending = false;
            let mut foreign_pending = Vec::new();
            for p in self.listing.listed_parents(id) {
                if self.done.contains(p) {
                    continue;
                }
                if self.owners.owner(&self.listing, p) == self.src.worker {
                    local_pending = true;
                } else if !self.src.finished.contains(p) {
                    foreign_pending.push(p.to_owned());
                }
            }
            if local_pending {
                continue;
            }
            if !foreign_pending.is_empty() {
                let since = *foreign_since.get_or_insert(now);
                if now.duration_since(since) < timeout {
                    continue;
                }
                tracing::warn!(
                    stream = %self.src.config.stream,
                    shard = %id,
                    parents = ?foreign_pending,
                    "kinesis: merged shard's parents on other workers not seen to finish \
                     (another process?); reading it anyway, unordered across the merge"
                );
            }
            ready.push(id.clone());
        }
        for id in ready {
            let start = match self.src.resume.get(&id) {
                Some(Position::Sequence(seq)) => IteratorStart::After(seq.clone()),
                _ if self.shards.get(&id).is_some_and(|s| s.at_start) => {
                    IteratorStart::Configured(self.src.config.start)
                }
                _ => IteratorStart::TrimHorizon,
            };
            let Some(shard) = self.shards.get_mut(&id) else {
                continue;
            };
            tracing::info!(
                stream = %self.src.config.stream,
                shard = %id,
                ?start,
                "kinesis shard: reading",
            );
            shard.phase = Phase::Reading(Cursor {
                iterator: None,
                last_seq: match &start {
                    IteratorStart::After(seq) => Some(seq.clone()),
                    _ => None,
                },
                start,
                next_poll: now,
                backoff: self.src.backoff(),
            });
            // Announce the partition before its first data.
            send(
                out,
                Chunk {
                    source: Arc::clone(&shard.key),
                    offset: 0,
                    data: Vec::new(),
                    resume: None,
                },
            )?;
        }
        Ok(())
    }

    /// One step of reading shard `id`: get an iterator or one batch.
    fn poll(
        &mut self,
        id: &str,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
    ) -> Result<(), Halt> {
        let Some(Shard {
            phase: Phase::Reading(cursor),
            ..
        }) = self.shards.get(id)
        else {
            return Ok(());
        };
        let result = match cursor.iterator.clone() {
            None => {
                let start = match &cursor.last_seq {
                    Some(seq) => IteratorStart::After(seq.clone()),
                    None => cursor.start.clone(),
                };
                self.rt
                    .block_on(api::shard_iterator(&self.client, self.stream(), id, &start))
                    .map(Step::Iterator)
            }
            Some(it) => {
                KinesisStats::add(&self.stats().get_records_calls, 1);
                self.rt
                    .block_on(api::get_records(
                        &self.client,
                        &it,
                        self.src.config.max_records,
                    ))
                    .map(Step::Batch)
            }
        };
        match result {
            Ok(step) => {
                self.errors_in_a_row = 0;
                self.cursor(id)?.backoff.reset();
                match step {
                    Step::Iterator(Some(it)) => {
                        let c = self.cursor(id)?;
                        c.iterator = Some(it);
                        if c.start == IteratorStart::Configured(StartPosition::Latest) {
                            // Should this iterator expire before a record is
                            // consumed, a new LATEST one would skip what came
                            // in meanwhile: continue from this moment instead
                            // (less a margin for clock skew: records from just
                            // before the start are harmless, lost ones not).
                            c.start = IteratorStart::Configured(StartPosition::AtTimestamp(
                                now_ms().saturating_sub(2000),
                            ));
                        }
                    }
                    Step::Iterator(None) => {
                        // No iterator for a shard: it has nothing left.
                        self.finish(id, out)?;
                    }
                    Step::Batch(batch) => self.consume(id, batch, out)?,
                }
                Ok(())
            }
            Err(f) => self.failed(id, f, out),
        }
    }

    fn cursor(&mut self, id: &str) -> Result<&mut Cursor, Halt> {
        match self.shards.get_mut(id).map(|s| &mut s.phase) {
            Some(Phase::Reading(c)) => Ok(c),
            _ => Err(Halt::Failed(Error::Config(format!(
                "internal: shard {id} is not being read"
            )))),
        }
    }

    /// Sends a batch as one chunk and decides when to poll again.
    fn consume(
        &mut self,
        id: &str,
        batch: Batch,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
    ) -> Result<(), Halt> {
        let Batch {
            records,
            next_iterator,
            millis_behind,
        } = batch;
        let got = records.len();
        if let Some(key) = self.shards.get(id).map(|s| Arc::clone(&s.key))
            && let Some((last, _)) = records.last()
        {
            let last = last.clone();
            let offset = records
                .first()
                .and_then(|(s, _)| s.parse().ok())
                .unwrap_or(0);
            let mut data = Vec::with_capacity(records.iter().map(|(_, d)| d.len() + 1).sum());
            let (mut bytes, mut empty) = (0u64, 0u64);
            for (_, payload) in &records {
                bytes += payload.len() as u64;
                empty += u64::from(push_line(&mut data, payload));
            }
            let stats = self.stats();
            KinesisStats::add(&stats.records, got as u64);
            KinesisStats::add(&stats.bytes, bytes);
            KinesisStats::add(&stats.empty_payloads, empty);
            send(
                out,
                Chunk {
                    source: key.clone(),
                    offset,
                    data,
                    resume: Some(Resume {
                        partition: key,
                        position: Position::Sequence(last.clone()),
                    }),
                },
            )?;
            self.cursor(id)?.last_seq = Some(last);
        }
        let Some(next) = next_iterator else {
            // A closed shard, read to its end.
            return self.finish(id, out);
        };
        let ending = self
            .listing
            .get(id)
            .and_then(|s: &ShardInfo| s.ending_sequence.clone());
        let bounded = self.bounded();
        let full = got >= self.src.config.max_records as usize;
        let behind = millis_behind.unwrap_or(0);
        let poll_interval = Duration::from_millis(self.src.config.poll_interval_ms);
        let cursor = self.cursor(id)?;
        cursor.iterator = Some(next);
        if got == 0 {
            // Some servers keep handing out iterators on a closed shard:
            // having consumed its ending sequence number is its end too.
            let past_end = ending
                .zip(cursor.last_seq.as_ref())
                .is_some_and(|(end, last)| {
                    !Position::Sequence(end).is_after(&Position::Sequence(last.clone()))
                });
            if past_end || (bounded && behind <= 0) {
                return self.finish(id, out);
            }
            cursor.next_poll = Instant::now() + poll_interval;
        } else {
            cursor.next_poll = if bounded || full || behind > 0 {
                Instant::now()
            } else {
                Instant::now() + poll_interval
            };
        }
        Ok(())
    }

    /// Marks shard `id` done and announces it; its children may start.
    fn finish(
        &mut self,
        id: &str,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
    ) -> Result<(), Halt> {
        let Some(shard) = self.shards.get_mut(id) else {
            return Ok(());
        };
        shard.phase = Phase::Done;
        let key = Arc::clone(&shard.key);
        self.done.insert(id.to_owned());
        self.src.finished.insert(id);
        KinesisStats::add(&self.stats().shards_finished, 1);
        // Children of a closed shard exist already: list them now.
        self.relist = true;
        tracing::info!(
            stream = %self.src.config.stream,
            shard = %id,
            "kinesis shard: read to its end",
        );
        send(
            out,
            Chunk {
                source: Arc::clone(&key),
                offset: 0,
                data: Vec::new(),
                resume: Some(Resume {
                    partition: key,
                    position: Position::Done,
                }),
            },
        )
    }

    /// Handles a failed call on shard `id`.
    fn failed(
        &mut self,
        id: &str,
        f: Failure,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
    ) -> Result<(), Halt> {
        match f.fault {
            Fault::ExpiredIterator => {
                KinesisStats::add(&self.stats().iterator_renewals, 1);
                tracing::debug!(
                    stream = %self.stream(),
                    shard = %id,
                    "kinesis iterator expired; renewing it from the last sequence number",
                );
                let c = self.cursor(id)?;
                c.iterator = None;
                c.next_poll = Instant::now();
                Ok(())
            }
            Fault::NotFound => {
                // Gone from the stream (past retention) or the stream is gone:
                // the listing tells which.
                self.list(out, false)?;
                if self.listing.contains(id) {
                    let delay = self.retry_delay("GetRecords", f, Some(id))?;
                    self.cursor(id)?.next_poll = Instant::now() + delay;
                    Ok(())
                } else {
                    tracing::warn!(
                        stream = %self.stream(),
                        shard = %id,
                        "kinesis shard no longer exists (past retention); done with it",
                    );
                    self.finish(id, out)
                }
            }
            _ => {
                let delay = self.retry_delay("GetRecords", f, Some(id))?;
                self.cursor(id)?.next_poll = Instant::now() + delay;
                Ok(())
            }
        }
    }

    /// The backoff before retrying after `f`, or the error when retrying
    /// will not help or too many errors came in a row.
    fn retry_delay(
        &mut self,
        op: &'static str,
        f: Failure,
        shard: Option<&str>,
    ) -> Result<Duration, Halt> {
        let max = self.src.config.max_consecutive_errors;
        match f.fault {
            Fault::Throttled => {
                KinesisStats::add(&self.stats().throttled, 1);
            }
            Fault::Transient | Fault::NotFound => {
                KinesisStats::add(&self.stats().transient_errors, 1);
                self.errors_in_a_row += 1;
                if self.errors_in_a_row > max {
                    let mut e = self.api_error(op, f);
                    if let Error::Api { message, .. } = &mut e {
                        message.push_str(&format!(" ({max} retries in a row failed)"));
                    }
                    return Err(e.into());
                }
            }
            Fault::ExpiredIterator | Fault::Fatal => return Err(self.api_error(op, f).into()),
        }
        let backoff = match shard {
            Some(id) => &mut self.cursor(id)?.backoff,
            None => &mut self.list_backoff,
        };
        let delay = backoff.next_delay();
        tracing::debug!(
            stream = %self.src.config.stream,
            shard = ?shard,
            op,
            fault = ?f.fault,
            ?delay,
            error = %f.message,
            "kinesis call failed; retrying",
        );
        Ok(delay)
    }

    fn api_error(&self, op: &'static str, f: Failure) -> Error {
        Error::Api {
            op,
            stream: self.stream().to_owned(),
            message: f.message,
        }
    }
}

/// The outcome of one call.
enum Step {
    Iterator(Option<String>),
    Batch(Batch),
}

fn send(out: &BridgeSender<iotflow_core::Result<Chunk>>, chunk: Chunk) -> Result<(), Halt> {
    out.send_blocking(Ok(chunk)).map_err(|_| Halt::Stopped)
}

/// Wall-clock time in ms since the Unix epoch (Kinesis timestamps).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sleeps `d` in slices, returning early (as stopped) when the job stops.
fn pause(out: &BridgeSender<iotflow_core::Result<Chunk>>, d: Duration) -> Result<(), Halt> {
    let until = Instant::now() + d;
    loop {
        if out.is_closed() {
            return Err(Halt::Stopped);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(SLICE));
    }
}

impl KinesisSource {
    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.config.backoff_base_ms),
            Duration::from_millis(self.config.backoff_max_ms),
        )
    }
}
