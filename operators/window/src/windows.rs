//! Sliding (hopping) and session windows, and tumbling windows as the
//! sliding case `slide = size`.
//!
//! * **Sliding** windows `[k·slide, k·slide + size)` share work through
//!   *panes* of `slide` ms: a reading is folded into exactly one pane (one
//!   hash-map update, whatever `size / slide`), and a window's result is the
//!   merge of its `size / slide` panes when it fires. Panes are dropped once
//!   the last window that needs them has fired, so memory is bounded by the
//!   open windows.
//! * **Session** windows per key: readings closer than `gap` in event time
//!   belong to one session `[first, last + gap)`; a reading that bridges two
//!   sessions merges them. A session fires once the frontier passes its end.
//!
//! Lateness is decided from the reading's *batch time* (the timely time it
//! was sent at, which is the source's frontier then), not from how far the
//! frontier happened to have advanced when the batch was applied: a reading
//! is late when the earliest window it belongs to ends (plus the allowed
//! lateness) before its batch time. Together with applying input in time
//! order, results do not depend on scheduling, on the number of workers, or
//! on checkpoints and restarts. Late readings go to the late output.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use iotflow_core::checkpoint::{
    Ack, Checkpoints, EncodeFn, Epochs, Snapshot, Step, encoder, input_frontier,
};
use iotflow_core::event_time::Lateness;
use iotflow_core::held::Held;
use iotflow_core::state::{KeyedState, SnapshotError, route};
use iotflow_core::tally::Tally;
use iotflow_types::{Reading, Stats, Timestamp, WindowResult, stable_hash};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::tumbling::WindowStreams;

/// Which windows to cut (the `[window]` of a job in TOML, with `kind`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSpec {
    /// Fixed windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window size (ms).
        size_ms: u64,
        /// How long after the watermark passed a window it still accepts
        /// readings (ms).
        #[serde(default)]
        allowed_lateness_ms: u64,
    },
    /// Overlapping windows `[k·slide, k·slide + size)`; `size` must be a
    /// multiple of `slide`.
    Sliding {
        /// Window size (ms).
        size_ms: u64,
        /// Distance between window starts (ms).
        slide_ms: u64,
        /// Allowed lateness (ms).
        #[serde(default)]
        allowed_lateness_ms: u64,
    },
    /// Per-key sessions closed by `gap` ms without readings.
    Session {
        /// Inactivity that ends a session (ms).
        gap_ms: u64,
        /// Allowed lateness (ms).
        #[serde(default)]
        allowed_lateness_ms: u64,
    },
}

impl WindowSpec {
    /// Sliding windows of `size`, every `slide`.
    pub fn sliding(size_ms: u64, slide_ms: u64) -> Self {
        WindowSpec::Sliding {
            size_ms,
            slide_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Sessions closed by `gap_ms` of inactivity.
    pub fn session(gap_ms: u64) -> Self {
        WindowSpec::Session {
            gap_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Tumbling windows of `size_ms`.
    pub fn tumbling(size_ms: u64) -> Self {
        WindowSpec::Tumbling {
            size_ms,
            allowed_lateness_ms: 0,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), iotflow_core::Error> {
        let bad = |m: String| Err(iotflow_core::Error::Config(m));
        match *self {
            WindowSpec::Tumbling { size_ms: 0, .. } => bad("window size must be > 0".into()),
            WindowSpec::Sliding {
                size_ms, slide_ms, ..
            } => {
                if slide_ms == 0 || size_ms == 0 {
                    bad("sliding window size and slide must be > 0".into())
                } else if size_ms % slide_ms != 0 {
                    bad(format!(
                        "sliding window size {size_ms} ms must be a multiple of its slide {slide_ms} ms"
                    ))
                } else {
                    Ok(())
                }
            }
            WindowSpec::Session { gap_ms: 0, .. } => bad("session gap must be > 0".into()),
            _ => Ok(()),
        }
    }

    /// The lateness rule an event-time source in front of these windows
    /// should apply: a reading is late once the earliest window it belongs
    /// to has fired.
    pub fn lateness(&self) -> Lateness {
        match *self {
            WindowSpec::Tumbling {
                size_ms,
                allowed_lateness_ms,
            } => Lateness::Window {
                size_ms,
                allowed_ms: allowed_lateness_ms,
            },
            WindowSpec::Sliding {
                slide_ms,
                allowed_lateness_ms,
                ..
            } => Lateness::Window {
                size_ms: slide_ms,
                allowed_ms: allowed_lateness_ms,
            },
            WindowSpec::Session {
                gap_ms,
                allowed_lateness_ms,
            } => Lateness::Gap {
                gap_ms,
                allowed_ms: allowed_lateness_ms,
            },
        }
    }

    fn state<K: Eq + Hash + Clone>(&self) -> WindowState<K> {
        match *self {
            WindowSpec::Tumbling {
                size_ms,
                allowed_lateness_ms,
            } => WindowState::Sliding(SlidingState::new(size_ms, size_ms, allowed_lateness_ms)),
            WindowSpec::Sliding {
                size_ms,
                slide_ms,
                allowed_lateness_ms,
            } => WindowState::Sliding(SlidingState::new(size_ms, slide_ms, allowed_lateness_ms)),
            WindowSpec::Session {
                gap_ms,
                allowed_lateness_ms,
            } => WindowState::Session(SessionState::new(gap_ms, allowed_lateness_ms)),
        }
    }
}

/// The panes of one key: future panes still receiving readings, and the
/// panes of the current window in a two-stack FIFO aggregate, so sliding the
/// window by one pane costs O(1) merges amortized, whatever `size / slide`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct KeyPanes {
    /// Panes at or after the next window's end, sorted by start (a few at
    /// most: readings run ahead of the frontier by the disorder bound).
    pending: Vec<(Timestamp, Stats)>,
    /// Starts of the panes in the stacks, oldest first.
    entered: VecDeque<Timestamp>,
    /// Oldest panes: `front[i]` aggregates panes `i..` of the stack (the top,
    /// the last element, is the oldest pane alone).
    front: Vec<Stats>,
    /// Newest panes and their aggregate.
    back: Vec<Stats>,
    back_agg: Stats,
}

impl KeyPanes {
    fn push(&mut self, pane: Timestamp, stats: Stats) {
        self.entered.push_back(pane);
        self.back_agg.merge(&stats);
        self.back.push(stats);
    }

    fn pop(&mut self) {
        if self.front.is_empty() {
            // Move the back stack over, newest first, as suffix aggregates.
            let mut acc = Stats::default();
            for s in self.back.drain(..).rev() {
                acc.merge(&s);
                self.front.push(acc);
            }
            self.back_agg = Stats::default();
        }
        self.front.pop();
        self.entered.pop_front();
    }

    fn query(&self) -> Stats {
        let mut out = self.back_agg;
        if let Some(f) = self.front.last() {
            out.merge(f);
        }
        out
    }

    /// Slides to the window `[end − size, end)`; `None` if it is empty.
    fn slide_to(&mut self, end: Timestamp, size: u64) -> Option<Stats> {
        let due = self.pending.partition_point(|(p, _)| *p < end);
        for i in 0..due {
            let (pane, stats) = self.pending[i];
            self.push(pane, stats);
        }
        self.pending.drain(..due);
        let start = end - size;
        while self.entered.front().is_some_and(|p| *p < start) {
            self.pop();
        }
        (!self.entered.is_empty()).then(|| self.query())
    }

    fn first_pane(&self) -> Option<Timestamp> {
        match (self.entered.front(), self.pending.first()) {
            (Some(e), _) => Some(*e),
            (None, Some((p, _))) => Some(*p),
            (None, None) => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.entered.is_empty() && self.pending.is_empty()
    }
}

/// Open sliding windows: per key, its panes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub struct SlidingState<K> {
    size: u64,
    slide: u64,
    allowed: u64,
    keys: FxHashMap<K, KeyPanes>,
    /// Windows ending at or before this have fired.
    fired_to: Timestamp,
}

impl<K: Eq + Hash + Clone> SlidingState<K> {
    /// Windows of `size` every `slide` (`size` a multiple of `slide`).
    pub fn new(size: u64, slide: u64, allowed: u64) -> Self {
        let slide = slide.max(1);
        SlidingState {
            size: size.max(slide) / slide * slide,
            slide,
            allowed,
            keys: FxHashMap::default(),
            fired_to: 0,
        }
    }

    /// Folds a reading stamped at batch time `t` in; `false` if it is late.
    fn add(&mut self, key: K, ts: Timestamp, value: f64, t: Timestamp) -> bool {
        let pane = ts - ts % self.slide;
        // The earliest window holding the pane ends at pane + slide (or at
        // `size`, for the first windows of time).
        let first_end = (pane + self.slide).max(self.size);
        if first_end - 1 + self.allowed < t || first_end <= self.fired_to {
            return false;
        }
        let pending = &mut self.keys.entry(key).or_default().pending;
        match pending.iter().rposition(|(p, _)| *p <= pane) {
            Some(i) if pending[i].0 == pane => pending[i].1.add(value),
            at => {
                let mut stats = Stats::default();
                stats.add(value);
                pending.insert(at.map_or(0, |i| i + 1), (pane, stats));
            }
        }
        true
    }

    /// Fires every window whose last instant (+ allowed) is below `bound`
    /// (`None`: all), calling `emit(stamp, results)` per window.
    fn fire(
        &mut self,
        bound: Option<Timestamp>,
        emit: &mut impl FnMut(Timestamp, Vec<WindowResult<K>>),
    ) {
        let closed = |end: Timestamp| bound.is_none_or(|b| end - 1 + self.allowed < b);
        let mut end = (self.fired_to + self.slide).max(self.size);
        while closed(end) {
            if self.keys.is_empty() {
                break;
            }
            let (size, start) = (self.size, end - self.size);
            let mut out = Vec::new();
            self.keys.retain(|key, panes| {
                if let Some(stats) = panes.slide_to(end, size) {
                    out.push(WindowResult {
                        key: key.clone(),
                        start,
                        end,
                        stats,
                    });
                }
                !panes.is_empty()
            });
            self.fired_to = end;
            if out.is_empty() {
                // No data in this window: jump to the first one that has.
                let first = self.keys.values().filter_map(KeyPanes::first_pane).min();
                let Some(first) = first else { break };
                let next = (first + self.slide).max(self.size);
                end = next.max(end + self.slide);
                // The windows skipped held nothing: they count as fired, so
                // the next call starts here instead of scanning again.
                self.fired_to = end - self.slide;
            } else {
                emit(end - 1 + self.allowed, out);
                end += self.slide;
            }
        }
        if self.keys.is_empty()
            && let Some(b) = bound
        {
            // Windows that closed without data still count as fired.
            let last_closed = b.saturating_sub(self.allowed);
            self.fired_to = self.fired_to.max(last_closed - last_closed % self.slide);
        }
    }
}

/// A session: `[start, end)` with its aggregate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    end: Timestamp,
    stats: Stats,
}

/// Open sessions per key, and their ends in firing order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub struct SessionState<K> {
    gap: u64,
    allowed: u64,
    sessions: FxHashMap<K, BTreeMap<Timestamp, Session>>,
    /// Session end → keys (entries go stale when sessions merge; checked
    /// when popped).
    by_end: BTreeMap<Timestamp, Vec<K>>,
}

impl<K: Eq + Hash + Clone> SessionState<K> {
    /// Sessions closed by `gap` ms of inactivity.
    pub fn new(gap: u64, allowed: u64) -> Self {
        SessionState {
            gap: gap.max(1),
            allowed,
            sessions: FxHashMap::default(),
            by_end: BTreeMap::new(),
        }
    }

    fn add(&mut self, key: K, ts: Timestamp, value: f64, t: Timestamp) -> bool {
        if ts + self.gap - 1 + self.allowed < t {
            return false;
        }
        let (mut start, mut end) = (ts, ts + self.gap);
        let mut stats = Stats::default();
        stats.add(value);
        let sessions = self.sessions.entry(key.clone()).or_default();
        // Sessions that touch [ts, ts + gap) merge with it.
        let touching: Vec<Timestamp> = sessions
            .range(..=end)
            .rev()
            .take_while(|(_, s)| s.end >= start)
            .map(|(s, _)| *s)
            .collect();
        for s in touching {
            if let Some(old) = sessions.remove(&s) {
                start = start.min(s);
                end = end.max(old.end);
                stats.merge(&old.stats);
            }
        }
        sessions.insert(start, Session { end, stats });
        self.by_end.entry(end).or_default().push(key);
        true
    }

    fn fire(
        &mut self,
        bound: Option<Timestamp>,
        emit: &mut impl FnMut(Timestamp, Vec<WindowResult<K>>),
    ) {
        while let Some((&end, _)) = self.by_end.first_key_value() {
            if bound.is_some_and(|b| end - 1 + self.allowed >= b) {
                break;
            }
            let Some((_, keys)) = self.by_end.pop_first() else {
                break;
            };
            let mut out = Vec::new();
            for key in keys {
                let Some(sessions) = self.sessions.get_mut(&key) else {
                    continue;
                };
                // The session of this key that ends here, if it still does.
                let found = sessions
                    .iter()
                    .find(|(_, s)| s.end == end)
                    .map(|(start, _)| *start);
                if let Some(start) = found
                    && let Some(s) = sessions.remove(&start)
                {
                    out.push(WindowResult {
                        key: key.clone(),
                        start,
                        end,
                        stats: s.stats,
                    });
                }
                if sessions.is_empty() {
                    self.sessions.remove(&key);
                }
            }
            if !out.is_empty() {
                emit(end - 1 + self.allowed, out);
            }
        }
    }
}

/// The state of a window operator of any kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub enum WindowState<K> {
    /// Sliding or tumbling windows.
    Sliding(SlidingState<K>),
    /// Session windows.
    Session(SessionState<K>),
}

impl<K: Eq + Hash + Clone> WindowState<K> {
    fn add(&mut self, key: K, ts: Timestamp, value: f64, t: Timestamp) -> bool {
        match self {
            WindowState::Sliding(s) => s.add(key, ts, value, t),
            WindowState::Session(s) => s.add(key, ts, value, t),
        }
    }

    fn fire(
        &mut self,
        bound: Option<Timestamp>,
        emit: &mut impl FnMut(Timestamp, Vec<WindowResult<K>>),
    ) {
        match self {
            WindowState::Sliding(s) => s.fire(bound, emit),
            WindowState::Session(s) => s.fire(bound, emit),
        }
    }
}

impl<K> KeyedState for WindowState<K>
where
    K: Eq + Hash + Clone + Serialize + DeserializeOwned,
{
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        let owned = |k: &K| route(stable_hash(k), peers) == worker;
        match self {
            WindowState::Sliding(s) => s.keys.retain(|k, _| owned(k)),
            WindowState::Session(s) => {
                s.sessions.retain(|k, _| owned(k));
                for keys in s.by_end.values_mut() {
                    keys.retain(|k| owned(k));
                }
                s.by_end.retain(|_, keys| !keys.is_empty());
            }
        }
    }

    fn merge(&mut self, other: Self) {
        match (self, other) {
            (WindowState::Sliding(a), WindowState::Sliding(b)) => {
                // Keys are disjoint between the parts of one snapshot.
                a.fired_to = a.fired_to.max(b.fired_to);
                a.keys.extend(b.keys);
            }
            (WindowState::Session(a), WindowState::Session(b)) => {
                // Keys are disjoint between the parts of one snapshot.
                a.sessions.extend(b.sessions);
                for (end, keys) in b.by_end {
                    a.by_end.entry(end).or_default().extend(keys);
                }
            }
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
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<WindowState<K>>>(name)?,
            None => None,
        };
        let state = restored.unwrap_or(Snapshot {
            state: spec.state::<K>(),
            tally: Tally::default(),
        });
        let hooks = checkpoints.map(|c| (c, encoder::<WindowState<K>>()));
        Ok(window_operator(self, name, key, state, hooks))
    }
}

/// What the window operator needs of its state: fold readings in, fire
/// closed windows.
pub(crate) trait WindowLogic<K>: 'static {
    /// Folds a reading sent at batch time `t` in; `false` if it is late.
    fn add(&mut self, key: K, ts: Timestamp, value: f64, t: Timestamp) -> bool;
    /// Fires every window closed below `bound` (`None`: all), calling
    /// `emit(stamp, results)` per window, stamped below `bound`.
    fn fire(
        &mut self,
        bound: Option<Timestamp>,
        emit: &mut impl FnMut(Timestamp, Vec<WindowResult<K>>),
    );
}

impl<K: Eq + Hash + Clone + 'static> WindowLogic<K> for WindowState<K> {
    fn add(&mut self, key: K, ts: Timestamp, value: f64, t: Timestamp) -> bool {
        WindowState::add(self, key, ts, value, t)
    }
    fn fire(
        &mut self,
        bound: Option<Timestamp>,
        emit: &mut impl FnMut(Timestamp, Vec<WindowResult<K>>),
    ) {
        WindowState::fire(self, bound, emit);
    }
}

/// The window operator shared by every window kind: readings exchanged by
/// key, applied in time order once the frontier has passed them (see
/// [`Epochs`]), so the state at any frontier and at every checkpoint is "all
/// readings stamped before it"; with `hooks`, part of every checkpoint.
pub(crate) fn window_operator<'scope, K, F, S>(
    stream: StreamVec<'scope, Timestamp, Reading>,
    name: &str,
    key: F,
    state: Snapshot<S>,
    hooks: Option<(&Checkpoints<'scope>, EncodeFn<S>)>,
) -> WindowStreams<'scope, K>
where
    K: Clone + Eq + Hash + Send + 'static,
    F: Fn(&Reading) -> K + Clone + 'static,
    S: WindowLogic<K>,
{
    const ACKS: usize = 3;
    let worker = stream.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
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
    let mut windows_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<WindowResult<K>>>>::from(windows_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Reading>>>::from(late_out);
    let mut tally_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let Snapshot {
            state: mut st,
            mut tally,
        } = state;
        let mut epochs: Epochs<Reading> = Epochs::default();
        let mut late_buf: Vec<Reading> = Vec::new();
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
            let mut emit = |at: Timestamp, mut results: Vec<WindowResult<K>>, tally: &mut Tally| {
                tally.windows += results.len() as u64;
                let cap = held[0].delayed(&now.max(at));
                // A window's results go out as one container, uncopied.
                windows_out.session(&cap).give_container(&mut results);
            };
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => {
                    // Everything that closed before `t` fires first, so what
                    // a reading joins depends on its batch time only, not on
                    // how the frontier advanced.
                    st.fire(Some(t), &mut |s, r| emit(s, r, &mut tally));
                    for r in data {
                        if st.add(key(&r), r.ts, r.value, t) {
                            // Counted once, however many windows it is in.
                            tally.windowed += 1;
                        } else {
                            late_buf.push(r);
                        }
                    }
                    if !late_buf.is_empty() {
                        tally.late += late_buf.len() as u64;
                        let at = held[1].delayed(&t.max(now));
                        late_out.session(&at).give_iterator(late_buf.drain(..));
                    }
                }
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    st.fire(bound, &mut |s, r| emit(s, r, &mut tally));
                    if let Some(encode) = &encode {
                        let encoded = encode(&st, &tally);
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, tally.clone());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            st.fire(frontier, &mut |s, r| emit(s, r, &mut tally));
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
        let mut out = Vec::new();
        let mut emit = |_: Timestamp, r: Vec<WindowResult<String>>| out.extend(r);
        let mut states: Vec<WindowState<String>> = (0..old).map(|_| spec.state()).collect();
        let mut max_ts: Timestamp = 0;
        for (i, (k, ts, v)) in data.iter().enumerate() {
            if i == cut {
                // Checkpoint at the current batch time, then restore.
                let t = max_ts.saturating_sub(1_500);
                for st in &mut states {
                    st.fire(Some(t), &mut emit);
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
            let t = max_ts.saturating_sub(1_500);
            let peers = states.len();
            let st = &mut states[route(stable_hash(k), peers)];
            st.fire(Some(t), &mut emit);
            st.add(k.clone(), *ts, *v, t);
            max_ts = max_ts.max(*ts);
        }
        for st in &mut states {
            st.fire(None, &mut emit);
        }
        out.sort_by(|a, b| (&a.key, a.start, a.end).cmp(&(&b.key, b.start, b.end)));
        out
    }

    #[test]
    fn snapshots_rescale_without_changing_results() {
        for spec in [
            WindowSpec::sliding(6_000, 2_000),
            WindowSpec::session(700),
            WindowSpec::tumbling(5_000),
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
