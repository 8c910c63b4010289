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
//! produces — is a [`Logic`].

use iotflow_core::checkpoint::{
    Ack, Checkpoints, EncodeFn, Epochs, Snapshot, Step, input_frontier,
};
use iotflow_core::held::Held;
use iotflow_core::tally::Tally;
use iotflow_types::{Reading, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

/// What a detector does inside the shell.
pub(crate) trait Logic: 'static {
    /// Per-worker state (in checkpoints).
    type State: 'static;
    /// Output records.
    type Out: Clone + 'static;
    /// Takes a complete batch of input stamped `t` (in time order).
    fn batch(
        &mut self,
        st: &mut Self::State,
        t: Timestamp,
        data: Vec<Reading>,
        out: &mut Vec<(Timestamp, Self::Out)>,
    );
    /// Scores everything whose release time is below `bound` (`None`: all).
    fn release(
        &mut self,
        st: &mut Self::State,
        bound: Option<Timestamp>,
        out: &mut Vec<(Timestamp, Self::Out)>,
    );
    /// How many alerts `out` holds (for the tally).
    fn alerts(&self, out: &[(Timestamp, Self::Out)]) -> u64;
}

/// Moves the pending items with a release time below `bound` (`None`: all)
/// to `ready`, sorted by `(release, ts, value)`; `false` when none can be.
pub(crate) fn take_released<X>(
    pending: &mut Vec<(Timestamp, X)>,
    released_below: &mut Timestamp,
    bound: Option<Timestamp>,
    ready: &mut Vec<(Timestamp, X)>,
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
    let mut k = 0;
    while k < pending.len() {
        if pending[k].0 < bound {
            ready.push(pending.swap_remove(k));
        } else {
            k += 1;
        }
    }
    ready.sort_unstable_by(|(ka, a), (kb, b)| {
        let (a, b) = (reading(a), reading(b));
        ka.cmp(kb)
            .then(a.ts.cmp(&b.ts))
            .then(a.value.total_cmp(&b.value))
    });
    true
}

/// The shell's outputs.
pub(crate) struct ShellStreams<'scope, O> {
    pub(crate) out: StreamVec<'scope, Timestamp, O>,
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
    const ACKS: usize = 2;
    let worker = stream.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Exchange::new(route));
    let mut control = hooks
        .as_ref()
        .map(|(c, _)| builder.new_input(c.control(), Pipeline));
    let (main_out, out) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let mut main_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<L::Out>>>::from(main_out);
    let mut tally_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();
    let encode = hooks.map(|(c, encode)| {
        c.add_acks(acks);
        encode
    });

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let Snapshot {
            state: mut st,
            mut tally,
        } = state;
        let mut epochs: Epochs<Reading> = Epochs::default();
        // Outputs with the timely time they are stamped at.
        let mut outs: Vec<(Timestamp, L::Out)> = Vec::new();
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut acks_out = acks_out.activate();
            input.for_each(|cap, data| epochs.push_message(&cap, data));
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, ACKS));
            }
            let frontier = input_frontier(frontiers);
            let mut flush = |outs: &mut Vec<(Timestamp, L::Out)>, tally: &mut Tally, logic: &L| {
                if outs.is_empty() {
                    return;
                }
                tally.alerts += logic.alerts(outs);
                let mut out = main_out.activate();
                for (t, o) in outs.drain(..) {
                    out.session(&held[0].delayed(&t)).give(o);
                }
            };
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => logic.batch(&mut st, t, data, &mut outs),
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    logic.release(&mut st, bound, &mut outs);
                    // Outputs before the checkpoint are counted in it.
                    flush(&mut outs, &mut tally, &logic);
                    if let Some(encode) = &encode {
                        let encoded = encode(&st, &tally);
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, tally.clone());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            logic.release(&mut st, frontier, &mut outs);
            flush(&mut outs, &mut tally, &logic);
            if let Some(last) = caps.follow(frontier) {
                tally_out
                    .activate()
                    .session(&last[1])
                    .give(std::mem::take(&mut tally));
            }
        }
    });
    ShellStreams { out, tally }
}
