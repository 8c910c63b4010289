//! Session windows per key.
//!
//! Readings of a key closer than `gap` in event time belong to one session
//! `[first, last + gap)`; a reading that bridges two sessions merges them. A
//! session fires once the frontier passes its end. With allowed lateness it
//! is kept `allowed` ms longer: a reading that joins it then re-emits it (as
//! merged or extended) as an [`ResultKind::Update`], which replaces the
//! key's earlier results for the sessions it overlaps.

use std::collections::BTreeMap;
use std::hash::Hash;

use iotflow_types::{ResultKind, Timestamp, WindowResult};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::agg::Aggregate;
use crate::operator::{Added, Emit};

/// A session: `[start, end)` with its aggregate.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session<C> {
    end: Timestamp,
    acc: C,
    /// Emitted at least once (its next result is an update).
    fired: bool,
    /// Waiting in `by_end` to fire (again) when the frontier passes its end.
    #[serde(default)]
    pending: bool,
}

/// Open sessions per key, and their ends in firing order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, C: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, C: Deserialize<'de>"
))]
pub struct SessionState<K, C> {
    gap: u64,
    allowed: u64,
    sessions: FxHashMap<K, BTreeMap<Timestamp, Session<C>>>,
    /// Session end → keys, for sessions to fire (entries go stale when
    /// sessions merge; checked when popped).
    by_end: BTreeMap<Timestamp, Vec<K>>,
    /// Session end → keys, for fired sessions kept for late readings.
    #[serde(default = "BTreeMap::new")]
    kept: BTreeMap<Timestamp, Vec<K>>,
    /// (key, session start) changed by late readings of the current batch;
    /// emptied at the end of every batch, so never in a snapshot.
    #[serde(skip)]
    changed: Vec<(K, Timestamp)>,
}

impl<K: Eq + Hash + Clone, C: Clone> SessionState<K, C> {
    /// Sessions closed by `gap` ms of inactivity, updated by readings up to
    /// `allowed` ms after they fire.
    pub fn new(gap: u64, allowed: u64) -> Self {
        SessionState {
            gap: gap.max(1),
            allowed,
            sessions: FxHashMap::default(),
            by_end: BTreeMap::new(),
            kept: BTreeMap::new(),
            changed: Vec::new(),
        }
    }

    pub(crate) fn add<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        key: K,
        ts: Timestamp,
        value: f64,
        t: Timestamp,
    ) -> Added {
        if ts + self.gap - 1 + self.allowed < t {
            return Added::Late {
                start: ts,
                end: ts + self.gap,
            };
        }
        let (mut start, mut end) = (ts, ts + self.gap);
        let mut acc = agg.init();
        agg.add(&mut acc, ts, value);
        let mut fired = false;
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
                agg.merge(&mut acc, &old.acc);
                fired |= old.fired;
            }
        }
        let pending = !(fired && end - 1 < t);
        sessions.insert(
            start,
            Session {
                end,
                acc,
                fired,
                pending,
            },
        );
        if !pending {
            // A fired session changed and is still closed: an update now.
            self.kept.entry(end).or_default().push(key.clone());
            self.changed.push((key, start));
            Added::Update
        } else {
            // Fires (again) when the frontier passes its end.
            self.by_end.entry(end).or_default().push(key);
            if fired { Added::Update } else { Added::Open }
        }
    }

    pub(crate) fn fire<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        bound: Option<Timestamp>,
        emit: Emit<'_, K, A::Output>,
    ) {
        let due = |end: Timestamp, allowed: u64| bound.is_none_or(|b| end - 1 + allowed < b);
        while let Some((&end, _)) = self.by_end.first_key_value() {
            if !due(end, 0) {
                break;
            }
            let Some((_, keys)) = self.by_end.pop_first() else {
                break;
            };
            let (mut finals, mut updates) = (Vec::new(), Vec::new());
            for key in keys {
                let Some(sessions) = self.sessions.get_mut(&key) else {
                    continue;
                };
                // The session of this key that ends here, if it still does.
                let Some((&start, s)) =
                    sessions.iter_mut().find(|(_, s)| s.end == end && s.pending)
                else {
                    continue;
                };
                s.pending = false;
                let kind = if s.fired {
                    ResultKind::Update
                } else {
                    ResultKind::Final
                };
                s.fired = true;
                let result = WindowResult {
                    key: key.clone(),
                    start,
                    end,
                    stats: agg.finish(&s.acc),
                    kind,
                };
                if kind == ResultKind::Final {
                    finals.push(result);
                } else {
                    updates.push(result);
                }
                if self.allowed == 0 {
                    sessions.remove(&start);
                    if sessions.is_empty() {
                        self.sessions.remove(&key);
                    }
                } else {
                    self.kept.entry(end).or_default().push(key);
                }
            }
            for out in [finals, updates] {
                if !out.is_empty() {
                    emit(end - 1, out);
                }
            }
        }
        // Fired sessions past their allowed lateness go.
        while let Some((&end, _)) = self.kept.first_key_value() {
            if !due(end, self.allowed) {
                break;
            }
            let Some((_, keys)) = self.kept.pop_first() else {
                break;
            };
            for key in keys {
                let Some(sessions) = self.sessions.get_mut(&key) else {
                    continue;
                };
                sessions.retain(|_, s| !(s.end == end && s.fired && !s.pending));
                if sessions.is_empty() {
                    self.sessions.remove(&key);
                }
            }
        }
    }

    /// Emits, stamped `t`, the fired sessions late readings of the batch at
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
        let mut out: Vec<WindowResult<K, A::Output>> = Vec::new();
        let mut seen: FxHashSet<(K, Timestamp)> = FxHashSet::default();
        for (key, start) in std::mem::take(&mut self.changed) {
            let Some(sessions) = self.sessions.get(&key) else {
                continue;
            };
            // The session now holding `start` (a later reading of the batch
            // may have merged it into another).
            let Some((&s, session)) = sessions.range(..=start).next_back() else {
                continue;
            };
            if session.end < start || session.end > t || !seen.insert((key.clone(), s)) {
                // Reopened sessions fire again when they close.
                continue;
            }
            out.push(WindowResult {
                key,
                start: s,
                end: session.end,
                stats: agg.finish(&session.acc),
                kind: ResultKind::Update,
            });
        }
        if !out.is_empty() {
            emit(t, out);
        }
    }

    /// Every session not yet fired, as it stands.
    pub(crate) fn partials<A: Aggregate<Acc = C>>(
        &self,
        agg: &A,
    ) -> Vec<WindowResult<K, A::Output>> {
        let mut out = Vec::new();
        for (key, sessions) in &self.sessions {
            for (&start, s) in sessions.iter().filter(|(_, s)| !s.fired) {
                out.push(WindowResult {
                    key: key.clone(),
                    start,
                    end: s.end,
                    stats: agg.finish(&s.acc),
                    kind: ResultKind::Partial,
                });
            }
        }
        out
    }

    pub(crate) fn retain_keys(&mut self, mut owned: impl FnMut(&K) -> bool) {
        self.sessions.retain(|k, _| owned(k));
        for index in [&mut self.by_end, &mut self.kept] {
            for keys in index.values_mut() {
                keys.retain(&mut owned);
            }
            index.retain(|_, keys| !keys.is_empty());
        }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        // Keys are disjoint between the parts of one snapshot.
        self.sessions.extend(other.sessions);
        for (end, keys) in other.by_end {
            self.by_end.entry(end).or_default().extend(keys);
        }
        for (end, keys) in other.kept {
            self.kept.entry(end).or_default().extend(keys);
        }
    }
}
