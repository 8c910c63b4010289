//! Checkpoints: consistent snapshots on timely frontiers.
//!
//! A checkpoint is a timely time `T`. It is *consistent* when every record
//! stamped before `T` has been applied everywhere and nothing stamped at or
//! after `T` has: sources record the position after the last chunk they sent
//! before `T`, stateful operators snapshot once their input frontier reaches
//! `T`, sinks seal the records stamped before `T` into a staged file.
//!
//! The pieces that live here, used by every stateful operator:
//!
//! * [`Checkpoint`]: the control message a coordinator (in `iotflow-runtime`)
//!   broadcasts to every worker. It travels on its own stream whose frontier
//!   the coordinator holds at the sources' frontier, so an operator always
//!   receives `Checkpoint(T)` before its frontier can pass `T`.
//! * [`Epochs`]: a stash that hands an operator its input batches *in time
//!   order, once complete*, interleaved with the checkpoints that fall
//!   between them. An operator that applies input this way has, at any
//!   frontier, exactly the state "all input before the frontier applied",
//!   whatever the scheduling: snapshots are consistent and results do not
//!   depend on how the frontier happened to advance.
//! * [`Ack`]: what a participant sends to the committer for each checkpoint:
//!   its encoded state, or the staged output file it sealed. The committer
//!   writes the manifest once every ack at the checkpoint's time has
//!   arrived (its input frontier passed that time).
//! * [`Checkpoints`]: the handle a pipeline passes to its operators: control
//!   stream, ack collection, and the restored checkpoint, if any.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::{Capability, Concatenate, InputCapability};
use timely::progress::frontier::MutableAntichain;

use crate::source::Position;
use crate::state::{self, KeyedState, SnapshotError};
use crate::tally::Tally;

/// The time of the last checkpoint of a job that ran to the end of its input.
pub const FINAL: Timestamp = Timestamp::MAX;

/// A request to checkpoint at time `time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Checkpoint number, increasing from 1 over the life of a job (a
    /// restarted job continues the numbering).
    pub id: u64,
    /// Records stamped before this time are in the checkpoint. [`FINAL`]:
    /// the input has ended and everything is in it.
    pub time: Timestamp,
}

impl Checkpoint {
    /// The end-of-input checkpoint.
    pub fn is_final(&self) -> bool {
        self.time == FINAL
    }

    /// Whether an operator whose input frontier is `frontier` (`None`: input
    /// ended) can take this checkpoint: every time before `time` is complete.
    #[inline]
    pub fn due(&self, frontier: Option<Timestamp>) -> bool {
        match frontier {
            None => true,
            Some(f) => !self.is_final() && f >= self.time,
        }
    }
}

/// One participant's contribution to a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The checkpoint.
    pub id: u64,
    /// The checkpoint's time ([`FINAL`] for the last one).
    pub time: Timestamp,
    /// Operator or sink name (unique in the dataflow).
    pub name: String,
    /// The worker that wrote it.
    pub worker: usize,
    /// What it contributed.
    pub part: Part,
    /// Its counts up to the checkpoint (cumulative over restarts); the
    /// committer sums them into the manifest.
    pub tally: Tally,
}

impl Ack {
    /// The ack of a stateful participant: its encoded state (or why it
    /// could not be encoded, which fails the checkpoint) and its counts.
    pub fn of_state(
        checkpoint: &Checkpoint,
        name: &str,
        worker: usize,
        encoded: Result<Vec<u8>, SnapshotError>,
        tally: Tally,
    ) -> Ack {
        Ack {
            id: checkpoint.id,
            time: checkpoint.time,
            name: name.to_owned(),
            worker,
            part: match encoded {
                Ok(bytes) => Part::State(bytes),
                Err(e) => Part::Failed(e.to_string()),
            },
            tally,
        }
    }
}

/// The content of an [`Ack`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Part {
    /// An operator's state, encoded with [`state::encode`].
    State(Vec<u8>),
    /// A sink's sealed output for the epoch ending at the checkpoint; `None`
    /// when the epoch had no records.
    Output(Option<OutputFile>),
    /// The participant could not contribute (e.g. its state did not
    /// encode): the checkpoint must not complete, and the job fails.
    Failed(String),
}

/// A file a sink wrote for one epoch, visible once its checkpoint completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Where it was written (not visible to readers of the output).
    pub staged: String,
    /// Where it becomes visible when the checkpoint completes.
    pub published: String,
    /// Records in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// State plus the counts that went with it, as one snapshot.
///
/// Counts are additive: rescaled, every old worker's counts go to new
/// worker 0, so job totals survive any change of worker count.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot<S> {
    /// The operator state.
    pub state: S,
    /// Counts up to the checkpoint.
    pub tally: Tally,
}

/// A borrowed [`Snapshot`]: encodes to the same bytes, without moving the
/// state out of the operator.
#[derive(Debug, Serialize)]
pub struct SnapshotRef<'a, S> {
    /// The operator state.
    pub state: &'a S,
    /// Counts up to the checkpoint.
    pub tally: &'a Tally,
}

/// Encodes an operator's state and counts as a [`Snapshot`].
pub type EncodeFn<S> = Box<dyn Fn(&S, &Tally) -> Result<Vec<u8>, SnapshotError>>;

/// An [`EncodeFn`] for any serializable state.
pub fn encoder<S: Serialize>() -> EncodeFn<S> {
    Box::new(|state, tally| state::encode(&SnapshotRef { state, tally }))
}

impl<S: KeyedState> KeyedState for Snapshot<S> {
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        self.state.retain_owned(worker, peers);
        if worker != 0 {
            self.tally = Tally::default();
        }
    }

    fn merge(&mut self, other: Self) {
        self.state.merge(other.state);
        self.tally.merge(&other.tally);
    }
}

/// The parts of a checkpoint being restored.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Its id; the next checkpoint is `id + 1`.
    pub id: u64,
    /// Its time.
    pub time: Timestamp,
    /// Workers of the run that wrote it.
    pub peers: usize,
    /// Encoded state by participant name, in old-worker order.
    pub parts: HashMap<String, Vec<Vec<u8>>>,
}

impl Restored {
    /// Decodes every old part of `name` and keeps what `worker` of `peers`
    /// owns; `None` if the checkpoint has no part by that name.
    pub fn state<S: KeyedState>(
        &self,
        name: &str,
        worker: usize,
        peers: usize,
    ) -> Result<Option<S>, SnapshotError> {
        let Some(parts) = self.parts.get(name) else {
            return Ok(None);
        };
        let decoded = parts
            .iter()
            .map(|b| state::decode::<S>(b))
            .collect::<Result<Vec<S>, _>>()?;
        Ok(state::rescale(decoded, worker, peers))
    }

    /// Decodes every old part of `name`, in old-worker order.
    pub fn parts<S: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Vec<S>, SnapshotError> {
        self.parts
            .get(name)
            .map(|parts| parts.iter().map(|b| state::decode::<S>(b)).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }
}

/// The state of an event-time source at a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    /// Position of every partition this worker has read from.
    pub positions: BTreeMap<String, Position>,
    /// The largest valid event time seen (the watermark's basis).
    pub max_ts: Option<Timestamp>,
    /// The largest event time of each partition being read (per-partition
    /// watermarks); restored only on the same number of workers.
    #[serde(default)]
    pub partitions: BTreeMap<String, Timestamp>,
    /// Counts up to the checkpoint.
    pub tally: Tally,
}

impl SourceState {
    /// The state worker `worker` of `peers` starts from, given every old
    /// worker's part (in old-worker order).
    ///
    /// Positions are merged (a partition keeps its furthest position; each
    /// worker's source seeks the partitions it is assigned). With the same
    /// number of workers, each worker resumes its own watermark, so the run
    /// continues exactly as it would have; after rescaling, every worker
    /// starts from the lowest old watermark, so no reading becomes late that
    /// was on time for the worker that would have read it.
    pub fn restore(parts: Vec<SourceState>, worker: usize, peers: usize) -> SourceState {
        let same = parts.len() == peers;
        let mut out = SourceState::default();
        let mut min_ts: Option<Timestamp> = None;
        for (i, p) in parts.into_iter().enumerate() {
            for (k, pos) in p.positions {
                match out.positions.get(&k) {
                    Some(old) if !pos.is_after(old) => {}
                    _ => {
                        out.positions.insert(k, pos);
                    }
                }
            }
            if let Some(m) = p.max_ts {
                min_ts = Some(min_ts.map_or(m, |x: Timestamp| x.min(m)));
            }
            if same && i == worker {
                out.max_ts = p.max_ts;
                out.partitions = p.partitions;
            }
            if worker == 0 {
                out.tally.merge(&p.tally);
            }
        }
        if !same {
            out.max_ts = min_ts;
        }
        out
    }
}

/// What [`Epochs::drain`] hands out, in time order.
#[derive(Debug)]
pub enum Step<D, C = Capability<Timestamp>> {
    /// All input stamped at the time, in one batch.
    Batch(Timestamp, Vec<D>),
    /// A checkpoint that is due, with a capability at its message time for
    /// the ack output.
    Checkpoint(Checkpoint, C),
}

/// Input batches held until the frontier passes them, and checkpoints
/// waiting for the frontier to reach them (`C`: what acknowledges one, a
/// capability in an operator).
#[derive(Debug)]
pub struct Epochs<D, C = Capability<Timestamp>> {
    batches: BTreeMap<Timestamp, Vec<Vec<D>>>,
    checkpoints: Vec<(Checkpoint, C)>,
}

impl<D, C> Default for Epochs<D, C> {
    fn default() -> Self {
        Epochs {
            batches: BTreeMap::new(),
            checkpoints: Vec::new(),
        }
    }
}

impl<D> Epochs<D> {
    /// Holds one message of an operator's data input.
    pub fn push_message(&mut self, cap: &InputCapability<Timestamp>, data: &mut Vec<D>) {
        if let Some(t) = cap.least() {
            self.push(*t, std::mem::take(data));
        }
    }

    /// Holds the checkpoint requests of one control message, to be
    /// acknowledged on output `ack_output`.
    pub fn request_message(
        &mut self,
        cap: &InputCapability<Timestamp>,
        data: &mut Vec<Checkpoint>,
        ack_output: usize,
    ) {
        for ck in data.drain(..) {
            if let Some(at) = cap.retain_least(ack_output) {
                self.request(ck, at);
            }
        }
    }
}

/// An operator's input frontier: the least time over all its inputs,
/// `None` once every input has ended.
pub fn input_frontier(frontiers: &[MutableAntichain<Timestamp>]) -> Option<Timestamp> {
    frontiers
        .iter()
        .filter_map(|f| f.frontier().iter().min().copied())
        .min()
}

impl<D, C> Epochs<D, C> {
    /// Holds `batch`, stamped at `time`.
    pub fn push(&mut self, time: Timestamp, batch: Vec<D>) {
        if !batch.is_empty() {
            self.batches.entry(time).or_default().push(batch);
        }
    }

    /// Holds a checkpoint request and the capability to acknowledge it.
    pub fn request(&mut self, checkpoint: Checkpoint, cap: C) {
        self.checkpoints.push((checkpoint, cap));
        self.checkpoints.sort_by_key(|(c, _)| (c.time, c.id));
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.checkpoints.is_empty()
    }

    /// Hands out, in time order, every batch stamped before `frontier` and
    /// every checkpoint that is due (`None`: the input has ended). A
    /// checkpoint at `T` comes after every batch stamped before `T` and
    /// before any batch stamped at `T` or later.
    pub fn drain(&mut self, frontier: Option<Timestamp>, mut step: impl FnMut(Step<D, C>)) {
        let complete = |t: Timestamp| frontier.is_none_or(|f| t < f);
        loop {
            let batch_time = self.batches.first_key_value().map(|(t, _)| *t);
            let ready_batch = batch_time.filter(|t| complete(*t));
            let ready_ck = self
                .checkpoints
                .first()
                .map(|(c, _)| *c)
                .filter(|c| c.due(frontier));
            match (ready_batch, ready_ck) {
                (Some(t), Some(c)) if c.time <= t => self.checkpoint(&mut step),
                (None, Some(_)) => self.checkpoint(&mut step),
                (Some(_), _) => {
                    if let Some((t, batches)) = self.batches.pop_first() {
                        // One batch per time, however many messages it came
                        // in: how input is split into messages differs with
                        // the number of workers, and must not show.
                        let mut batches = batches.into_iter();
                        let mut all = batches.next().unwrap_or_default();
                        for b in batches {
                            all.extend(b);
                        }
                        step(Step::Batch(t, all));
                    }
                }
                (None, None) => break,
            }
        }
    }

    fn checkpoint(&mut self, step: &mut impl FnMut(Step<D, C>)) {
        let (c, cap) = self.checkpoints.remove(0);
        step(Step::Checkpoint(c, cap));
    }
}

/// The checkpointing handle of one worker's dataflow.
///
/// Cloning it shares the ack collection: every participant adds its ack
/// stream, and the committer takes them all with [`Checkpoints::acks`].
#[derive(Clone, Debug)]
pub struct Checkpoints<'scope> {
    control: StreamVec<'scope, Timestamp, Checkpoint>,
    acks: Rc<RefCell<Vec<StreamVec<'scope, Timestamp, Ack>>>>,
    restored: Option<Arc<Restored>>,
    worker: usize,
    peers: usize,
}

impl<'scope> Checkpoints<'scope> {
    /// A handle around the (broadcast) control stream, for worker `worker`
    /// of `peers`, restoring from `restored` if given.
    pub fn new(
        control: StreamVec<'scope, Timestamp, Checkpoint>,
        restored: Option<Arc<Restored>>,
        worker: usize,
        peers: usize,
    ) -> Self {
        Checkpoints {
            control,
            acks: Rc::default(),
            restored,
            worker,
            peers,
        }
    }

    /// The control stream (every worker receives every checkpoint).
    pub fn control(&self) -> StreamVec<'scope, Timestamp, Checkpoint> {
        self.control.clone()
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Workers in the dataflow.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The checkpoint being restored, if any.
    pub fn restored(&self) -> Option<&Restored> {
        self.restored.as_deref()
    }

    /// This worker's share of participant `name`'s restored state.
    pub fn restore<S: KeyedState>(&self, name: &str) -> Result<Option<S>, SnapshotError> {
        match &self.restored {
            Some(r) => r.state(name, self.worker, self.peers),
            None => Ok(None),
        }
    }

    /// Registers a participant's ack stream.
    pub fn add_acks(&self, acks: StreamVec<'scope, Timestamp, Ack>) {
        self.acks.borrow_mut().push(acks);
    }

    /// Every registered ack stream, concatenated (for the committer).
    pub fn acks(&self) -> StreamVec<'scope, Timestamp, Ack> {
        let streams: Vec<_> = self.acks.borrow_mut().drain(..).collect();
        self.control.scope().concatenate(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ref_encodes_like_snapshot() {
        let tally = Tally {
            lines: 9,
            ..Tally::default()
        };
        let state: BTreeMap<String, u64> = [("a".to_owned(), 1)].into();
        let bytes = encoder::<BTreeMap<String, u64>>()(&state, &tally).expect("encode");
        let back: Snapshot<BTreeMap<String, u64>> = state::decode(&bytes).expect("decode");
        assert_eq!((back.state, back.tally), (state, tally));
    }

    /// What `drain` hands out, as text: `b<time>:<values>` or `c<id>`.
    fn trace(e: &mut Epochs<u32, ()>, frontier: Option<Timestamp>) -> Vec<String> {
        let mut out = Vec::new();
        e.drain(frontier, |s| match s {
            Step::Batch(t, d) => out.push(format!("b{t}:{d:?}")),
            Step::Checkpoint(c, ()) => out.push(format!("c{}", c.id)),
        });
        out
    }

    #[test]
    fn epochs_hand_out_complete_batches_and_due_checkpoints_in_time_order() {
        let mut e: Epochs<u32, ()> = Epochs::default();
        e.push(20, vec![2]);
        e.push(10, vec![1]);
        e.push(30, vec![3]);
        e.push(20, vec![22]);
        e.push(40, Vec::new()); // empty batches are not kept
        e.request(Checkpoint { id: 2, time: 30 }, ());
        e.request(Checkpoint { id: 1, time: 20 }, ());
        // Frontier 15: only time 10 is complete; no checkpoint is due.
        assert_eq!(trace(&mut e, Some(15)), ["b10:[1]"]);
        // Frontier 20: checkpoint 1 (time 20) is due before the batch at 20.
        assert_eq!(trace(&mut e, Some(20)), ["c1"]);
        // Frontier 31: the batch at 20 (both messages as one), then
        // checkpoint 2 (time 30), then 30.
        assert_eq!(trace(&mut e, Some(31)), ["b20:[2, 22]", "c2", "b30:[3]"]);
        assert!(e.is_empty());
        // The final checkpoint waits for the end of input, after every batch.
        e.push(50, vec![5]);
        e.request(Checkpoint { id: 3, time: FINAL }, ());
        assert_eq!(trace(&mut e, Some(60)), ["b50:[5]"]);
        assert_eq!(trace(&mut e, None), ["c3"]);
    }

    #[test]
    fn due_and_final() {
        let c = Checkpoint { id: 1, time: 100 };
        assert!(!c.due(Some(99)));
        assert!(c.due(Some(100)));
        assert!(c.due(None));
        let f = Checkpoint { id: 2, time: FINAL };
        assert!(f.is_final());
        assert!(!f.due(Some(u64::MAX - 1)));
        assert!(f.due(None));
    }

    #[test]
    fn source_state_restore_same_and_rescaled() {
        let a = SourceState {
            positions: [("f@0".to_owned(), Position::Offset(10))].into(),
            max_ts: Some(5000),
            partitions: [("f@0".to_owned(), 5000)].into(),
            tally: Tally {
                lines: 3,
                ..Tally::default()
            },
        };
        let b = SourceState {
            positions: [
                ("f@0".to_owned(), Position::Offset(4)),
                ("f@100".to_owned(), Position::Done),
            ]
            .into(),
            max_ts: Some(7000),
            partitions: BTreeMap::new(),
            tally: Tally {
                lines: 4,
                ..Tally::default()
            },
        };
        let same1 = SourceState::restore(vec![a.clone(), b.clone()], 1, 2);
        assert_eq!(same1.max_ts, Some(7000));
        assert!(same1.partitions.is_empty());
        assert_eq!(same1.tally.lines, 0);
        assert_eq!(same1.positions["f@0"], Position::Offset(10));
        let one = SourceState::restore(vec![a, b], 0, 1);
        assert_eq!(one.max_ts, Some(5000));
        // Partition watermarks are only restored on the same worker count.
        assert!(one.partitions.is_empty());
        assert_eq!(one.tally.lines, 7);
        assert_eq!(one.positions["f@100"], Position::Done);
    }
}
