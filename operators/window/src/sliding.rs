//! Sliding windows on panes.
//!
//! Windows are `[k·slide, k·slide + size)` with `size` a multiple of
//! `slide`. A reading is folded into exactly one *pane* of `slide` ms (one
//! hash-map update and one accumulator add, whatever `size / slide`); a
//! window is the merge of its `size / slide` panes.
//!
//! Per key, the panes live in one ring, sorted by start, in four sections:
//!
//! ```text
//! [ retired | front stack | back stack | pending ]
//!   out of the window,  the window that fired last,  after its end
//!   kept for late
//!   readings
//! ```
//!
//! The window is a FIFO of panes aggregated with two stacks: the back
//! stack's panes are summed in one accumulator as they enter; the front
//! stack stores, for each of its panes, the merge of it and every newer pane
//! of the front stack, so the oldest pane leaves by moving a boundary. When
//! the front stack is empty and a pane must leave, the back stack is turned
//! into a front stack in one pass. Each pane is merged a constant number of
//! times: sliding by one pane costs O(1) merges amortized, whatever
//! `size / slide`.
//!
//! What makes it fast is what the slide does *not* touch. A key's entry in
//! the hash map carries the window's current aggregate and the starts of its
//! next pending pane and of its oldest pane, so sliding a key whose window
//! gains and loses no pane reads only that entry; the ring, a separate
//! allocation, is touched only when a pane enters or leaves.
//!
//! With allowed lateness, panes stay in the ring (retired) until the last
//! window holding them can no longer be updated. A reading for a window that
//! already fired, within the allowed lateness, goes into its pane; after the
//! batch, each window it changed is recomputed from its panes and emitted as
//! an [`ResultKind::Update`]. That costs O((size/slide)²) merges per changed
//! key and batch: fine for the rare late reading, and the price of keeping
//! the on-time path O(1).

use std::collections::VecDeque;
use std::hash::Hash;

use iotflow_types::{ResultKind, Timestamp, WindowResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::agg::Aggregate;
use crate::operator::{Added, Emit};

const NONE: Timestamp = Timestamp::MAX;

/// One pane: its start, its aggregate, and, in the front stack, the merge of
/// it and every newer front pane.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Slot<C> {
    start: Timestamp,
    pane: C,
    suffix: Option<C>,
}

/// The panes of one key (see the [module docs](self)).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyRing<C> {
    /// The earliest pending pane, kept here rather than in `slots`: most
    /// readings go to it, and it enters the window without a visit to
    /// `slots`, a separate allocation. Earlier than every pending slot.
    head: Option<(Timestamp, C)>,
    slots: VecDeque<Slot<C>>,
    /// `slots[..retired]` have left the window.
    retired: usize,
    /// `slots[retired..front_end]`: the front stack, oldest first.
    front_end: usize,
    /// `slots[front_end..back_end]`: the back stack; `slots[back_end..]`
    /// are pending.
    back_end: usize,
    /// Merge of the back stack.
    back_agg: C,
    /// The window's aggregate after the last slide (unless `stale`).
    current: C,
    stale: bool,
    /// Start of `slots[retired]` if the window holds a pane, or `NONE`.
    oldest: Timestamp,
}

impl<C: Clone> KeyRing<C> {
    fn new<A: Aggregate<Acc = C>>(agg: &A) -> Self {
        KeyRing {
            head: None,
            slots: VecDeque::new(),
            retired: 0,
            front_end: 0,
            back_end: 0,
            back_agg: agg.init(),
            current: agg.init(),
            stale: false,
            oldest: NONE,
        }
    }

    /// Folds a reading into pending pane `pane` (at or after the window's end).
    #[inline]
    fn add_pending<A: Aggregate<Acc = C>>(&mut self, agg: &A, pane: Timestamp, ts: u64, v: f64) {
        let fresh = || {
            let mut acc = agg.init();
            agg.add(&mut acc, ts, v);
            acc
        };
        match &mut self.head {
            Some((start, acc)) if *start == pane => return agg.add(acc, ts, v),
            Some((start, _)) if *start < pane => {}
            _ => {
                // A new earliest pending pane; the old one waits in `slots`.
                if let Some((start, pane)) = self.head.replace((pane, fresh())) {
                    let slot = Slot {
                        start,
                        pane,
                        suffix: None,
                    };
                    self.slots.insert(self.back_end, slot);
                }
                return;
            }
        }
        let mut i = self.slots.len();
        while i > self.back_end && self.slots[i - 1].start > pane {
            i -= 1;
        }
        if i > self.back_end && self.slots[i - 1].start == pane {
            agg.add(&mut self.slots[i - 1].pane, ts, v);
            return;
        }
        let slot = Slot {
            start: pane,
            pane: fresh(),
            suffix: None,
        };
        self.slots.insert(i, slot);
    }

    /// Slides the window to `[end − size, end)` and drops retired panes that
    /// start before `keep_from`; the window's aggregate, `None` if it is
    /// empty.
    #[inline]
    fn slide_to<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        end: Timestamp,
        size: u64,
        keep_from: Timestamp,
    ) -> Option<&C> {
        while self.head.as_ref().is_some_and(|h| h.0 < end) {
            let Some((start, pane)) = self.head.take() else {
                break;
            };
            agg.merge(&mut self.back_agg, &pane);
            let slot = Slot {
                start,
                pane,
                suffix: None,
            };
            if self.back_end == self.slots.len() {
                self.slots.push_back(slot);
            } else {
                // Later pending panes wait behind it; the next one is head.
                self.slots.insert(self.back_end, slot);
                self.head = self
                    .slots
                    .remove(self.back_end + 1)
                    .map(|s| (s.start, s.pane));
            }
            if self.oldest == NONE {
                self.oldest = self.slots[self.retired].start;
            }
            self.back_end += 1;
            self.stale = true;
        }
        let start = end - size;
        while self.oldest < start {
            if self.front_end == self.retired {
                self.flip(agg);
            }
            // Its suffix goes stale; it is never read again.
            self.retired += 1;
            self.oldest = if self.retired < self.back_end {
                self.slots[self.retired].start
            } else {
                NONE
            };
            self.stale = true;
        }
        while self.retired > 0 && self.slots[0].start < keep_from {
            self.slots.pop_front();
            self.retired -= 1;
            self.front_end -= 1;
            self.back_end -= 1;
        }
        if self.oldest == NONE {
            return None;
        }
        if self.stale {
            let mut current = self.back_agg.clone();
            if self.front_end > self.retired
                && let Some(suffix) = &self.slots[self.retired].suffix
            {
                agg.merge(&mut current, suffix);
            }
            self.current = current;
            self.stale = false;
        }
        Some(&self.current)
    }

    /// Turns the back stack into the front stack (which is empty).
    fn flip<A: Aggregate<Acc = C>>(&mut self, agg: &A) {
        let mut acc = agg.init();
        for i in (self.retired..self.back_end).rev() {
            agg.merge(&mut acc, &self.slots[i].pane);
            self.slots[i].suffix = Some(acc.clone());
        }
        self.front_end = self.back_end;
        self.back_agg = agg.init();
    }

    /// Folds a late reading into pane `pane` (before `fired_to`, the end of
    /// the last window fired) and rebuilds the sections around the window
    /// `[fired_to − size, fired_to)`.
    fn add_late<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        (pane, ts, v): (Timestamp, u64, f64),
        fired_to: Timestamp,
        size: u64,
    ) {
        match self.slots.binary_search_by_key(&pane, |s| s.start) {
            Ok(i) => agg.add(&mut self.slots[i].pane, ts, v),
            Err(i) => {
                let mut acc = agg.init();
                agg.add(&mut acc, ts, v);
                self.slots.insert(
                    i,
                    Slot {
                        start: pane,
                        pane: acc,
                        suffix: None,
                    },
                );
            }
        }
        let window_start = fired_to.saturating_sub(size);
        self.retired = self.slots.partition_point(|s| s.start < window_start);
        self.back_end = self.slots.partition_point(|s| s.start < fired_to);
        self.front_end = self.retired;
        let mut back = agg.init();
        for slot in self.slots.iter_mut() {
            slot.suffix = None;
        }
        for slot in self.slots.range(self.retired..self.back_end) {
            agg.merge(&mut back, &slot.pane);
        }
        self.back_agg = back;
        self.oldest = if self.retired < self.back_end {
            self.slots[self.retired].start
        } else {
            NONE
        };
        self.stale = true;
    }

    /// The merge of the panes in `[start, end)`, `None` if there are none.
    fn range<A: Aggregate<Acc = C>>(&self, agg: &A, start: Timestamp, end: Timestamp) -> Option<C> {
        let from = self.slots.partition_point(|s| s.start < start);
        let to = self.slots.partition_point(|s| s.start < end);
        let head = self.head.as_ref().filter(|(h, _)| (start..end).contains(h));
        (from < to || head.is_some()).then(|| {
            let mut acc = agg.init();
            for slot in self.slots.range(from..to) {
                agg.merge(&mut acc, &slot.pane);
            }
            if let Some((_, pane)) = head {
                agg.merge(&mut acc, pane);
            }
            acc
        })
    }

    /// Start of the first pane not yet retired.
    fn first_active(&self) -> Option<Timestamp> {
        // The head precedes the pending slots, not the window's.
        let slot = self.slots.get(self.retired).map(|s| s.start);
        let head = self.head.as_ref().map(|h| h.0);
        slot.into_iter().chain(head).min()
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.head.is_none()
    }
}

/// Open sliding (or tumbling) windows: per key, its panes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, C: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, C: Deserialize<'de>"
))]
pub struct SlidingState<K, C> {
    size: u64,
    slide: u64,
    allowed: u64,
    keys: FxHashMap<K, KeyRing<C>>,
    /// Windows ending at or before this have fired.
    fired_to: Timestamp,
    /// Results in the last window fired: the next one reserves as much.
    #[serde(default)]
    last_fired: usize,
    /// Keys a late reading changed in the current batch, with its pane;
    /// emptied at the end of every batch, so never in a snapshot.
    #[serde(skip)]
    changed: Vec<(K, Timestamp)>,
}

impl<K: Eq + Hash + Clone, C: Clone> SlidingState<K, C> {
    /// Windows of `size` every `slide` (`size` a multiple of `slide`),
    /// updated by readings up to `allowed` ms after they fire.
    pub fn new(size: u64, slide: u64, allowed: u64) -> Self {
        let slide = slide.max(1);
        SlidingState {
            size: size.max(slide) / slide * slide,
            slide,
            allowed,
            keys: FxHashMap::default(),
            fired_to: 0,
            last_fired: 0,
            changed: Vec::new(),
        }
    }

    /// Folds a reading sent at batch time `t` in.
    #[inline]
    pub(crate) fn add<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        key: K,
        ts: Timestamp,
        value: f64,
        t: Timestamp,
    ) -> Added {
        let pane = ts - ts % self.slide;
        // The earliest window holding the pane ends at pane + slide (or at
        // `size`, for the first windows of time).
        let first_end = (pane + self.slide).max(self.size);
        if first_end - 1 + self.allowed < t {
            return Added::Late {
                start: first_end - self.size,
                end: first_end,
            };
        }
        if pane >= self.fired_to {
            self.keys
                .entry(key)
                .or_insert_with(|| KeyRing::new(agg))
                .add_pending(agg, pane, ts, value);
            return Added::Open;
        }
        let (fired_to, size) = (self.fired_to, self.size);
        self.keys
            .entry(key.clone())
            .or_insert_with(|| KeyRing::new(agg))
            .add_late(agg, (pane, ts, value), fired_to, size);
        self.changed.push((key, pane));
        Added::Update
    }

    /// Fires every window whose last instant is below `bound` (`None`:
    /// all), calling `emit(stamp, results)` per window.
    pub(crate) fn fire<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        bound: Option<Timestamp>,
        emit: Emit<'_, K, A::Output>,
    ) {
        let closed = |end: Timestamp| bound.is_none_or(|b| end - 1 < b);
        let mut end = (self.fired_to + self.slide).max(self.size);
        while closed(end) && !self.keys.is_empty() {
            let (size, start) = (self.size, end - self.size);
            // Retired panes are kept while a window holding them may still
            // be updated: pane p's last window ends at p + size.
            let keep_from = (end + 1).saturating_sub(size + self.allowed);
            let mut out = Vec::with_capacity(self.last_fired);
            self.keys.retain(|key, ring| {
                if let Some(acc) = ring.slide_to(agg, end, size, keep_from) {
                    out.push(WindowResult {
                        key: key.clone(),
                        start,
                        end,
                        stats: agg.finish(acc),
                        kind: ResultKind::Final,
                    });
                }
                !ring.is_empty()
            });
            self.fired_to = end;
            if out.is_empty() {
                // No data in this window: jump to the first one that has.
                let first = self.keys.values().filter_map(KeyRing::first_active).min();
                let Some(first) = first else { break };
                let next = (first + self.slide).max(self.size);
                end = next.max(end + self.slide);
                // The windows skipped held nothing: those closed count as
                // fired (a reading may still come for one not closed).
                let closed_to = bound.map_or(Timestamp::MAX, |b| b - b % self.slide);
                self.fired_to = self.fired_to.max((end - self.slide).min(closed_to));
            } else {
                self.last_fired = out.len();
                emit(end - 1, out);
                end += self.slide;
            }
        }
        if let Some(b) = bound
            && self.keys.values().all(|r| r.first_active().is_none())
        {
            // Windows that closed without data still count as fired.
            self.fired_to = self.fired_to.max(b - b % self.slide);
        }
    }

    /// Emits, stamped `t`, every fired window that the late readings of the
    /// batch at `t` changed and that may still be updated.
    pub(crate) fn after_batch<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        t: Timestamp,
        emit: Emit<'_, K, A::Output>,
    ) {
        if self.changed.is_empty() {
            return;
        }
        let mut earliest: FxHashMap<K, Timestamp> = FxHashMap::default();
        for (key, pane) in self.changed.drain(..) {
            let e = earliest.entry(key).or_insert(pane);
            *e = (*e).min(pane);
        }
        let mut out = Vec::new();
        for (key, pane) in earliest {
            let Some(ring) = self.keys.get(&key) else {
                continue;
            };
            let mut end = (pane + self.slide).max(self.size);
            let last = (pane + self.size).min(self.fired_to);
            while end <= last {
                if end - 1 + self.allowed >= t
                    && let Some(acc) = ring.range(agg, end - self.size, end)
                {
                    out.push(WindowResult {
                        key: key.clone(),
                        start: end - self.size,
                        end,
                        stats: agg.finish(&acc),
                        kind: ResultKind::Update,
                    });
                }
                end += self.slide;
            }
        }
        if !out.is_empty() {
            emit(t, out);
        }
    }

    /// Each key's next window to fire, as it stands.
    pub(crate) fn partials<A: Aggregate<Acc = C>>(
        &self,
        agg: &A,
    ) -> Vec<WindowResult<K, A::Output>> {
        let end = (self.fired_to + self.slide).max(self.size);
        let start = end - self.size;
        self.keys
            .iter()
            .filter_map(|(key, ring)| {
                let acc = ring.range(agg, start, end)?;
                Some(WindowResult {
                    key: key.clone(),
                    start,
                    end,
                    stats: agg.finish(&acc),
                    kind: ResultKind::Partial,
                })
            })
            .collect()
    }

    pub(crate) fn retain_keys(&mut self, mut owned: impl FnMut(&K) -> bool) {
        self.keys.retain(|k, _| owned(k));
    }

    pub(crate) fn merge(&mut self, other: Self) {
        // Keys are disjoint between the parts of one snapshot.
        self.fired_to = self.fired_to.max(other.fired_to);
        self.keys.extend(other.keys);
    }
}
