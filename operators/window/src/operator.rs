//! The window operator shared by every window kind.
//!
//! Lateness is decided from the reading's *batch time* (the timely time it
//! was sent at, which is the source's frontier then), not from how far the
//! frontier happened to have advanced when the batch was applied: a reading
//! is late when the earliest window it belongs to ended, plus the allowed
//! lateness, before its batch time. Together with applying input in time
//! order, results do not depend on scheduling, on the number of workers, or
//! on checkpoints and restarts. Late readings go to the late output with the
//! window they missed.

use std::hash::Hash;

use iotflow_core::checkpoint::{
    Ack, Checkpoints, EncodeFn, Epochs, Snapshot, Step, encoder, input_frontier,
};
use iotflow_core::held::Held;
use iotflow_core::state::{KeyedState, SnapshotError, route};
use iotflow_core::tally::Tally;
use iotflow_types::{
    LateReading, Reading, ResultKind, Stats, Timestamp, WindowResult, stable_hash,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::agg::{Aggregate, StatsAggregate};
use crate::count::CountState;
use crate::session::SessionState;
use crate::sliding::SlidingState;
use crate::spec::{WindowOptions, WindowSpec};
use crate::tumbling_state::TumblingState;

/// Where a reading went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Into windows that have not fired.
    Open,
    /// Into a window that fired, within its allowed lateness: the window is
    /// emitted again as an update.
    Update,
    /// Too late for the window `[start, end)`, the earliest holding it.
    Late { start: Timestamp, end: Timestamp },
}

/// The checkpoints a window operator takes part in, and how it encodes its
/// state for them.
type Hooks<'a, 'scope, K, C> = (&'a Checkpoints<'scope>, EncodeFn<WindowState<K, C>>);

/// Takes `(stamp, results)`: the results of one window firing.
pub(crate) type Emit<'a, K, V> = &'a mut dyn FnMut(Timestamp, Vec<WindowResult<K, V>>);

/// The outputs of a window operator.
#[derive(Debug)]
pub struct WindowStreams<'scope, K, V = Stats> {
    /// Window results: finals stamped with the window's last instant
    /// (`end − 1`), updates with the batch time of the late readings that
    /// caused them, partials with the time they were taken at.
    pub windows: StreamVec<'scope, Timestamp, WindowResult<K, V>>,
    /// Readings too late for their window, with the window they missed.
    pub late: StreamVec<'scope, Timestamp, LateReading>,
    /// Per worker, at the end: windows emitted, readings windowed, late.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// The state of a window operator of any kind, with accumulators `C`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, C: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, C: Deserialize<'de>"
))]
pub enum WindowState<K, C = Stats> {
    /// Tumbling windows.
    Tumbling(TumblingState<K, C>),
    /// Sliding windows.
    Sliding(SlidingState<K, C>),
    /// Session windows.
    Session(SessionState<K, C>),
    /// Count windows.
    Count(CountState<K, C>),
}

impl<K: Eq + Hash + Clone, C: Clone> WindowState<K, C> {
    #[inline]
    fn add<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        key: K,
        ts: Timestamp,
        v: f64,
        t: Timestamp,
    ) -> Added {
        match self {
            WindowState::Tumbling(s) => s.add(agg, key, ts, v, t),
            WindowState::Sliding(s) => s.add(agg, key, ts, v, t),
            WindowState::Session(s) => s.add(agg, key, ts, v, t),
            WindowState::Count(s) => s.add(agg, key, ts, v),
        }
    }

    /// Fires every window closed below `bound` (`None`: all).
    fn fire<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        bound: Option<Timestamp>,
        emit: Emit<'_, K, A::Output>,
    ) {
        match self {
            WindowState::Tumbling(s) => s.fire(agg, bound, emit),
            WindowState::Sliding(s) => s.fire(agg, bound, emit),
            WindowState::Session(s) => s.fire(agg, bound, emit),
            WindowState::Count(s) => s.fire(agg, bound, emit),
        }
    }

    /// Emits what the batch at `t` changed: updates, filled count windows.
    fn after_batch<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        t: Timestamp,
        emit: Emit<'_, K, A::Output>,
    ) {
        match self {
            WindowState::Tumbling(s) => s.after_batch(agg, t, emit),
            WindowState::Sliding(s) => s.after_batch(agg, t, emit),
            WindowState::Session(s) => s.after_batch(agg, t, emit),
            WindowState::Count(s) => s.after_batch(agg, t, emit),
        }
    }

    fn partials<A: Aggregate<Acc = C>>(&self, agg: &A) -> Vec<WindowResult<K, A::Output>> {
        match self {
            WindowState::Tumbling(s) => s.partials(agg),
            WindowState::Sliding(s) => s.partials(agg),
            WindowState::Session(s) => s.partials(agg),
            WindowState::Count(s) => s.partials(agg),
        }
    }

    /// Whether readings must be applied in event-time order within a batch.
    fn ordered(&self) -> bool {
        matches!(self, WindowState::Count(_))
    }
}

impl<K, C> KeyedState for WindowState<K, C>
where
    K: Eq + Hash + Clone + Serialize + DeserializeOwned,
    C: Clone + Serialize + DeserializeOwned,
{
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        let owned = |k: &K| route(stable_hash(k), peers) == worker;
        match self {
            WindowState::Tumbling(s) => s.retain_keys(owned),
            WindowState::Sliding(s) => s.retain_keys(owned),
            WindowState::Session(s) => s.retain_keys(owned),
            WindowState::Count(s) => s.retain_keys(owned),
        }
    }

    fn merge(&mut self, other: Self) {
        match (self, other) {
            (WindowState::Tumbling(a), WindowState::Tumbling(b)) => a.merge(b),
            (WindowState::Sliding(a), WindowState::Sliding(b)) => a.merge(b),
            (WindowState::Session(a), WindowState::Session(b)) => a.merge(b),
            (WindowState::Count(a), WindowState::Count(b)) => a.merge(b),
            // A checkpoint of another window kind belongs to another job.
            _ => {}
        }
    }
}

/// Windows of any [`WindowSpec`] over readings.
pub trait Windowed<'scope> {
    /// Windows per `key` with count, min, max, sum and mean; with
    /// `checkpoints`, state is in every checkpoint and restored from the one
    /// being recovered.
    ///
    /// ```
    /// use iotflow_types::Reading;
    /// use iotflow_window::{WindowSpec, Windowed};
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let rx = timely::example(|scope| {
    ///     let readings = vec![
    ///         Reading::new("d-1", 1_000, "temp", 20.0),
    ///         Reading::new("d-1", 2_500, "temp", 22.0),
    ///         Reading::new("d-1", 9_000, "temp", 30.0),
    ///     ];
    ///     readings
    ///         .to_stream(scope)
    ///         .window("sessions", &WindowSpec::session(3_000), |r: &Reading| r.device.clone(), None)
    ///         .expect("no checkpoint to restore")
    ///         .windows
    ///         .capture()
    /// });
    /// let mut sessions: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// sessions.sort_by_key(|w| w.start);
    /// assert_eq!((sessions[0].start, sessions[0].end, sessions[0].stats.count), (1_000, 5_500, 2));
    /// assert_eq!((sessions[1].start, sessions[1].end, sessions[1].stats.count), (9_000, 12_000, 1));
    /// ```
    fn window<K, F>(
        self,
        name: &str,
        spec: &WindowSpec,
        key: F,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<WindowStreams<'scope, K>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static;

    /// Windows per `key` computing any [`Aggregate`] (a built-in, a tuple
    /// of them, [`Aggregates`](crate::Aggregates) named in configuration, or
    /// your own), with early firing by `options`.
    ///
    /// ```
    /// use iotflow_types::Reading;
    /// use iotflow_window::agg::{Last, Percentiles};
    /// use iotflow_window::{WindowOptions, WindowSpec, Windowed};
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let rx = timely::example(|scope| {
    ///     let readings: Vec<Reading> = (0..100)
    ///         .map(|i| Reading::new("d-1", i * 100, "temp", i as f64))
    ///         .collect();
    ///     let p50 = Percentiles::new([0.5], 0.01).expect("valid");
    ///     readings
    ///         .to_stream(scope)
    ///         .window_with(
    ///             "p50-and-last",
    ///             &WindowSpec::tumbling(5_000),
    ///             |r: &Reading| r.device.clone(),
    ///             (p50, Last),
    ///             &WindowOptions::default(),
    ///             None,
    ///         )
    ///         .expect("no checkpoint to restore")
    ///         .windows
    ///         .capture()
    /// });
    /// let mut windows: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// windows.sort_by_key(|w| w.start);
    /// let (p50, last) = &windows[0].stats;
    /// // The median of 0..=49 is 24.5; the sketch is within 1 % of a value at its rank.
    /// assert!((23.7..=25.3).contains(&p50.as_ref().expect("values")[0]));
    /// assert_eq!(*last, Some(49.0));
    /// ```
    fn window_with<K, F, A>(
        self,
        name: &str,
        spec: &WindowSpec,
        key: F,
        agg: A,
        options: &WindowOptions,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<WindowStreams<'scope, K, A::Output>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
        A: Aggregate;
}

impl<'scope> Windowed<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn window<K, F>(
        self,
        name: &str,
        spec: &WindowSpec,
        key: F,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<WindowStreams<'scope, K>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
    {
        let options = WindowOptions::default();
        self.window_with(name, spec, key, StatsAggregate, &options, checkpoints)
    }

    fn window_with<K, F, A>(
        self,
        name: &str,
        spec: &WindowSpec,
        key: F,
        agg: A,
        options: &WindowOptions,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<WindowStreams<'scope, K, A::Output>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
        A: Aggregate,
    {
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<WindowState<K, A::Acc>>>(name)?,
            None => None,
        };
        let state = restored.unwrap_or(Snapshot {
            state: spec.state(),
            tally: Tally::default(),
        });
        let hooks = checkpoints.map(|c| (c, encoder::<WindowState<K, A::Acc>>()));
        Ok(window_operator(self, name, key, agg, options, state, hooks))
    }
}

/// The window operator: readings exchanged by key, applied in time order
/// once the frontier has passed them (see [`Epochs`]), so the state at any
/// frontier and at every checkpoint is "all readings stamped before it";
/// with `hooks`, part of every checkpoint.
pub(crate) fn window_operator<'scope, K, F, A>(
    stream: StreamVec<'scope, Timestamp, Reading>,
    name: &str,
    key: F,
    agg: A,
    options: &WindowOptions,
    state: Snapshot<WindowState<K, A::Acc>>,
    hooks: Option<Hooks<'_, 'scope, K, A::Acc>>,
) -> WindowStreams<'scope, K, A::Output>
where
    K: Clone + Eq + Hash + Send + 'static,
    F: Fn(&Reading) -> K + Clone + 'static,
    A: Aggregate,
{
    const ACKS: usize = 3;
    let scope = stream.scope();
    let worker = scope.index();
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let route_key = key.clone();
    let pact = Exchange::new(move |r: &Reading| stable_hash(&route_key(r)));
    let mut input = builder.new_input(stream, pact);
    let mut control = hooks
        .as_ref()
        .map(|(c, _)| builder.new_input(c.control(), Pipeline));
    let (windows_out, windows) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let encode = hooks.map(|(c, encode)| {
        c.add_acks(acks);
        encode
    });
    let mut windows_out = OutputBuilder::<
        _,
        CapacityContainerBuilder<Vec<WindowResult<K, A::Output>>>,
    >::from(windows_out);
    let mut late_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<LateReading>>>::from(late_out);
    let mut tally_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();
    let early = options.early_clock();

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let Snapshot {
            state: mut st,
            mut tally,
        } = state;
        let mut epochs: Epochs<Reading> = Epochs::default();
        let mut late_buf: Vec<LateReading> = Vec::new();
        let mut next_early = early.as_ref().map(|(every, clock)| clock.now() + *every);
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut windows_out = windows_out.activate();
            let mut late_out = late_out.activate();
            let mut acks_out = acks_out.activate();
            input.for_each(|cap, data| epochs.push_message(&cap, data));
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, ACKS));
            }
            let frontier = input_frontier(frontiers);
            let now = *held[0].time();
            let mut emit =
                |at: Timestamp, mut results: Vec<WindowResult<K, A::Output>>, tally: &mut Tally| {
                    let n = results.len() as u64;
                    match results.first().map(|r| r.kind) {
                        Some(ResultKind::Final) => tally.windows += n,
                        Some(ResultKind::Update) => tally.window_updates += n,
                        Some(ResultKind::Partial) => tally.window_partials += n,
                        None => return,
                    }
                    let cap = held[0].delayed(&now.max(at));
                    // A window's results go out as one container, uncopied.
                    windows_out.session(&cap).give_container(&mut results);
                };
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, mut data) => {
                    // Everything that closed before `t` fires first, so what
                    // a reading joins depends on its batch time only, not on
                    // how the frontier advanced.
                    st.fire(&agg, Some(t), &mut |s, r| emit(s, r, &mut tally));
                    if st.ordered() {
                        data.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.value.total_cmp(&b.value)));
                    }
                    for r in data {
                        match st.add(&agg, key(&r), r.ts, r.value, t) {
                            // Counted once, however many windows it is in.
                            Added::Open | Added::Update => tally.windowed += 1,
                            Added::Late { start, end } => late_buf.push(LateReading {
                                reading: r,
                                window_start: start,
                                window_end: end,
                            }),
                        }
                    }
                    st.after_batch(&agg, t, &mut |s, r| emit(s, r, &mut tally));
                    if !late_buf.is_empty() {
                        tally.late += late_buf.len() as u64;
                        let at = held[1].delayed(&t.max(now));
                        late_out.session(&at).give_iterator(late_buf.drain(..));
                    }
                }
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    st.fire(&agg, bound, &mut |s, r| emit(s, r, &mut tally));
                    if let Some(encode) = &encode {
                        let encoded = encode(&st, &tally);
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, tally.clone());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            st.fire(&agg, frontier, &mut |s, r| emit(s, r, &mut tally));
            if let (Some((every, clock)), Some(due), Some(_)) =
                (&early, next_early.as_mut(), frontier)
            {
                let wall = clock.now();
                if wall >= *due {
                    emit(now, st.partials(&agg), &mut tally);
                    *due = wall + *every;
                }
                activator.activate_after(due.saturating_sub(wall));
            }
            if let Some(last) = caps.follow(frontier) {
                tally_out
                    .activate()
                    .session(&last[2])
                    .give(std::mem::take(&mut tally));
            }
        }
    });
    WindowStreams {
        windows,
        late,
        tally,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotflow_core::state::{decode, encode, rescale};

    /// Feeds (key, ts, value) in batches stamped at the running watermark,
    /// snapshots after `cut` readings, restores on `new` workers (from
    /// `old`), and returns every result.
    fn run(spec: &WindowSpec, old: usize, new: usize, cut: usize) -> Vec<WindowResult<String>> {
        let data: Vec<(String, u64, f64)> = (0..3000u64)
            .map(|i| {
                let jitter = (i * 7919) % 1500;
                (
                    format!("d-{}", i % 23),
                    2_000 + i * 97 - jitter,
                    (i % 13) as f64 * 0.25,
                )
            })
            .collect();
        let agg = StatsAggregate;
        let mut out = Vec::new();
        let mut emit = |_: Timestamp, r: Vec<WindowResult<String>>| out.extend(r);
        let mut states: Vec<WindowState<String>> = (0..old).map(|_| spec.state()).collect();
        let mut max_ts: Timestamp = 0;
        for (i, (k, ts, v)) in data.iter().enumerate() {
            let t = max_ts.saturating_sub(1_500);
            if i == cut {
                // Checkpoint at the current batch time, then restore.
                for st in &mut states {
                    st.fire(&agg, Some(t), &mut emit);
                }
                let snaps: Vec<Vec<u8>> =
                    states.iter().map(|s| encode(s).expect("encode")).collect();
                states = (0..new)
                    .map(|w| {
                        let parts = snaps.iter().map(|b| decode(b).expect("decode")).collect();
                        rescale(parts, w, new).expect("parts")
                    })
                    .collect();
            }
            let peers = states.len();
            let st = &mut states[route(stable_hash(k), peers)];
            st.fire(&agg, Some(t), &mut emit);
            st.add(&agg, k.clone(), *ts, *v, t);
            st.after_batch(&agg, t, &mut emit);
            max_ts = max_ts.max(*ts);
        }
        for st in &mut states {
            st.fire(&agg, None, &mut emit);
        }
        out.sort_by(|a, b| {
            (&a.key, a.start, a.end, a.kind as u8).cmp(&(&b.key, b.start, b.end, b.kind as u8))
        });
        out
    }

    #[test]
    fn snapshots_rescale_without_changing_results() {
        for spec in [
            WindowSpec::sliding(6_000, 2_000),
            WindowSpec::sliding(6_000, 2_000).with_allowed_lateness(700),
            WindowSpec::session(700),
            WindowSpec::session(700).with_allowed_lateness(400),
            WindowSpec::tumbling(5_000),
            WindowSpec::tumbling(5_000).with_allowed_lateness(900),
            WindowSpec::count(7),
        ] {
            let reference = run(&spec, 1, 1, usize::MAX);
            assert!(reference.len() > 50, "{spec:?}");
            for (old, new, cut) in [(1, 2, 1000), (2, 1, 1700), (2, 3, 400), (3, 2, 2999)] {
                assert_eq!(
                    run(&spec, old, new, cut),
                    reference,
                    "{spec:?} {old}→{new} at {cut}"
                );
            }
        }
    }
}
