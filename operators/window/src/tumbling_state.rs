//! Tumbling windows, window-major.
//!
//! A tumbling window is one pane, so it needs none of the sliding window's
//! machinery: open windows are kept as window start → key → accumulator.
//! A reading is one hash-map update; a window fires by taking its map whole
//! and walking it once. This is the fleet pipeline's window, and its layout
//! is what makes it fast: a firing touches only the keys that had data in
//! that window, in one contiguous table.
//!
//! With allowed lateness, a fired window's map is kept until the watermark
//! passes its end plus the allowed lateness; a reading for it in the
//! meantime goes in, and the window is emitted again as an
//! [`ResultKind::Update`] at the end of the batch.

use std::collections::BTreeMap;
use std::hash::Hash;

use iotflow_types::{ResultKind, Timestamp, WindowResult};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::agg::Aggregate;
use crate::operator::{Added, Emit};

/// The tumbling windows of one worker: window start → key → accumulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, C: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, C: Deserialize<'de>"
))]
pub struct TumblingState<K, C> {
    size: u64,
    allowed: u64,
    /// Windows whose start is below this have fired.
    closed_below: Timestamp,
    /// Windows not fired yet.
    open: BTreeMap<Timestamp, FxHashMap<K, C>>,
    /// Fired windows still taking late readings.
    kept: BTreeMap<Timestamp, FxHashMap<K, C>>,
    /// Keys in the last fired window: a new window's map starts with that
    /// capacity instead of growing (and rehashing) from empty.
    keys_hint: usize,
    /// (key, window start) changed by late readings of the current batch;
    /// emptied at the end of every batch, so never in a snapshot.
    #[serde(skip)]
    changed: Vec<(K, Timestamp)>,
}

impl<K: Eq + Hash + Clone, C: Clone> TumblingState<K, C> {
    /// Windows of `size` ms, updated by readings up to `allowed` ms after
    /// they fire.
    pub fn new(size: u64, allowed: u64) -> Self {
        TumblingState {
            size: size.max(1),
            allowed,
            closed_below: 0,
            open: BTreeMap::new(),
            kept: BTreeMap::new(),
            keys_hint: 0,
            changed: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn add<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        key: K,
        ts: Timestamp,
        value: f64,
        t: Timestamp,
    ) -> Added {
        let start = ts - ts % self.size;
        let last = start + self.size - 1;
        if last + self.allowed < t {
            return Added::Late {
                start,
                end: start + self.size,
            };
        }
        if start >= self.closed_below {
            let hint = self.keys_hint;
            let window = self
                .open
                .entry(start)
                .or_insert_with(|| FxHashMap::with_capacity_and_hasher(hint, Default::default()));
            agg.add(window.entry(key).or_insert_with(|| agg.init()), ts, value);
            return Added::Open;
        }
        let window = self.kept.entry(start).or_default();
        agg.add(
            window.entry(key.clone()).or_insert_with(|| agg.init()),
            ts,
            value,
        );
        self.changed.push((key, start));
        Added::Update
    }

    /// Fires every window whose last instant is below `bound` (`None`:
    /// all), and forgets kept windows past their allowed lateness.
    pub(crate) fn fire<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        bound: Option<Timestamp>,
        emit: Emit<'_, K, A::Output>,
    ) {
        let closed =
            |start: Timestamp, extra: u64| bound.is_none_or(|b| start + self.size - 1 + extra < b);
        while let Some((&start, _)) = self.open.first_key_value() {
            if !closed(start, 0) {
                break;
            }
            let Some((_, keys)) = self.open.pop_first() else {
                break;
            };
            self.keys_hint = keys.len();
            let end = start + self.size;
            let results = keys
                .iter()
                .map(|(key, acc)| WindowResult {
                    key: key.clone(),
                    start,
                    end,
                    stats: agg.finish(acc),
                    kind: ResultKind::Final,
                })
                .collect();
            emit(end - 1, results);
            if self.allowed > 0 {
                self.kept.insert(start, keys);
            }
        }
        while let Some((&start, _)) = self.kept.first_key_value() {
            if !closed(start, self.allowed) {
                break;
            }
            self.kept.pop_first();
        }
        // Everything up to the bound is closed, whether or not it had data.
        self.closed_below = match bound {
            // Window s is closed iff s + size − 1 < b.
            Some(b) => {
                let closed = b.saturating_sub(self.size - 1).div_ceil(self.size) * self.size;
                self.closed_below.max(closed)
            }
            None => Timestamp::MAX,
        };
    }

    /// Emits, stamped `t`, the fired windows late readings of the batch at
    /// `t` changed.
    pub(crate) fn after_batch<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        t: Timestamp,
        emit: Emit<'_, K, A::Output>,
    ) {
        if self.changed.is_empty() {
            return;
        }
        let mut seen: FxHashSet<(K, Timestamp)> = FxHashSet::default();
        let mut out = Vec::new();
        for (key, start) in std::mem::take(&mut self.changed) {
            let Some(acc) = self.kept.get(&start).and_then(|w| w.get(&key)) else {
                continue;
            };
            if seen.insert((key.clone(), start)) {
                out.push(WindowResult {
                    key,
                    start,
                    end: start + self.size,
                    stats: agg.finish(acc),
                    kind: ResultKind::Update,
                });
            }
        }
        if !out.is_empty() {
            emit(t, out);
        }
    }

    /// Each key's earliest open window, as it stands.
    pub(crate) fn partials<A: Aggregate<Acc = C>>(
        &self,
        agg: &A,
    ) -> Vec<WindowResult<K, A::Output>> {
        let mut seen: FxHashSet<&K> = FxHashSet::default();
        let mut out = Vec::new();
        for (&start, keys) in &self.open {
            for (key, acc) in keys {
                if seen.insert(key) {
                    out.push(WindowResult {
                        key: key.clone(),
                        start,
                        end: start + self.size,
                        stats: agg.finish(acc),
                        kind: ResultKind::Partial,
                    });
                }
            }
        }
        out
    }

    pub(crate) fn retain_keys(&mut self, mut owned: impl FnMut(&K) -> bool) {
        for windows in [&mut self.open, &mut self.kept] {
            for keys in windows.values_mut() {
                keys.retain(|k, _| owned(k));
            }
            windows.retain(|_, keys| !keys.is_empty());
        }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        // Parts of one consistent snapshot closed the same windows, and
        // their keys are disjoint.
        self.closed_below = self.closed_below.max(other.closed_below);
        self.keys_hint = self.keys_hint.max(other.keys_hint);
        for (mine, theirs) in [(&mut self.open, other.open), (&mut self.kept, other.kept)] {
            for (start, keys) in theirs {
                mine.entry(start).or_default().extend(keys);
            }
        }
    }
}
