//! The operator shell every detector runs in.
//!
//! Readings are exchanged by a stable hash of their key, applied in time
//! order once complete (via [`Epochs`]), held until the frontier passes
//! their *release time* `max(ts, t)` (`t`: the timely time they arrived
//! at), then scored per key in `(release time, ts, value)` order, a total
//! order fixed by the input alone; each frontier step releases a prefix of
//! it. Scores therefore do not depend on how the frontier advanced, on the
//! number of workers, or on checkpoints and restarts. Outputs are stamped
//! at their release time.
//!
//! What differs between detectors — the state and what a released reading
//! produces — is a [`Logic`]. A logic writes alerts and, optionally, other
//! records (scores, forecasts) to [`Outs`]; the shell sends each run of
//! records with the same stamp in one session, so a frontier step that
//! releases thousands of readings sends a few messages, not one per record.

use iotflow_core::checkpoint::{
    Ack, Checkpoints, EncodeFn, Epochs, Snapshot, Step, input_frontier,
};
use iotflow_core::held::Held;
use iotflow_core::tally::Tally;
use iotflow_types::{Alert, Reading, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};

/// What a logic emits, each record with the timely time it is stamped at
/// (non-decreasing within one call, so runs of one stamp share a session).
pub(crate) struct Outs<O> {
    /// Flagged readings.
    pub(crate) alerts: Vec<(Timestamp, Alert)>,
    /// Everything else the logic emits (scores, forecasts), if asked to.
    pub(crate) records: Vec<(Timestamp, O)>,
}

impl<O> Default for Outs<O> {
    fn default() -> Self {
        Outs {
            alerts: Vec::new(),
            records: Vec::new(),
        }
    }
}

/// What a detector does inside the shell.
pub(crate) trait Logic: 'static {
    /// Per-worker state (in checkpoints).
    type State: 'static;
    /// Records besides alerts.
    type Out: Clone + 'static;
    /// Takes a complete batch of input stamped `t` (in time order).
    fn batch(
        &mut self,
        st: &mut Self::State,
        t: Timestamp,
        data: Vec<Reading>,
        out: &mut Outs<Self::Out>,
    );
    /// Scores everything whose release time is below `bound` (`None`: all).
    fn release(
        &mut self,
        st: &mut Self::State,
        bound: Option<Timestamp>,
        out: &mut Outs<Self::Out>,
    );
}

/// Readings released by one frontier step, in the order they are applied.
pub(crate) struct Released<X> {
    items: Vec<(Timestamp, X)>,
    /// `(release, ts, value bits, index into items)`, sorted.
    order: Vec<(Timestamp, Timestamp, u64, u32)>,
}

impl<X> Default for Released<X> {
    fn default() -> Self {
        Released {
            items: Vec::new(),
            order: Vec::new(),
        }
    }
}

impl<X> Released<X> {
    /// The released items in `(release, ts, value)` order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Timestamp, X)> {
        self.order.iter().map(|o| &self.items[o.3 as usize])
    }

    /// Empties it, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.order.clear();
    }
}

/// Moves the pending items with a release time below `bound` (`None`: all)
/// to `ready`, ordered by `(release, ts, value)`; `false` when none can be.
///
/// The sort runs over a 32-byte key per item, not over the items (a
/// reading and its key are well over 100 bytes): each item moves once.
pub(crate) fn take_released<X>(
    pending: &mut Vec<(Timestamp, X)>,
    released_below: &mut Timestamp,
    bound: Option<Timestamp>,
    ready: &mut Released<X>,
    reading: impl Fn(&X) -> &Reading,
) -> bool {
    let bound = bound.unwrap_or(Timestamp::MAX);
    if bound <= *released_below || pending.is_empty() {
        // Nothing pending can be released before `released_below` moves:
        // every pending release time is at or above it.
        *released_below = (*released_below).max(bound);
        return false;
    }
    *released_below = bound;
    ready.clear();
    let mut k = 0;
    while k < pending.len() {
        if pending[k].0 < bound {
            let item = pending.swap_remove(k);
            let r = reading(&item.1);
            let i = ready.items.len() as u32;
            ready
                .order
                .push((item.0, r.ts, total_order_bits(r.value), i));
            ready.items.push(item);
        } else {
            k += 1;
        }
    }
    ready.order.sort_unstable();
    !ready.items.is_empty()
}

/// `f64::total_cmp` order as an unsigned integer order.
#[inline]
fn total_order_bits(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Sends `items` on `out`, one session per run of equal stamps.
fn give_runs<O: Clone + 'static>(
    out: &mut OutputBuilderSession<'_, Timestamp, CapacityContainerBuilder<Vec<O>>>,
    held: &Capability<Timestamp>,
    items: &mut Vec<(Timestamp, O)>,
) {
    let mut it = items.drain(..).peekable();
    while let Some((t, first)) = it.next() {
        let cap = held.delayed(&t);
        let mut session = out.session(&cap);
        session.give(first);
        while let Some((_, o)) = it.next_if(|(u, _)| *u == t) {
            session.give(o);
        }
    }
}

/// The shell's outputs.
pub(crate) struct ShellStreams<'scope, O> {
    pub(crate) alerts: StreamVec<'scope, Timestamp, Alert>,
    pub(crate) records: StreamVec<'scope, Timestamp, O>,
    pub(crate) tally: StreamVec<'scope, Timestamp, Tally>,
}

/// Builds the operator: `route` is the exchange hash of a reading (the
/// key's stable hash, which the state's `KeyedState` must agree with).
pub(crate) fn shell<'scope, L: Logic>(
    stream: StreamVec<'scope, Timestamp, Reading>,
    name: &str,
    route: impl Fn(&Reading) -> u64 + 'static,
    mut logic: L,
    state: Snapshot<L::State>,
    hooks: Option<(&Checkpoints<'scope>, EncodeFn<L::State>)>,
) -> ShellStreams<'scope, L::Out> {
    // Held capabilities: alerts, records, tally (acks use the request's).
    const HELD: usize = 3;
    let worker = stream.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Exchange::new(route));
    let mut control = hooks
        .as_ref()
        .map(|(c, _)| builder.new_input(c.control(), Pipeline));
    let (alerts_out, alerts) = builder.new_output();
    let (records_out, records) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let mut alerts_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Alert>>>::from(alerts_out);
    let mut records_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<L::Out>>>::from(records_out);
    let mut tally_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();
    let encode = hooks.map(|(c, encode)| {
        c.add_acks(acks);
        encode
    });

    builder.build(move |mut caps| {
        caps.truncate(HELD);
        let mut caps = Held::new(caps);
        let Snapshot {
            state: mut st,
            mut tally,
        } = state;
        let mut epochs: Epochs<Reading> = Epochs::default();
        let mut outs: Outs<L::Out> = Outs::default();
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut acks_out = acks_out.activate();
            input.for_each(|cap, data| epochs.push_message(&cap, data));
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, HELD));
            }
            let frontier = input_frontier(frontiers);
            let mut flush = |outs: &mut Outs<L::Out>, tally: &mut Tally| {
                if !outs.alerts.is_empty() {
                    tally.alerts += outs.alerts.len() as u64;
                    give_runs(&mut alerts_out.activate(), &held[0], &mut outs.alerts);
                }
                if !outs.records.is_empty() {
                    give_runs(&mut records_out.activate(), &held[1], &mut outs.records);
                }
            };
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => logic.batch(&mut st, t, data, &mut outs),
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    logic.release(&mut st, bound, &mut outs);
                    // Outputs before the checkpoint are counted in it.
                    flush(&mut outs, &mut tally);
                    if let Some(encode) = &encode {
                        let encoded = encode(&st, &tally);
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, tally.clone());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            logic.release(&mut st, frontier, &mut outs);
            flush(&mut outs, &mut tally);
            if let Some(last) = caps.follow(frontier) {
                tally_out
                    .activate()
                    .session(&last[2])
                    .give(std::mem::take(&mut tally));
            }
        }
    });
    ShellStreams {
        alerts,
        records,
        tally,
    }
}
