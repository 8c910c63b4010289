//! Checkpoint coordination, commit and recovery.
//!
//! * [`coordinator`] runs on every worker; worker 0's instance holds a
//!   capability at the sources' frontier and, every `interval` of processing
//!   time, broadcasts [`Checkpoint`]`(T)` at `T` = that frontier. Because the
//!   control stream's frontier is held there, every operator receives the
//!   request before its own frontier can pass `T` (see
//!   [`iotflow_core::checkpoint`]). When the sources end it sends the final
//!   checkpoint; when the job is cancelled (Ctrl-C) it takes one last
//!   checkpoint at the current frontier and no final one, so a rerun resumes.
//! * [`committer`] gathers every participant's [`Ack`] on worker 0. Once its
//!   input frontier passes a checkpoint's time, every ack is in: a writer
//!   thread stores the state parts, then the manifest (atomically, last),
//!   then publishes the sinks' staged files and applies retention.
//! * [`recover`] finds the newest checkpoint whose manifest and parts are
//!   intact (a corrupt one is logged and skipped), finishes publishing its
//!   outputs if a crash interrupted that, removes newer broken checkpoints,
//!   and returns the parts to restore.
//!
//! Store layout: `ckpt-<id:010>/MANIFEST.json` and
//! `ckpt-<id:010>/<participant>-<worker:05>.bin`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotflow_core::checkpoint::{Ack, Checkpoint, FINAL, OutputFile, Part, Restored};
use iotflow_core::context::JobContext;
use iotflow_core::state;
use iotflow_core::tally::Tally;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::Operator;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::vec::Broadcast;

use crate::store::{CheckpointStore, StoreError};

/// Manifest format version.
const FORMAT: u32 = 1;

/// Checkpoint settings of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Where checkpoints live: a local directory or `s3://bucket/prefix`.
    pub dir: String,
    /// Processing time between checkpoints (default 10 s).
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// Complete checkpoints to keep (default 3, at least 1).
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dir: String::new(),
            interval: Duration::from_secs(10),
            keep: 3,
        }
    }
}

/// Parses durations like `200ms`, `5s`, `1m`, `2h`, `1.5s` (a bare number is
/// seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 200ms, 5s, 1m"))?;
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Errors of checkpointing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint directory belongs to another job (user error).
    #[error(
        "checkpoint location {location} holds checkpoints of a different job (input, rules, windows or outputs changed); use another --checkpoint-dir or delete it"
    )]
    OtherJob {
        /// The location.
        location: String,
    },
    /// The manifest did not encode (internal bug).
    #[error("manifest does not encode: {0}")]
    Encode(String),
    /// Publishing an output file failed.
    #[error("cannot publish {from} as {to}: {source}")]
    Publish {
        /// Staged file.
        from: String,
        /// Published name.
        to: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One state part in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Participant name.
    pub name: String,
    /// Worker that wrote it.
    pub worker: usize,
    /// Object path in the store.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 of the object.
    pub crc32: u32,
}

/// The record of one complete checkpoint, written last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// Fingerprint of the job that wrote it.
    pub job: String,
    /// Checkpoint id.
    pub id: u64,
    /// Its time (`None` for the final checkpoint).
    pub time: Option<u64>,
    /// The input was read to its end: the job is complete.
    pub finished: bool,
    /// Workers of the run that wrote it.
    pub peers: usize,
    /// Unix time (ms) it was written.
    pub written_unix_ms: u64,
    /// State parts.
    pub parts: Vec<PartEntry>,
    /// Output files it published.
    pub outputs: Vec<OutputFile>,
    /// Job counts up to the checkpoint.
    pub tally: Tally,
}

fn ckpt_dir(id: u64) -> String {
    format!("ckpt-{id:010}")
}

fn manifest_path(id: u64) -> String {
    format!("{}/MANIFEST.json", ckpt_dir(id))
}

fn part_path(id: u64, name: &str, worker: usize) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}/{safe}-{worker:05}.bin", ckpt_dir(id))
}

/// Checkpoint ids in the store, ascending.
fn checkpoint_ids(store: &CheckpointStore) -> Result<Vec<u64>, StoreError> {
    let mut ids: Vec<u64> = store
        .list("")?
        .iter()
        .filter_map(|p| p.strip_prefix("ckpt-"))
        .filter_map(|rest| rest.split('/').next())
        .filter_map(|id| id.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Figures of the checkpoints a run took, for its summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointStats {
    /// Checkpoint the run started from.
    pub restored_from: Option<u64>,
    /// Checkpoints completed by this run.
    pub completed: u64,
    /// Id of the last one.
    pub last_id: Option<u64>,
    /// Bytes of state in the last one.
    pub last_state_bytes: u64,
    /// Time from request to manifest of the last one (ms).
    pub last_ms: u64,
    /// Longest request-to-manifest time (ms).
    pub max_ms: u64,
    /// Mean request-to-manifest time (ms).
    pub mean_ms: f64,
    /// Bytes of state written by this run.
    pub total_state_bytes: u64,
}

/// State shared by the coordinator and the committer (worker 0).
#[derive(Debug, Default)]
struct Status {
    /// Checkpoint requested and not yet committed.
    in_flight: Option<(u64, Instant)>,
    /// The committer stopped (a failure): take no more checkpoints.
    stopped: bool,
    stats: CheckpointStats,
}

/// A job's checkpointing: the store, settings, and shared progress.
#[derive(Clone, Debug)]
pub struct Checkpointing {
    store: Arc<CheckpointStore>,
    config: CheckpointConfig,
    job: String,
    first_id: u64,
    status: Arc<Mutex<Status>>,
}

impl Checkpointing {
    /// Checkpointing into `store` for the job with fingerprint `job`;
    /// `recovery` says where numbering continues.
    pub fn new(
        store: Arc<CheckpointStore>,
        config: CheckpointConfig,
        job: String,
        recovery: &Recovery,
    ) -> Self {
        let stats = CheckpointStats {
            restored_from: recovery.restored.as_ref().map(|r| r.id),
            ..CheckpointStats::default()
        };
        Checkpointing {
            store,
            config,
            job,
            first_id: recovery.next_id,
            status: Arc::new(Mutex::new(Status {
                stats,
                ..Status::default()
            })),
        }
    }

    /// Figures so far.
    pub fn stats(&self) -> CheckpointStats {
        self.status
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }
}

/// Builds the coordinator. `sources` is any stream whose frontier is the
/// sources' frontier (their tally output: no data until they end). Returns
/// the control stream, broadcast to every worker.
pub fn coordinator<'scope>(
    sources: StreamVec<'scope, u64, iotflow_core::tally::Tally>,
    ck: &Checkpointing,
    ctx: &JobContext,
) -> StreamVec<'scope, u64, Checkpoint> {
    let scope = sources.scope();
    let leader = scope.index() == 0;
    let mut builder = OperatorBuilder::new("checkpoint-coordinator".to_owned(), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address);
    let mut input = builder.new_input(sources, Pipeline);
    let (out, control) = builder.new_output();
    let mut out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Checkpoint>>>::from(out);
    let interval = ck.config.interval.max(Duration::from_millis(1));
    let status = ck.status.clone();
    let ctx = ctx.clone();
    let mut next_id = ck.first_id;
    builder.build(move |mut caps| {
        let mut cap: Option<Capability<u64>> = if leader { caps.pop() } else { None };
        drop(caps);
        let mut last_time: Option<u64> = None;
        let mut last_start = Instant::now();
        let mut savepoint = false;
        move |frontiers| {
            input.for_each(|_, data| data.clear());
            let Some(c) = cap.as_mut() else { return };
            let frontier = frontiers[0].frontier().iter().min().copied();
            let cancelled = ctx.is_cancelled();
            let (in_flight, stopped) = status
                .lock()
                .map(|s| (s.in_flight.is_some(), s.stopped))
                .unwrap_or((true, true));
            let mut out = out.activate();
            let mut send = |c: &Capability<u64>, time: u64, id: &mut u64| {
                out.session(c).give(Checkpoint { id: *id, time });
                if let Ok(mut s) = status.lock() {
                    s.in_flight = Some((*id, Instant::now()));
                }
                tracing::debug!(checkpoint = *id, time, "checkpoint requested");
                *id += 1;
            };
            match frontier {
                Some(f) => {
                    if f > *c.time() {
                        c.downgrade(&f);
                    }
                    let now = *c.time();
                    let fresh = last_time != Some(now);
                    if cancelled {
                        if !savepoint && !stopped {
                            savepoint = true;
                            if fresh {
                                send(c, now, &mut next_id);
                            }
                        }
                    } else if !stopped && !in_flight && fresh && last_start.elapsed() >= interval {
                        send(c, now, &mut next_id);
                        last_time = Some(now);
                        last_start = Instant::now();
                    }
                    let wait = interval.saturating_sub(last_start.elapsed());
                    activator.activate_after(wait.max(Duration::from_millis(1)));
                }
                None => {
                    // The sources are done (or stopped by cancellation).
                    if !stopped {
                        if !cancelled {
                            send(c, FINAL, &mut next_id);
                        } else if !savepoint && last_time != Some(*c.time()) {
                            let now = *c.time();
                            send(c, now, &mut next_id);
                        }
                    }
                    cap = None;
                }
            }
        }
    });
    control.broadcast()
}

/// Gathers acks on worker 0 and commits each checkpoint once every ack is
/// in. On worker 0 returns the writer thread: join it after the dataflow
/// has finished, so the last checkpoint is written before the job returns.
/// Progress shows in [`Checkpointing::stats`].
pub fn committer<'scope>(
    acks: StreamVec<'scope, u64, Ack>,
    ck: &Checkpointing,
    peers: usize,
    ctx: &JobContext,
) -> Option<std::thread::JoinHandle<()>> {
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64, Vec<Ack>)>();
    let leader = acks.scope().index() == 0;
    let mut handle = None;
    if leader {
        let store = ck.store.clone();
        let status = ck.status.clone();
        let keep = ck.config.keep.max(1);
        let job = ck.job.clone();
        let thread_ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("checkpoint-committer".into())
            .spawn(move || {
                for (id, time, acks) in rx {
                    if thread_ctx.is_failed() {
                        break;
                    }
                    let started = status
                        .lock()
                        .ok()
                        .and_then(|s| s.in_flight.filter(|(i, _)| *i == id).map(|(_, t)| t));
                    match commit(&store, &job, id, time, peers, acks, keep) {
                        Ok(bytes) => {
                            if let Ok(mut s) = status.lock() {
                                let ms = started.map_or(0, |t| t.elapsed().as_millis() as u64);
                                let st = &mut s.stats;
                                st.mean_ms = (st.mean_ms * st.completed as f64 + ms as f64)
                                    / (st.completed + 1) as f64;
                                st.completed += 1;
                                st.last_id = Some(id);
                                st.last_state_bytes = bytes;
                                st.last_ms = ms;
                                st.max_ms = st.max_ms.max(ms);
                                st.total_state_bytes += bytes;
                                if s.in_flight.is_some_and(|(i, _)| i <= id) {
                                    s.in_flight = None;
                                }
                            }
                            // Sources may now acknowledge what this
                            // checkpoint holds.
                            thread_ctx.checkpoint_committed(id);
                            let p = &thread_ctx.progress;
                            p.checkpoints.fetch_add(1, Ordering::Relaxed);
                            p.checkpoint_bytes.store(bytes, Ordering::Relaxed);
                            let ms = started.map_or(0, |t| t.elapsed().as_millis() as u64);
                            p.checkpoint_ms.store(ms, Ordering::Relaxed);
                            tracing::info!(
                                checkpoint = id,
                                state_bytes = bytes,
                                ms,
                                "checkpoint complete"
                            );
                        }
                        Err(e) => {
                            thread_ctx.fail(format!("checkpoint {id}: {e}"));
                            if let Ok(mut s) = status.lock() {
                                s.stopped = true;
                            }
                            break;
                        }
                    }
                }
            });
        match spawned {
            Ok(h) => handle = Some(h),
            Err(e) => ctx.fail(format!("cannot start the checkpoint committer: {e}")),
        }
    }
    // Pending acks by checkpoint id: (message time, acks).
    let mut pending: BTreeMap<u64, (u64, Vec<Ack>)> = BTreeMap::new();
    let ctx = ctx.clone();
    let mut tx = Some(tx);
    acks.sink(
        Exchange::new(|_: &Ack| 0),
        "checkpoint-committer",
        move |(input, frontier)| {
            input.for_each(|cap, data| {
                let t = cap.least().copied().unwrap_or(0);
                for ack in data.drain(..) {
                    pending
                        .entry(ack.id)
                        .or_insert_with(|| (t, Vec::new()))
                        .1
                        .push(ack);
                }
            });
            let f = frontier.frontier().iter().min().copied();
            while let Some(entry) = pending.first_entry() {
                let t = entry.get().0;
                if f.is_some_and(|f| f <= t) {
                    break;
                }
                let id = *entry.key();
                let (_, acks) = entry.remove();
                let failed: Vec<String> = acks
                    .iter()
                    .filter_map(|a| match &a.part {
                        Part::Failed(e) => Some(format!("{} (worker {}): {e}", a.name, a.worker)),
                        _ => None,
                    })
                    .collect();
                if !failed.is_empty() {
                    ctx.fail(format!("checkpoint {id} failed: {}", failed.join("; ")));
                    continue;
                }
                let time = acks.first().map_or(t, |a| a.time);
                if let Some(tx) = &tx {
                    let _ = tx.send((id, time, acks));
                }
            }
            if frontier.is_empty() {
                // Lets the writer thread finish.
                tx = None;
            }
        },
    );
    handle
}

/// Writes one checkpoint: parts, manifest (last), then publishes outputs and
/// drops old checkpoints. Returns the state bytes written.
fn commit(
    store: &CheckpointStore,
    job: &str,
    id: u64,
    time: u64,
    peers: usize,
    acks: Vec<Ack>,
    keep: usize,
) -> Result<u64, CheckpointError> {
    let mut parts = Vec::new();
    let mut outputs = Vec::new();
    let mut tally = Tally::default();
    let mut bytes_total = 0;
    let mut finished = false;
    for ack in acks {
        tally.merge(&ack.tally);
        match ack.part {
            Part::State(bytes) => {
                let path = part_path(id, &ack.name, ack.worker);
                let entry = PartEntry {
                    name: ack.name,
                    worker: ack.worker,
                    path: path.clone(),
                    bytes: bytes.len() as u64,
                    crc32: crc32fast::hash(&bytes),
                };
                bytes_total += entry.bytes;
                store.put(&path, bytes)?;
                parts.push(entry);
            }
            Part::Output(Some(file)) => outputs.push(file),
            Part::Output(None) | Part::Failed(_) => {}
        }
    }
    if time == FINAL {
        finished = true;
    }
    parts.sort_by(|a, b| (&a.name, a.worker).cmp(&(&b.name, b.worker)));
    outputs.sort_by(|a, b| a.published.cmp(&b.published));
    let manifest = Manifest {
        format: FORMAT,
        job: job.to_owned(),
        id,
        time: (time != FINAL).then_some(time),
        finished,
        peers,
        written_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        parts,
        outputs,
        tally,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    store.put(&manifest_path(id), json)?;
    publish(&manifest)?;
    for old in checkpoint_ids(store)? {
        if old + keep as u64 <= id {
            store.delete_prefix(&format!("{}/", ckpt_dir(old)))?;
        }
    }
    Ok(bytes_total)
}

/// Makes a manifest's staged outputs visible (idempotent).
///
/// A file already published is left alone (a later run may have staged
/// other data under a similar name); a staged file is published only if it
/// has the size the manifest recorded. A file neither published nor staged
/// is an error: the checkpoint's output is gone.
fn publish(manifest: &Manifest) -> Result<(), CheckpointError> {
    for f in &manifest.outputs {
        let from = std::path::Path::new(&f.staged);
        let to = std::path::Path::new(&f.published);
        let err = |source| CheckpointError::Publish {
            from: f.staged.clone(),
            to: f.published.clone(),
            source,
        };
        if to.exists() {
            continue;
        }
        let size = std::fs::metadata(from).map_err(err)?.len();
        if size != f.bytes {
            return Err(err(std::io::Error::other(format!(
                "staged file has {size} bytes, the manifest says {}",
                f.bytes
            ))));
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        std::fs::rename(from, to).map_err(err)?;
    }
    Ok(())
}

/// What [`recover`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The checkpoint to restore (`None`: start from the beginning).
    pub restored: Option<Arc<Restored>>,
    /// Its manifest.
    pub manifest: Option<Manifest>,
    /// The id the next checkpoint takes.
    pub next_id: u64,
}

impl Recovery {
    /// The newest checkpoint says the job ran to completion.
    pub fn finished(&self) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.finished)
    }
}

/// Why a checkpoint cannot be used.
#[derive(Debug)]
enum Unusable {
    /// No manifest: a run stopped before the checkpoint completed.
    Incomplete,
    /// A manifest, but it or a part does not check out.
    Corrupt(String),
}

/// Reads and verifies checkpoint `id`.
fn check(
    store: &CheckpointStore,
    id: u64,
    job: &str,
) -> Result<Result<(Manifest, Restored), Unusable>, CheckpointError> {
    let Some(bytes) = store.get(&manifest_path(id))? else {
        return Ok(Err(Unusable::Incomplete));
    };
    let corrupt = |why: String| Ok(Err(Unusable::Corrupt(why)));
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return corrupt(format!("manifest unreadable: {e}")),
    };
    if manifest.format != FORMAT || manifest.id != id {
        return corrupt(format!(
            "manifest of format {} / id {} where {FORMAT} / {id} was expected",
            manifest.format, manifest.id
        ));
    }
    if manifest.job != job {
        return Err(CheckpointError::OtherJob {
            location: store.location().to_owned(),
        });
    }
    let mut parts: BTreeMap<String, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
    for p in &manifest.parts {
        let Some(bytes) = store.get(&p.path)? else {
            return corrupt(format!("part {} is missing", p.path));
        };
        if bytes.len() as u64 != p.bytes || crc32fast::hash(&bytes) != p.crc32 {
            return corrupt(format!(
                "part {} has {} bytes / crc {:08x}, manifest says {} / {:08x}",
                p.path,
                bytes.len(),
                crc32fast::hash(&bytes),
                p.bytes,
                p.crc32
            ));
        }
        if let Err(e) = state::check(&bytes) {
            return corrupt(format!("part {}: {e}", p.path));
        }
        parts
            .entry(p.name.clone())
            .or_default()
            .push((p.worker, bytes));
    }
    let restored = Restored {
        id,
        time: manifest.time.unwrap_or(FINAL),
        peers: manifest.peers,
        parts: parts
            .into_iter()
            .map(|(name, mut v)| {
                v.sort_by_key(|(w, _)| *w);
                (name, v.into_iter().map(|(_, b)| b).collect())
            })
            .collect(),
    };
    Ok(Ok((manifest, restored)))
}

/// Finds the newest usable checkpoint of job `job` in `store`.
///
/// With `cleanup` (one process of a cluster does it), checkpoints newer than
/// it (incomplete or corrupt) are deleted, so numbering continues from it,
/// and its outputs are published if a crash came between its manifest and
/// their publication.
pub fn recover(
    store: &CheckpointStore,
    job: &str,
    cleanup: bool,
) -> Result<Recovery, CheckpointError> {
    let ids = checkpoint_ids(store)?;
    let mut broken = Vec::new();
    for &id in ids.iter().rev() {
        match check(store, id, job)? {
            Ok((manifest, restored)) => {
                if cleanup {
                    for b in &broken {
                        store.delete_prefix(&format!("{}/", ckpt_dir(*b)))?;
                    }
                    publish(&manifest)?;
                }
                tracing::info!(
                    checkpoint = id,
                    finished = manifest.finished,
                    location = store.location(),
                    "restoring from checkpoint"
                );
                return Ok(Recovery {
                    restored: Some(Arc::new(restored)),
                    manifest: Some(manifest),
                    next_id: id + 1,
                });
            }
            Err(Unusable::Corrupt(why)) => {
                tracing::warn!(
                    checkpoint = id,
                    "checkpoint {id} is corrupt ({why}); falling back to the previous one"
                );
                broken.push(id);
            }
            Err(Unusable::Incomplete) => {
                tracing::info!(
                    checkpoint = id,
                    "checkpoint {id} is incomplete (no manifest: interrupted before it completed); ignoring it"
                );
                broken.push(id);
            }
        }
    }
    if cleanup {
        for b in &broken {
            store.delete_prefix(&format!("{}/", ckpt_dir(*b)))?;
        }
    }
    Ok(Recovery {
        restored: None,
        manifest: None,
        next_id: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        for d in ["200ms", "5s", "2m"] {
            assert_eq!(format_duration(parse_duration(d).expect("parse")), d);
        }
    }
}
