//! Event time is timely time.
//!
//! [`event_time_source`] turns a [`Source`] into streams whose timely
//! timestamps are event time in milliseconds. It decodes and validates each
//! record on the worker, then tracks the watermark of the worker's input:
//!
//! ```text
//! watermark = max event time seen − max_disorder        (Flink's definition)
//! frontier  = watermark + 1                             (timely: times < frontier are done)
//! ```
//!
//! The source holds its capability at the frontier and downgrades it as data
//! advances, so downstream operators see the watermark as their input
//! frontier: a window `[s, e)` closes when the frontier passes `e − 1`, with
//! no watermark messages and no second clock. Records are sent at the
//! capability time of their batch and carry their own event time.
//!
//! A reading is *late* when the part of event time it would update has
//! already closed: by default when `ts < frontier` ([`Lateness::Record`]);
//! for a tumbling window of size `W` when its window's last millisecond
//! `s + W − 1` (plus allowed lateness) is behind the frontier
//! ([`Lateness::Window`], fleet-v1's rule). Late readings go to the `late`
//! output, never silently away. Lateness is decided here, per record, from the
//! worker's own input order, so it is deterministic for a given split of the
//! input over workers.
//!
//! Garbage never moves event time: a record advances the watermark only after
//! it decoded and passed the [`Rules`].
//!
//! ## Clock skew
//!
//! One device whose clock runs far ahead must not move the watermark of the
//! whole fleet: a single reading a year ahead would close every open window
//! and make every later reading of every other device late. With
//! [`EventTimeConfig::max_skew_ms`] set, a valid reading is *too far ahead*
//! when
//!
//! ```text
//! ts > max(max_ts, anchor) + max_skew_ms      max_ts: largest event time the source accepted
//! ```
//!
//! and is either rejected with reason `future_timestamp`
//! ([`SkewPolicy::Reject`], the default: it never moves the watermark) or
//! given the bound as its event time ([`SkewPolicy::Clamp`]).
//!
//! The reference is the source's own `max_ts`, not the watermark, so the
//! rule is deterministic for a given input order, costs one comparison per
//! reading, and depends only on state a checkpoint restores. A fresh source
//! has no reference, and accepting its first reading as one would let a bad
//! first reading pin the watermark a year ahead for good. So a source without
//! a `max_ts` *bootstraps*: it holds its first 3 valid readings (its frontier
//! stays at 0 meanwhile) and takes their median as the `anchor`; then it
//! processes them, in arrival order, by the rule above. One bad clock among
//! the first three cannot set the reference. If the input ends first, fewer
//! readings do (the lower median). Once the bootstrap is over,
//! `max_ts ≥ anchor`, and a checkpoint can only be taken after it (the
//! source's frontier is 0 until then), so a restarted source decides exactly
//! as the original would have.
//!
//! A real jump in event time longer than `max_skew_ms` (a fleet silent for
//! longer, a skipped backlog) looks like skew: with `Reject` every later
//! reading of the source is rejected. Choose `max_skew_ms` above any real gap,
//! or use `Clamp`, which lets the reference catch up by `max_skew_ms` per
//! reading (and so also lets a device that keeps sending future readings drag
//! the watermark ahead by as much).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotflow_types::{LateReading, Reading, Reject, RejectReason, SourcePos, Timestamp};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, StreamVec};

use timely::dataflow::channels::pact::Pipeline;
use timely::progress::Antichain;

use crate::bridge::{self, Recv};
use crate::checkpoint::{Ack, Checkpoints, SourceState};
use crate::codec::Decoder;
use crate::context::JobContext;
use crate::source::{Chunk, Commits, Source};
use crate::source::{Position, Resume};
use crate::state::{self, SnapshotError};
use crate::tally::Tally;
use crate::validate::Rules;

/// When a reading counts as late.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Lateness {
    /// Late when `ts` is behind the frontier (`ts ≤ watermark`).
    Record,
    /// Late when the reading's tumbling window has closed:
    /// `s + size − 1 + allowed ≤ watermark`, `s = ts − ts mod size`.
    Window {
        /// Window size in ms.
        size_ms: u64,
        /// Extra time a window stays open after the watermark passed it.
        allowed_ms: u64,
    },
    /// Late when a session window of the reading alone would have closed:
    /// `ts + gap − 1 + allowed ≤ watermark`.
    Gap {
        /// Session gap in ms.
        gap_ms: u64,
        /// Extra time a session stays open after the watermark passed it.
        allowed_ms: u64,
    },
    /// Late when the earliest sliding window holding the reading has
    /// closed: windows `[k·slide, k·slide + size)`, `k·slide ≥ 0`, the
    /// earliest ends at `max(p + slide, size)`, `p = ts − ts mod slide`.
    Sliding {
        /// Window size in ms (a multiple of `slide_ms`).
        size_ms: u64,
        /// Distance between window starts in ms.
        slide_ms: u64,
        /// Extra time a window stays open after the watermark passed it.
        allowed_ms: u64,
    },
    /// Never late: for operators that take readings in any event-time order
    /// (count windows).
    Never,
}

impl Lateness {
    /// The last event time at which a reading with time `ts` can still be used.
    #[inline]
    pub fn horizon(&self, ts: Timestamp) -> Timestamp {
        match *self {
            Lateness::Record => ts,
            Lateness::Window {
                size_ms,
                allowed_ms,
            } => {
                let size = size_ms.max(1);
                ts - ts % size + size - 1 + allowed_ms
            }
            Lateness::Gap { gap_ms, allowed_ms } => ts + gap_ms.max(1) - 1 + allowed_ms,
            Lateness::Sliding { allowed_ms, .. } => self.missed(ts).1 - 1 + allowed_ms,
            Lateness::Never => Timestamp::MAX,
        }
    }

    /// The window `[start, end)` a reading at `ts` misses when it is late:
    /// the earliest one holding it (the reading's own instant for
    /// [`Lateness::Record`] and [`Lateness::Never`]).
    ///
    /// ```
    /// use iotflow_core::event_time::Lateness;
    /// let sliding = Lateness::Sliding { size_ms: 60_000, slide_ms: 1_000, allowed_ms: 0 };
    /// assert_eq!(sliding.missed(125_400), (66_000, 126_000));
    /// let tumbling = Lateness::Window { size_ms: 10_000, allowed_ms: 0 };
    /// assert_eq!(tumbling.missed(125_400), (120_000, 130_000));
    /// ```
    pub fn missed(&self, ts: Timestamp) -> (Timestamp, Timestamp) {
        match *self {
            Lateness::Record | Lateness::Never => (ts, ts + 1),
            Lateness::Window { size_ms, .. } => {
                let size = size_ms.max(1);
                let start = ts - ts % size;
                (start, start + size)
            }
            Lateness::Gap { gap_ms, .. } => (ts, ts + gap_ms.max(1)),
            Lateness::Sliding {
                size_ms, slide_ms, ..
            } => {
                let slide = slide_ms.max(1);
                let end = (ts - ts % slide + slide).max(size_ms);
                (end.saturating_sub(size_ms), end)
            }
        }
    }
}

/// What the clock-skew guard does with a reading too far ahead (see the
/// [module docs](self#clock-skew)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkewPolicy {
    /// Reject it with reason `future_timestamp`: it goes to the rejects with
    /// its raw bytes, counts in the tally's `rejected`, and does not move the
    /// watermark. The default.
    #[default]
    Reject,
    /// Set its event time to the bound, `max(max_ts, anchor) + max_skew_ms`,
    /// and process it like any other valid reading: it moves `max_ts` (and
    /// so the watermark) up to the bound, at most `max_skew_ms` per reading.
    /// The source logs how many it clamped when it finishes.
    Clamp,
}

/// Configuration of an event-time source: the `[event_time]` section of a
/// job.
///
/// ```toml
/// [event_time]
/// max_disorder_ms = 2000
/// max_skew_ms = 3600000     # clock-skew guard: off when absent
/// skew_policy = "reject"    # or "clamp"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventTimeConfig {
    /// How far behind the newest event time a reading may arrive and still be
    /// on time. Default 2000 ms (fleet-v1).
    pub max_disorder_ms: u64,
    /// Which readings are late. Default [`Lateness::Record`].
    pub lateness: Lateness,
    /// Records longer than this are rejected (`too_long`). Default 1 MiB.
    pub max_record_bytes: usize,
    /// Chunks in flight between the I/O thread and the worker. Default 4.
    pub channel_capacity: usize,
    /// Clock-skew guard: a reading more than this far ahead of the largest
    /// event time its source has accepted is *too far ahead* and handled by
    /// [`skew_policy`](Self::skew_policy) (rule, bootstrap and limits in the
    /// [module docs](self#clock-skew)). Default: none, the guard is off and
    /// every valid reading moves the watermark.
    pub max_skew_ms: Option<u64>,
    /// What happens to a reading too far ahead: `reject` (default, reason
    /// `future_timestamp`) or `clamp` (its event time becomes the bound).
    /// Only used with [`max_skew_ms`](Self::max_skew_ms).
    pub skew_policy: SkewPolicy,
    /// A partition (file split, Kafka partition, …) that sent nothing for
    /// this long stops holding the watermark back, and rejoins with its next
    /// chunk (its readings behind the watermark are then late). Default:
    /// never (`None`); only matters for sources that read several
    /// partitions at once.
    pub idle_timeout_ms: Option<u64>,
}

impl Default for EventTimeConfig {
    fn default() -> Self {
        EventTimeConfig {
            max_disorder_ms: 2000,
            lateness: Lateness::Record,
            max_record_bytes: 1 << 20,
            channel_capacity: bridge::DEFAULT_CAPACITY,
            max_skew_ms: None,
            skew_policy: SkewPolicy::Reject,
            idle_timeout_ms: None,
        }
    }
}

impl EventTimeConfig {
    /// Sets the maximum disorder.
    pub fn with_max_disorder(mut self, d: Duration) -> Self {
        self.max_disorder_ms = d.as_millis() as u64;
        self
    }

    /// Sets the lateness rule.
    pub fn with_lateness(mut self, l: Lateness) -> Self {
        self.lateness = l;
        self
    }

    /// Turns the clock-skew guard on with this maximum skew.
    pub fn with_max_skew(mut self, d: Duration) -> Self {
        self.max_skew_ms = Some(d.as_millis() as u64);
        self
    }

    /// Sets what the clock-skew guard does with a reading too far ahead.
    pub fn with_skew_policy(mut self, p: SkewPolicy) -> Self {
        self.skew_policy = p;
        self
    }
}

/// The streams of an event-time source.
#[derive(Debug)]
pub struct EventStreams<'scope> {
    /// Valid, on-time readings, at timely time ≤ their event time's horizon.
    pub readings: StreamVec<'scope, Timestamp, Reading>,
    /// Valid readings that arrived late.
    pub late: StreamVec<'scope, Timestamp, LateReading>,
    /// Records that failed decoding or validation.
    pub rejects: StreamVec<'scope, Timestamp, Reject>,
    /// One [`Tally`] per worker when its input ends.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// How often a source whose input is quiet looks whether its job was
/// cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Valid readings a source holds to anchor its clock-skew guard.
const BOOTSTRAP_READINGS: usize = 3;

/// Per-worker event-time state: the watermark, the clock-skew guard, and
/// what decides whether a valid reading is on time, late, held or rejected.
#[derive(Debug)]
struct Watermark {
    max_ts: Option<Timestamp>,
    /// The largest event time of the partition being read.
    part_max: Option<Timestamp>,
    /// The least frontier of the other active partitions (`MAX`: none).
    others: Timestamp,
    /// `max_ts − disorder + 1`: the source's frontier.
    frontier: Timestamp,
    disorder: u64,
    lateness: Lateness,
    /// Readings at or beyond the gate go through [`Watermark::beyond_gate`].
    /// Guard on: the bound + 1, or 0 while bootstrapping. Guard off:
    /// `Timestamp::MAX`, so that the hot path is one comparison either way.
    gate: Timestamp,
    /// `max_skew_ms + 1`; `Timestamp::MAX` with the guard off (the gate
    /// saturates there).
    reach: u64,
    policy: SkewPolicy,
    /// Readings clamped so far.
    clamped: u64,
    /// Readings held while bootstrapping, each with its reject.
    boot: Vec<(Reading, Reject)>,
}

/// The watermark of each partition a source reads (a chunk's `source`: a
/// file, later a Kafka partition or a Kinesis shard).
///
/// The source's frontier is the least frontier of its *active* partitions,
/// and never moves back: a partition that reads behind the others holds the
/// watermark for the whole source, so its readings are not late merely
/// because another partition ran ahead. A partition leaves when it is read
/// to its end; with `idle_timeout_ms`, one that sent nothing for that long
/// stops holding the watermark, and rejoins with its next chunk (judged
/// against the watermark then). A source announces a partition before its
/// data with an empty chunk, so that it holds the watermark from the start,
/// and ends it with an empty chunk whose `resume` says that partition is
/// `Done`.
#[derive(Debug, Default)]
struct Partitions {
    parts: BTreeMap<Arc<str>, PartWm>,
    /// The partition whose maximum is in `Watermark::part_max`.
    current: Option<Arc<str>>,
    idle: Option<Duration>,
}

#[derive(Debug)]
struct PartWm {
    max_ts: Option<Timestamp>,
    last_seen: Instant,
}

impl Partitions {
    fn restore(saved: &BTreeMap<String, Timestamp>, idle_ms: Option<u64>) -> Self {
        let now = Instant::now();
        Partitions {
            parts: saved
                .iter()
                .map(|(k, m)| {
                    (
                        Arc::from(k.as_str()),
                        PartWm {
                            max_ts: Some(*m),
                            last_seen: now,
                        },
                    )
                })
                .collect(),
            current: None,
            idle: idle_ms.map(Duration::from_millis),
        }
    }

    /// Points `wm` at partition `key` before a chunk of it is read.
    fn enter(&mut self, key: &Arc<str>, wm: &mut Watermark) {
        let now = Instant::now();
        if self.current.as_ref() != Some(key) {
            if let Some(cur) = self.current.take()
                && let Some(p) = self.parts.get_mut(&cur)
            {
                p.max_ts = wm.part_max;
            }
            let p = self.parts.entry(key.clone()).or_insert(PartWm {
                max_ts: None,
                last_seen: now,
            });
            wm.part_max = p.max_ts;
            self.current = Some(key.clone());
        }
        if let Some(p) = self.parts.get_mut(key) {
            p.last_seen = now;
        }
        wm.others = self
            .least_frontier(Some(key), wm.disorder)
            .unwrap_or(Timestamp::MAX);
    }

    /// After a chunk of `key`: keeps its maximum; forgets it once `done`.
    fn leave(&mut self, key: &Arc<str>, done: bool, wm: &mut Watermark) {
        if done {
            self.parts.remove(key);
            self.current = None;
            wm.part_max = None;
        } else if let Some(p) = self.parts.get_mut(key) {
            p.max_ts = wm.part_max;
        }
    }

    /// The least frontier of the active partitions other than `skip`.
    fn least_frontier(&self, skip: Option<&Arc<str>>, disorder: u64) -> Option<Timestamp> {
        let now = Instant::now();
        self.parts
            .iter()
            .filter(|(k, _)| Some(*k) != skip)
            .filter(|(_, p)| {
                self.idle
                    .is_none_or(|d| now.duration_since(p.last_seen) < d)
            })
            .map(|(_, p)| p.max_ts.map_or(0, |m| Watermark::frontier_of(m, disorder)))
            .min()
    }

    /// Moves the frontier up to the least frontier of the active partitions
    /// (after one finished or went idle).
    fn settle(&self, wm: &mut Watermark) {
        if let Some(m) = self.least_frontier(None, wm.disorder) {
            wm.frontier = wm.frontier.max(m);
        }
    }

    /// Whether an idle timeout could still move the frontier.
    fn may_idle(&self) -> Option<Duration> {
        self.idle.filter(|_| self.parts.len() > 1)
    }

    /// Every partition's maximum, for the checkpoint log (shared keys: no
    /// string copies per chunk).
    fn saved(&self) -> Vec<(Arc<str>, Timestamp)> {
        self.parts
            .iter()
            .filter_map(|(k, p)| p.max_ts.map(|m| (k.clone(), m)))
            .collect()
    }
}

/// The guard's verdict on a reading at or beyond the gate.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    /// Process it (its time may have been clamped).
    Pass,
    /// Reject it: `future_timestamp`.
    Future,
    /// Hold it until the guard has its anchor.
    Hold,
}

impl Watermark {
    /// The state of a source restored at `max_ts` (none: a fresh start).
    fn new(max_ts: Option<Timestamp>, config: &EventTimeConfig) -> Self {
        let disorder = config.max_disorder_ms;
        let reach = config
            .max_skew_ms
            .map_or(Timestamp::MAX, |s| s.saturating_add(1));
        let gate = match (config.max_skew_ms, max_ts) {
            (None, _) => Timestamp::MAX,
            (Some(_), None) => 0,
            (Some(_), Some(m)) => m.saturating_add(reach),
        };
        Watermark {
            max_ts,
            part_max: max_ts,
            others: Timestamp::MAX,
            frontier: max_ts.map_or(0, |m| Self::frontier_of(m, disorder)),
            disorder,
            lateness: config.lateness,
            gate,
            reach,
            policy: config.skew_policy,
            clamped: 0,
            boot: Vec::new(),
        }
    }

    /// Takes one valid reading: too far ahead, it is refused
    /// (`future_timestamp`); while bootstrapping, held; otherwise it moves
    /// the watermark and goes to `ok` or, behind the frontier, to `late`.
    #[inline]
    fn admit(
        &mut self,
        mut r: Reading,
        raw: &Raw<'_>,
        ok: &mut Vec<Reading>,
        late: &mut Vec<LateReading>,
    ) -> Result<(), RejectReason> {
        if r.ts >= self.gate {
            match self.beyond_gate(&mut r.ts) {
                Gate::Pass => {}
                Gate::Future => return Err(RejectReason::FutureTimestamp),
                Gate::Hold => {
                    let rej = raw.reject(RejectReason::FutureTimestamp);
                    self.boot.push((r, rej));
                    return Ok(());
                }
            }
        }
        self.route(r, ok, late);
        Ok(())
    }

    /// Ends the bootstrap once enough readings are held, or with whatever is
    /// held at the end of the input (`end`): anchors the guard at the lower
    /// median of the first [`BOOTSTRAP_READINGS`], then admits the held
    /// readings in arrival order. Returns whether it did.
    fn settle(
        &mut self,
        end: bool,
        ok: &mut Vec<Reading>,
        late: &mut Vec<LateReading>,
        rejects: &mut Vec<Reject>,
    ) -> bool {
        if self.boot.is_empty() || (self.boot.len() < BOOTSTRAP_READINGS && !end) {
            return false;
        }
        let mut first: Vec<Timestamp> = self
            .boot
            .iter()
            .take(BOOTSTRAP_READINGS)
            .map(|(r, _)| r.ts)
            .collect();
        first.sort_unstable();
        let anchor = first[(first.len() - 1) / 2];
        self.gate = anchor.saturating_add(self.reach);
        for (mut r, rej) in std::mem::take(&mut self.boot) {
            if r.ts >= self.gate && self.beyond_gate(&mut r.ts) == Gate::Future {
                rejects.push(rej);
            } else {
                self.route(r, ok, late);
            }
        }
        true
    }

    /// Moves the watermark by a reading the guard let through and sends it
    /// on time or late.
    #[inline]
    fn route(&mut self, r: Reading, ok: &mut Vec<Reading>, late: &mut Vec<LateReading>) {
        // Monotone: the watermark only moves forward.
        self.observe(r.ts);
        // Late when behind its own partition's watermark (which the
        // source's frontier, the least over partitions, never exceeds
        // unless the partition joined late): a decision that does not
        // depend on how the partitions' chunks interleave.
        let own = self
            .part_max
            .map_or(0, |m| Self::frontier_of(m, self.disorder));
        if self.lateness.horizon(r.ts) < self.frontier.max(own) {
            let (window_start, window_end) = self.lateness.missed(r.ts);
            late.push(LateReading {
                reading: r,
                window_start,
                window_end,
            });
        } else {
            ok.push(r);
        }
    }

    /// The frontier after seeing `ts`.
    #[inline]
    fn observe(&mut self, ts: Timestamp) -> Timestamp {
        match self.max_ts {
            Some(m) if m >= ts => {}
            _ => {
                self.max_ts = Some(ts);
                // Never below the anchor's gate; saturates at MAX when off.
                self.gate = self.gate.max(ts.saturating_add(self.reach));
            }
        }
        match self.part_max {
            Some(m) if m >= ts => {}
            _ => {
                self.part_max = Some(ts);
                // The frontier is the least over the active partitions, and
                // never moves back.
                let f = Self::frontier_of(ts, self.disorder).min(self.others);
                self.frontier = self.frontier.max(f);
            }
        }
        self.frontier
    }

    /// The guard, for a reading with `ts ≥ gate`: rare, so out of line.
    #[cold]
    #[inline(never)]
    fn beyond_gate(&mut self, ts: &mut Timestamp) -> Gate {
        if self.reach == Timestamp::MAX {
            // Off (only `ts = MAX` gets here).
            return Gate::Pass;
        }
        if self.gate == 0 {
            return Gate::Hold;
        }
        match self.policy {
            SkewPolicy::Reject => Gate::Future,
            SkewPolicy::Clamp => {
                *ts = self.gate - 1;
                self.clamped += 1;
                Gate::Pass
            }
        }
    }

    #[inline]
    fn frontier_of(max_ts: Timestamp, disorder: u64) -> Timestamp {
        if max_ts >= disorder {
            max_ts - disorder + 1
        } else {
            0
        }
    }
}

/// Starts `source` on an I/O thread of this worker and returns its readings
/// (event time = timely time), late readings, rejects and a final tally.
///
/// ```
/// use iotflow_core::{codec::JsonDecoder, context::JobContext, event_time::*, source::MemorySource, validate::Rules};
/// use timely::dataflow::operators::{Capture, capture::Event};
///
/// let lines = [
///     r#"{"device_id":"d-1","ts":10000,"metric":"temp","value":20.5}"#,
///     r#"{"device_id":"d-1","ts":13000,"metric":"temp","value":21.5}"#,
///     r#"{"device_id":"d-1","ts":10500,"metric":"temp","value":22.5}"#, // 2.5 s behind: late
///     r#"{"device_id":"d-1","ts":13001,"metric":"temp","value":NaN}"#,  // rejected
/// ];
/// let (readings, late, rejects) = timely::example(move |scope| {
///     let s = event_time_source(scope, "src", Box::new(MemorySource::from_lines("mem", &lines, 2)),
///         Box::new(JsonDecoder::new()), Rules::fleet_default(), EventTimeConfig::default(), JobContext::new());
///     (s.readings.capture(), s.late.capture(), s.rejects.capture())
/// });
/// fn n<D>(rx: std::sync::mpsc::Receiver<Event<u64, Vec<D>>>) -> usize {
///     rx.try_iter().map(|e| if let Event::Messages(_, d) = e { d.len() } else { 0 }).sum()
/// }
/// assert_eq!((n(readings), n(late), n(rejects)), (2, 1, 1));
/// ```
pub fn event_time_source<'scope>(
    scope: Scope<'scope, Timestamp>,
    name: &str,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    rules: Rules,
    config: EventTimeConfig,
    ctx: JobContext,
) -> EventStreams<'scope> {
    event_time_source_limited(scope, name, source, decoder, rules, config, ctx, None)
}

/// Keeps a source from running too far ahead of the slowest worker.
///
/// Every worker's source reads its own share of the input; if one races
/// ahead, the frontier (the minimum over all workers) stays with the slowest,
/// and windows opened by the fast worker pile up in memory. With a limit, a
/// source whose own frontier is more than `max_ahead_ms` of event time ahead
/// of `probe` (put it after the stateful operators) pauses reading until the
/// others catch up: bounded state whatever the scheduling. The slowest
/// worker is never paused, so this cannot deadlock.
#[derive(Clone, Debug)]
pub struct FrontierLimit {
    /// Probe on a stream downstream of the stateful operators.
    pub probe: timely::dataflow::operators::probe::Handle<Timestamp>,
    /// How far (ms of event time) a source may run ahead of the probe.
    pub max_ahead_ms: u64,
}

/// Options of an event-time source beyond its configuration.
#[derive(Debug, Default)]
pub struct SourceOptions<'a, 'scope> {
    /// Keep this worker's source from running ahead of the slowest.
    pub limit: Option<FrontierLimit>,
    /// Take part in checkpoints: record positions, answer checkpoints with
    /// a [`SourceState`], and start from the restored one.
    pub checkpoints: Option<&'a Checkpoints<'scope>>,
}

/// [`event_time_source`] with an optional [`FrontierLimit`].
#[allow(clippy::too_many_arguments)]
pub fn event_time_source_limited<'scope>(
    scope: Scope<'scope, Timestamp>,
    name: &str,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    rules: Rules,
    config: EventTimeConfig,
    ctx: JobContext,
    limit: Option<FrontierLimit>,
) -> EventStreams<'scope> {
    let opts = SourceOptions {
        limit,
        checkpoints: None,
    };
    build_source(scope, name, source, decoder, rules, config, ctx, opts, None)
}

/// One chunk's effect on the source state, kept until a checkpoint passes it.
#[derive(Debug)]
struct Logged {
    /// The capability time the chunk's records were sent at.
    time: Timestamp,
    resume: Option<Resume>,
    max_ts: Option<Timestamp>,
    partitions: Vec<(Arc<str>, Timestamp)>,
    tally: Tally,
}

/// The most general event-time source: optional [`FrontierLimit`] and
/// checkpoints.
///
/// With checkpoints, the source sends each chunk's records at one capability
/// time and logs `(time, position after the chunk)`. A checkpoint at `T`
/// folds every logged chunk sent before `T` into the source's
/// [`SourceState`] (the coordinator picks `T` at or below this source's
/// frontier, so no chunk before `T` can still come) and acknowledges it. A
/// restored source starts at its saved watermark and counts.
#[allow(clippy::too_many_arguments)]
pub fn event_time_source_with<'scope>(
    scope: Scope<'scope, Timestamp>,
    name: &str,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    rules: Rules,
    config: EventTimeConfig,
    ctx: JobContext,
    opts: SourceOptions<'_, 'scope>,
) -> Result<EventStreams<'scope>, SnapshotError> {
    let restored = match opts.checkpoints {
        Some(c) => match c.restored() {
            Some(r) => Some(SourceState::restore(r.parts(name)?, c.worker(), c.peers())),
            None => None,
        },
        None => None,
    };
    Ok(build_source(
        scope, name, source, decoder, rules, config, ctx, opts, restored,
    ))
}

#[allow(clippy::too_many_arguments)]
fn build_source<'scope>(
    scope: Scope<'scope, Timestamp>,
    name: &str,
    mut source: Box<dyn Source>,
    mut decoder: Box<dyn Decoder>,
    rules: Rules,
    config: EventTimeConfig,
    ctx: JobContext,
    opts: SourceOptions<'_, 'scope>,
    restored: Option<SourceState>,
) -> EventStreams<'scope> {
    const ACKS: usize = 4;
    let limit = opts.limit;
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let info = builder.operator_info();
    let (readings_out, readings) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (rejects_out, rejects) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    // Checkpoint requests reach only the ack output: the data outputs do not
    // wait for the coordinator (which itself trails them).
    let mut control = opts.checkpoints.map(|c| {
        builder.new_input_connection(
            c.control(),
            Pipeline,
            [(ACKS, Antichain::from_elem(Default::default()))],
        )
    });
    if let Some(c) = opts.checkpoints {
        c.add_acks(acks);
    }
    let mut readings_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<Reading>>>::from(readings_out);
    let mut late_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<LateReading>>>::from(late_out);
    let mut rejects_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<Reject>>>::from(rejects_out);
    let mut tally_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let worker = scope.index();

    let activator = scope.worker().sync_activator_for(info.address.to_vec());
    let self_activator = scope.activator_for(info.address);
    let (tx, mut rx) =
        bridge::bridge::<crate::Result<Chunk>>(config.channel_capacity, Some(activator));
    let thread_name = format!("{name}-io-{worker}");
    let io_ctx = ctx.clone();
    let commits = opts.checkpoints.map(|_| Commits::new(&ctx));
    if let Some(c) = &commits {
        source.attach_commits(c.clone());
    }
    let spawned = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            if let Err(e) = source.run(&tx) {
                // The worker records it when it reads the error.
                let _ = tx.send_blocking(Err(e));
            }
            // The input has ended for the worker: its last checkpoint can
            // now complete, and the source acknowledge it.
            drop(tx);
            source.finish();
        });
    match spawned {
        Ok(handle) => io_ctx.register_io(handle),
        Err(e) => io_ctx.fail(format!("{name}: cannot start I/O thread: {e}")),
    }

    let max_len = config.max_record_bytes;
    let name = name.to_owned();
    let checkpointing = control.is_some();

    builder.build(move |mut initial| {
        // The ack output answers with capabilities of the requests.
        initial.truncate(ACKS);
        let mut caps: Option<Vec<Capability<Timestamp>>> = Some(initial);
        let mut committed = restored.unwrap_or_default();
        let mut wm = Watermark::new(committed.max_ts, &config);
        let mut parts = Partitions::restore(&committed.partitions, config.idle_timeout_ms);
        let mut tally = committed.tally.clone();
        let mut log: Vec<Logged> = Vec::new();
        let mut rejected_by: Vec<(RejectReason, u64)> = Vec::new();
        let mut ok_buf: Vec<Reading> = Vec::new();
        let mut late_buf: Vec<LateReading> = Vec::new();
        let mut rej_buf: Vec<Reject> = Vec::new();

        move |_frontiers| {
            if let Some(control) = control.as_mut() {
                let mut acks_out = acks_out.activate();
                control.for_each(|cap, data| {
                    for ck in data.drain(..) {
                        // Every chunk sent before `ck.time` is in the log.
                        let upto = log.partition_point(|l| l.time < ck.time);
                        let mut last = None;
                        for l in log.drain(..upto) {
                            if let Some(r) = &l.resume {
                                committed
                                    .positions
                                    .insert(r.partition.to_string(), r.position.clone());
                            }
                            last = Some(l);
                        }
                        // Watermark and counts are the last chunk's.
                        if let Some(l) = last {
                            committed.max_ts = l.max_ts;
                            committed.partitions = l
                                .partitions
                                .iter()
                                .map(|(k, m)| (k.to_string(), *m))
                                .collect();
                            committed.tally = l.tally;
                        }
                        if let Some(c) = &commits {
                            c.record(
                                ck.id,
                                committed.positions.iter().map(|(k, p)| Resume {
                                    partition: Arc::from(k.as_str()),
                                    position: p.clone(),
                                }),
                            );
                        }
                        if let Some(at) = cap.retain_least(ACKS) {
                            let encoded = state::encode(&committed);
                            let ack =
                                Ack::of_state(&ck, &name, worker, encoded, committed.tally.clone());
                            acks_out.session(&at).give(ack);
                        }
                    }
                });
            }
            let Some(held) = caps.as_mut() else { return };
            if wm.frontier > *held[0].time() {
                // Restored watermark.
                for c in held.iter_mut() {
                    c.downgrade(&wm.frontier);
                }
            }
            if let Some(l) = &limit {
                let behind = l.probe.with_frontier(|f| f.iter().min().copied());
                if behind.is_some_and(|b| wm.frontier > b.saturating_add(l.max_ahead_ms)) {
                    self_activator.activate_after(Duration::from_millis(1));
                    return;
                }
            }
            let mut readings_out = readings_out.activate();
            let mut late_out = late_out.activate();
            let mut rejects_out = rejects_out.activate();
            // A cancelled job stops reading; what was read still flows out.
            let mut finished = ctx.is_cancelled();
            // Whether this activation read a chunk, and where it ended.
            let (mut chunked, mut resume): (bool, Option<Resume>) = (false, None);
            // One chunk per activation keeps downstream operators fed; we
            // re-activate ourselves while the channel has more.
            match if finished { Recv::Empty } else { rx.try_recv() } {
                Recv::Item(Ok(chunk)) => {
                    let key = chunk.source.clone();
                    parts.enter(&key, &mut wm);
                    let (lines, bytes) = decode_chunk(
                        &chunk,
                        &mut *decoder,
                        &rules,
                        max_len,
                        &mut |r: Reading, raw: &Raw<'_>| {
                            wm.admit(r, raw, &mut ok_buf, &mut late_buf)
                        },
                        &mut |rej: Reject| rej_buf.push(rej),
                    );
                    tally.lines += lines;
                    let p = &ctx.progress;
                    p.lines
                        .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
                    p.bytes
                        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                    // An empty chunk whose position says its own source is
                    // done ends that partition.
                    let done = chunk.data.is_empty()
                        && chunk.resume.as_ref().is_some_and(|r| {
                            r.position == Position::Done && r.partition == chunk.source
                        });
                    parts.leave(&key, done, &mut wm);
                    (chunked, resume) = (true, chunk.resume);
                }
                Recv::Item(Err(e)) => {
                    ctx.fail(format!("source {name}: {e}"));
                    finished = true;
                }
                Recv::Empty => {}
                Recv::Closed => finished = true,
            }
            let anchored = wm.settle(finished, &mut ok_buf, &mut late_buf, &mut rej_buf);
            parts.settle(&mut wm);
            if !chunked && !finished {
                // Look again when a quiet partition may have gone idle, and
                // now and then anyway: a job cancelled while its input is
                // quiet (no chunk wakes this operator) must still stop.
                let after = parts.may_idle().map_or(CANCEL_POLL, |idle| {
                    (idle / 4).clamp(Duration::from_millis(1), CANCEL_POLL)
                });
                self_activator.activate_after(after);
            }
            if chunked || anchored {
                tally.valid += (ok_buf.len() + late_buf.len()) as u64;
                tally.late += late_buf.len() as u64;
                let p = &ctx.progress;
                p.rejected
                    .fetch_add(rej_buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                p.late
                    .fetch_add(late_buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                for rej in &rej_buf {
                    match rejected_by.iter_mut().find(|(r, _)| *r == rej.reason) {
                        Some((_, n)) => *n += 1,
                        None => rejected_by.push((rej.reason, 1)),
                    }
                }
                if !ok_buf.is_empty() {
                    readings_out
                        .session(&held[0])
                        .give_iterator(ok_buf.drain(..));
                }
                if !late_buf.is_empty() {
                    late_out.session(&held[1]).give_iterator(late_buf.drain(..));
                }
                if !rej_buf.is_empty() {
                    rejects_out
                        .session(&held[2])
                        .give_iterator(rej_buf.drain(..));
                }
                if checkpointing {
                    for (reason, n) in rejected_by.drain(..) {
                        *tally.rejected.entry(reason.code().to_owned()).or_default() += n;
                    }
                    log.push(Logged {
                        time: *held[0].time(),
                        resume: resume.take(),
                        max_ts: wm.max_ts,
                        partitions: parts.saved(),
                        tally: tally.clone(),
                    });
                }
            }
            if wm.frontier > *held[0].time() {
                for c in held.iter_mut() {
                    c.downgrade(&wm.frontier);
                }
            }
            if chunked {
                self_activator.activate();
            }
            if finished {
                tracing::debug!(
                    source = %name,
                    lines = tally.lines,
                    valid = tally.valid,
                    late = tally.late,
                    clamped = wm.clamped,
                    watermark_frontier = wm.frontier,
                    "source finished"
                );
                if wm.clamped > 0 {
                    tracing::warn!(
                        source = %name,
                        clamped = wm.clamped,
                        max_skew_ms = config.max_skew_ms,
                        "readings too far ahead had their event time clamped"
                    );
                }
                for (reason, n) in rejected_by.drain(..) {
                    *tally.rejected.entry(reason.code().to_owned()).or_default() += n;
                }
                let mut tally_out = tally_out.activate();
                tally_out.session(&held[3]).give(std::mem::take(&mut tally));
                caps = None;
            }
        }
    });

    EventStreams {
        readings,
        late,
        rejects,
        tally,
    }
}

/// A record in its chunk: what a [`Reject`] of it is made of.
struct Raw<'a> {
    chunk: &'a Chunk,
    /// Offset of the record in the chunk.
    at: usize,
    rec: &'a [u8],
}

impl Raw<'_> {
    /// The record as a reject: its position and (up to 64 KiB of) its bytes.
    fn reject(&self, reason: RejectReason) -> Reject {
        let keep = self.rec.len().min(64 * 1024);
        Reject {
            pos: SourcePos {
                source: self.chunk.source.clone(),
                offset: self.chunk.offset + self.at as u64,
            },
            reason,
            raw: self.rec[..keep].to_vec(),
        }
    }
}

/// Splits a chunk into records, decodes and validates them, and hands valid
/// readings to `ok`, which may still refuse one with a reason. Returns
/// (records, bytes).
fn decode_chunk(
    chunk: &Chunk,
    decoder: &mut dyn Decoder,
    rules: &Rules,
    max_len: usize,
    ok: &mut impl FnMut(Reading, &Raw<'_>) -> Result<(), RejectReason>,
    rej: &mut impl FnMut(Reject),
) -> (u64, u64) {
    let data = &chunk.data[..];
    let mut start = 0usize;
    let mut lines = 0u64;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut rec = &data[start..end];
        if let [head @ .., b'\r'] = rec {
            rec = head;
        }
        let raw = Raw {
            chunk,
            at: start,
            rec,
        };
        start = end + 1;
        if rec.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if decoder.is_header(rec) {
            continue;
        }
        lines += 1;
        if rec.len() > max_len {
            rej(raw.reject(RejectReason::TooLong));
            continue;
        }
        let verdict = match decoder.decode(rec) {
            Ok(r) => match rules.check(&r) {
                Ok(()) => ok(r, &raw),
                Err(reason) => Err(reason),
            },
            Err(reason) => Err(reason),
        };
        if let Err(reason) = verdict {
            rej(raw.reject(reason));
        }
    }
    (lines, data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_is_watermark_plus_one() {
        let mut wm = Watermark::new(None, &EventTimeConfig::default());
        assert_eq!(wm.observe(1000), 0);
        assert_eq!(wm.observe(5000), 3001);
        assert_eq!(wm.observe(4000), 3001);
    }

    const YEAR: Timestamp = 365 * 24 * 3600 * 1000;

    /// What became of one reading.
    #[derive(Debug, PartialEq, Eq)]
    enum Fate {
        OnTime(Timestamp),
        Late(Timestamp),
        Future(Timestamp),
    }

    /// Feeds readings at `times` (ms) one by one, as the source does, then
    /// ends the input; returns each reading's fate in arrival order (held
    /// readings are placed where they arrived), the final `max_ts` and the
    /// frontier after each reading.
    fn run(
        config: &EventTimeConfig,
        restored: Option<Timestamp>,
        times: &[Timestamp],
    ) -> (Vec<Fate>, Option<Timestamp>, Vec<Timestamp>) {
        let mut wm = Watermark::new(restored, config);
        let (mut ok, mut late, mut rej) = (Vec::new(), Vec::new(), Vec::new());
        let mut frontiers = Vec::new();
        let line = |i: usize| format!("{i}").into_bytes();
        for (i, &ts) in times.iter().enumerate() {
            let data = line(i);
            let chunk = Chunk {
                source: "t".into(),
                offset: 0,
                data: data.clone(),
                resume: None,
            };
            let raw = Raw {
                chunk: &chunk,
                at: 0,
                rec: &data,
            };
            let r = Reading::new("d", ts, "temp", i as f64);
            if let Err(reason) = wm.admit(r, &raw, &mut ok, &mut late) {
                rej.push(raw.reject(reason));
            }
            wm.settle(false, &mut ok, &mut late, &mut rej);
            frontiers.push(wm.frontier);
        }
        wm.settle(true, &mut ok, &mut late, &mut rej);
        assert!(wm.boot.is_empty());
        // The reading's index is its value (readings) or its raw bytes (rejects).
        let mut fates: Vec<(usize, Fate)> = ok
            .into_iter()
            .map(|r| (r.value as usize, Fate::OnTime(r.ts)))
            .chain(
                late.into_iter()
                    .map(|l| (l.reading.value as usize, Fate::Late(l.reading.ts))),
            )
            .chain(rej.into_iter().map(|j| {
                assert_eq!(j.reason, RejectReason::FutureTimestamp);
                let i: usize = String::from_utf8_lossy(&j.raw)
                    .parse()
                    .unwrap_or(usize::MAX);
                (i, Fate::Future(times[i]))
            }))
            .collect();
        fates.sort_by_key(|(i, _)| *i);
        assert_eq!(fates.len(), times.len(), "every reading has one fate");
        (
            fates.into_iter().map(|(_, f)| f).collect(),
            wm.max_ts,
            frontiers,
        )
    }

    fn guarded(policy: SkewPolicy) -> EventTimeConfig {
        EventTimeConfig::default()
            .with_max_skew(Duration::from_secs(60))
            .with_skew_policy(policy)
    }

    /// Times of a fleet with one reading a year ahead at index 4.
    fn fleet_with_jump() -> Vec<Timestamp> {
        vec![
            10_000,
            11_000,
            12_000,
            13_000,
            13_000 + YEAR,
            14_000,
            15_000,
            16_000,
        ]
    }

    #[test]
    fn guard_off_is_unchanged() {
        // The guard off: no reading is held or refused, and every frontier
        // equals what the plain watermark gives.
        let times = fleet_with_jump();
        let (fates, max_ts, frontiers) = run(&EventTimeConfig::default(), None, &times);
        let mut plain = Watermark::new(None, &EventTimeConfig::default());
        let expect: Vec<Timestamp> = times.iter().map(|&t| plain.observe(t)).collect();
        assert_eq!(frontiers, expect);
        assert_eq!(max_ts, Some(13_000 + YEAR));
        // The jump makes every later reading late: the failure the guard is for.
        assert_eq!(fates[4], Fate::OnTime(13_000 + YEAR));
        assert!(fates[5..].iter().all(|f| matches!(f, Fate::Late(_))));
        // Even `ts = MAX` passes.
        let (fates, _, _) = run(&EventTimeConfig::default(), Some(5), &[Timestamp::MAX]);
        assert_eq!(fates, [Fate::OnTime(Timestamp::MAX)]);
    }

    #[test]
    fn reject_keeps_the_watermark() {
        let times = fleet_with_jump();
        let (fates, max_ts, frontiers) = run(&guarded(SkewPolicy::Reject), None, &times);
        let mut want: Vec<Fate> = times.iter().map(|&t| Fate::OnTime(t)).collect();
        want[4] = Fate::Future(13_000 + YEAR);
        assert_eq!(fates, want);
        assert_eq!(max_ts, Some(16_000));
        // Held at 0 during the bootstrap, then as without the bad reading.
        assert_eq!(
            frontiers,
            [0, 0, 10_001, 11_001, 11_001, 12_001, 13_001, 14_001]
        );
    }

    #[test]
    fn the_bound_is_inclusive() {
        let skew = 60_000;
        let times = [1_000, 1_000, 1_000, 1_000 + skew, 1_000 + 2 * skew + 1];
        let (fates, _, _) = run(&guarded(SkewPolicy::Reject), None, &times);
        // 61 000 is exactly max_ts + skew: accepted, and it moves the bound.
        assert_eq!(fates[3], Fate::OnTime(61_000));
        assert_eq!(fates[4], Fate::Future(121_001));
    }

    #[test]
    fn clamp_moves_the_watermark_by_the_skew_only() {
        let times = fleet_with_jump();
        let (fates, max_ts, _) = run(&guarded(SkewPolicy::Clamp), None, &times);
        // Clamped to max_ts + skew = 73 000, then processed normally: it
        // moves the watermark to 71 001, so the fleet's next readings are late.
        assert_eq!(fates[4], Fate::OnTime(73_000));
        assert!(fates[5..].iter().all(|f| matches!(f, Fate::Late(_))));
        assert_eq!(max_ts, Some(73_000));
        let mut wm = Watermark::new(Some(13_000), &guarded(SkewPolicy::Clamp));
        let mut ts = 13_000 + YEAR;
        assert_eq!(wm.beyond_gate(&mut ts), Gate::Pass);
        assert_eq!((ts, wm.clamped), (73_000, 1));
    }

    #[test]
    fn a_bad_first_reading_cannot_pin_the_watermark() {
        // The worker's very first reading is the bad one: the median of the
        // first three is a good one, so it is rejected.
        let times = [YEAR, 10_000, 11_000, 12_000, 13_000];
        let (fates, max_ts, frontiers) = run(&guarded(SkewPolicy::Reject), None, &times);
        assert_eq!(fates[0], Fate::Future(YEAR));
        assert!(fates[1..].iter().all(|f| matches!(f, Fate::OnTime(_))));
        assert_eq!(max_ts, Some(13_000));
        assert_eq!(frontiers, [0, 0, 9_001, 10_001, 11_001]);
        // With Clamp it is kept at anchor + skew (the median is 11 000).
        let (fates, _, _) = run(&guarded(SkewPolicy::Clamp), None, &times);
        assert_eq!(fates[0], Fate::OnTime(71_000));
        // A device stuck in 1970 among the first three does not move the
        // anchor: it is late, as it would be without the guard.
        let (fates, _, _) = run(&guarded(SkewPolicy::Reject), None, &[10_000, 0, 11_000]);
        assert_eq!(
            fates,
            [Fate::OnTime(10_000), Fate::Late(0), Fate::OnTime(11_000)]
        );
    }

    #[test]
    fn input_that_ends_while_bootstrapping() {
        let cfg = guarded(SkewPolicy::Reject);
        // One reading: its own anchor.
        assert_eq!(run(&cfg, None, &[YEAR]).0, [Fate::OnTime(YEAR)]);
        // Two: the lower median.
        assert_eq!(
            run(&cfg, None, &[YEAR, 5_000]).0,
            [Fate::Future(YEAR), Fate::OnTime(5_000)]
        );
    }

    #[test]
    fn a_restored_source_decides_from_max_ts_alone() {
        // Cut the stream anywhere after the bootstrap and restart from the
        // max_ts at the cut: the rest decides exactly as in one run.
        for policy in [SkewPolicy::Reject, SkewPolicy::Clamp] {
            let cfg = guarded(policy);
            let times = [
                YEAR,
                10_000,
                11_000,
                12_000,
                12_000 + YEAR,
                90_000,
                13_000,
                80_000,
                200_000,
            ];
            let (whole, _, _) = run(&cfg, None, &times);
            for cut in BOOTSTRAP_READINGS..times.len() {
                let (_, max_ts, _) = run(&cfg, None, &times[..cut]);
                let (rest, _, _) = run(&cfg, max_ts, &times[cut..]);
                assert_eq!(rest, whole[cut..], "{policy:?}, cut at {cut}");
            }
        }
    }

    #[test]
    fn skew_config_fields_and_defaults() {
        let c: EventTimeConfig =
            serde_json::from_str(r#"{"max_skew_ms": 3600000, "skew_policy": "clamp"}"#)
                .unwrap_or_default();
        assert_eq!(c.max_skew_ms, Some(3_600_000));
        assert_eq!(c.skew_policy, SkewPolicy::Clamp);
        let d: EventTimeConfig =
            serde_json::from_str("{}").unwrap_or_else(|_| guarded(SkewPolicy::Clamp));
        assert_eq!(d, EventTimeConfig::default());
        assert_eq!(d.max_skew_ms, None);
        assert!(serde_json::from_str::<EventTimeConfig>(r#"{"skew_policy": "drop"}"#).is_err());
    }

    #[test]
    fn window_horizon() {
        let l = Lateness::Window {
            size_ms: 10_000,
            allowed_ms: 0,
        };
        assert_eq!(l.horizon(12_345), 19_999);
        assert_eq!(l.horizon(20_000), 29_999);
        assert_eq!(Lateness::Record.horizon(7), 7);
    }
}
