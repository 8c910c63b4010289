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

use std::time::Duration;

use iotflow_types::{Reading, Reject, SourcePos, Timestamp};
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
use crate::source::Resume;
use crate::source::{Chunk, Source};
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
        }
    }
}

/// Configuration of an event-time source.
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
}

impl Default for EventTimeConfig {
    fn default() -> Self {
        EventTimeConfig {
            max_disorder_ms: 2000,
            lateness: Lateness::Record,
            max_record_bytes: 1 << 20,
            channel_capacity: bridge::DEFAULT_CAPACITY,
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
}

/// The streams of an event-time source.
#[derive(Debug)]
pub struct EventStreams<'scope> {
    /// Valid, on-time readings, at timely time ≤ their event time's horizon.
    pub readings: StreamVec<'scope, Timestamp, Reading>,
    /// Valid readings that arrived late.
    pub late: StreamVec<'scope, Timestamp, Reading>,
    /// Records that failed decoding or validation.
    pub rejects: StreamVec<'scope, Timestamp, Reject>,
    /// One [`Tally`] per worker when its input ends.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// Per-worker watermark and record accounting.
#[derive(Debug, Default)]
struct Watermark {
    max_ts: Option<Timestamp>,
}

impl Watermark {
    /// The frontier after seeing `ts`.
    #[inline]
    fn observe(&mut self, ts: Timestamp, disorder: u64) -> Timestamp {
        let m = match self.max_ts {
            Some(m) if m >= ts => m,
            _ => {
                self.max_ts = Some(ts);
                ts
            }
        };
        Self::frontier_of(m, disorder)
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
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Reading>>>::from(late_out);
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
    let spawned = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            if let Err(e) = source.run(&tx) {
                // The worker records it when it reads the error.
                let _ = tx.send_blocking(Err(e));
            }
        });
    if let Err(e) = spawned {
        io_ctx.fail(format!("{name}: cannot start I/O thread: {e}"));
    }

    let disorder = config.max_disorder_ms;
    let lateness = config.lateness;
    let max_len = config.max_record_bytes;
    let name = name.to_owned();
    let checkpointing = control.is_some();

    builder.build(move |mut initial| {
        // The ack output answers with capabilities of the requests.
        initial.truncate(ACKS);
        let mut caps: Option<Vec<Capability<Timestamp>>> = Some(initial);
        let mut committed = restored.unwrap_or_default();
        let mut wm = Watermark {
            max_ts: committed.max_ts,
        };
        let mut frontier: Timestamp = wm.max_ts.map_or(0, |m| Watermark::frontier_of(m, disorder));
        let mut tally = committed.tally.clone();
        let mut log: Vec<Logged> = Vec::new();
        let mut rejected_by: Vec<(iotflow_types::RejectReason, u64)> = Vec::new();
        let mut ok_buf: Vec<Reading> = Vec::new();
        let mut late_buf: Vec<Reading> = Vec::new();
        let mut rej_buf: Vec<Reject> = Vec::new();

        move |_frontiers| {
            if let Some(control) = control.as_mut() {
                let mut acks_out = acks_out.activate();
                control.for_each(|cap, data| {
                    for ck in data.drain(..) {
                        // Every chunk sent before `ck.time` is in the log.
                        let upto = log.partition_point(|l| l.time < ck.time);
                        for l in log.drain(..upto) {
                            if let Some(r) = l.resume {
                                committed
                                    .positions
                                    .insert(r.partition.to_string(), r.position);
                            }
                            committed.max_ts = l.max_ts;
                            committed.tally = l.tally;
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
            if frontier > *held[0].time() {
                // Restored watermark.
                for c in held.iter_mut() {
                    c.downgrade(&frontier);
                }
            }
            if let Some(l) = &limit {
                let behind = l.probe.with_frontier(|f| f.iter().min().copied());
                if behind.is_some_and(|b| frontier > b.saturating_add(l.max_ahead_ms)) {
                    self_activator.activate_after(Duration::from_millis(1));
                    return;
                }
            }
            let mut readings_out = readings_out.activate();
            let mut late_out = late_out.activate();
            let mut rejects_out = rejects_out.activate();
            // A cancelled job stops reading; what was read still flows out.
            let mut finished = ctx.is_cancelled();
            // One chunk per activation keeps downstream operators fed; we
            // re-activate ourselves while the channel has more.
            match if finished { Recv::Empty } else { rx.try_recv() } {
                Recv::Item(Ok(chunk)) => {
                    let (lines, bytes) = decode_chunk(
                        &chunk,
                        &mut *decoder,
                        &rules,
                        max_len,
                        &mut |r: Reading| {
                            // Monotone: the watermark only moves forward.
                            frontier = wm.observe(r.ts, disorder);
                            if lateness.horizon(r.ts) < frontier {
                                late_buf.push(r);
                            } else {
                                ok_buf.push(r);
                            }
                        },
                        &mut |rej: Reject| rej_buf.push(rej),
                    );
                    tally.lines += lines;
                    tally.valid += (ok_buf.len() + late_buf.len()) as u64;
                    tally.late += late_buf.len() as u64;
                    let p = &ctx.progress;
                    p.lines
                        .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
                    p.bytes
                        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
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
                            resume: chunk.resume,
                            max_ts: wm.max_ts,
                            tally: tally.clone(),
                        });
                    }
                    for c in held.iter_mut() {
                        c.downgrade(&frontier);
                    }
                    self_activator.activate();
                }
                Recv::Item(Err(e)) => {
                    ctx.fail(format!("source {name}: {e}"));
                    finished = true;
                }
                Recv::Empty => {}
                Recv::Closed => finished = true,
            }
            if finished {
                tracing::debug!(
                    source = %name,
                    lines = tally.lines,
                    valid = tally.valid,
                    late = tally.late,
                    watermark_frontier = frontier,
                    "source finished"
                );
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

/// Splits a chunk into records, decodes and validates them. Returns (records, bytes).
fn decode_chunk(
    chunk: &Chunk,
    decoder: &mut dyn Decoder,
    rules: &Rules,
    max_len: usize,
    ok: &mut impl FnMut(Reading),
    rej: &mut impl FnMut(Reject),
) -> (u64, u64) {
    let data = &chunk.data[..];
    let mut start = 0usize;
    let mut lines = 0u64;
    let mut reject = |offset: usize, reason, raw: &[u8]| {
        let keep = raw.len().min(64 * 1024);
        rej(Reject {
            pos: SourcePos {
                source: chunk.source.clone(),
                offset: chunk.offset + offset as u64,
            },
            reason,
            raw: raw[..keep].to_vec(),
        });
    };
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut rec = &data[start..end];
        if let [head @ .., b'\r'] = rec {
            rec = head;
        }
        let at = start;
        start = end + 1;
        if rec.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if decoder.is_header(rec) {
            continue;
        }
        lines += 1;
        if rec.len() > max_len {
            reject(at, iotflow_types::RejectReason::TooLong, rec);
            continue;
        }
        match decoder.decode(rec) {
            Ok(r) => match rules.check(&r) {
                Ok(()) => ok(r),
                Err(reason) => reject(at, reason, rec),
            },
            Err(reason) => reject(at, reason, rec),
        }
    }
    (lines, data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_is_watermark_plus_one() {
        let mut wm = Watermark::default();
        assert_eq!(wm.observe(1000, 2000), 0);
        assert_eq!(wm.observe(5000, 2000), 3001);
        assert_eq!(wm.observe(4000, 2000), 3001);
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
