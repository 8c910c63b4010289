//! Count windows: every `size` readings of a key form a window.
//!
//! Readings are taken in event-time order: the operator applies each batch
//! once the frontier has passed it, sorted by (event time, value), so which
//! readings share a window does not depend on arrival order or on the number
//! of workers. A window is `[first ts, last ts + 1)` of its readings and
//! fires as soon as it is full; at the end of the input each key's last,
//! shorter window fires too. Count windows are never late.

use std::hash::Hash;

use iotflow_types::{ResultKind, Timestamp, WindowResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::agg::Aggregate;
use crate::operator::{Added, Emit};

/// A key's window being filled.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Filling<C> {
    n: u64,
    first: Timestamp,
    last: Timestamp,
    acc: C,
}

/// Per key, the window being filled.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, C: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, C: Deserialize<'de>"
))]
pub struct CountState<K, C> {
    size: u64,
    keys: FxHashMap<K, Filling<C>>,
    /// Windows filled in the current batch; emitted at its end, so never in
    /// a snapshot.
    #[serde(skip)]
    full: Vec<(K, Filling<C>)>,
}

impl<K: Eq + Hash + Clone, C: Clone> CountState<K, C> {
    /// Windows of `size` readings.
    pub fn new(size: u64) -> Self {
        CountState {
            size: size.max(1),
            keys: FxHashMap::default(),
            full: Vec::new(),
        }
    }

    pub(crate) fn add<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        key: K,
        ts: Timestamp,
        v: f64,
    ) -> Added {
        let filling = self.keys.entry(key.clone()).or_insert_with(|| Filling {
            n: 0,
            first: ts,
            last: ts,
            acc: agg.init(),
        });
        agg.add(&mut filling.acc, ts, v);
        filling.n += 1;
        filling.first = filling.first.min(ts);
        filling.last = filling.last.max(ts);
        if filling.n >= self.size
            && let Some(full) = self.keys.remove(&key)
        {
            self.full.push((key, full));
        }
        Added::Open
    }

    fn result<A: Aggregate<Acc = C>>(
        agg: &A,
        key: K,
        f: &Filling<C>,
        kind: ResultKind,
    ) -> WindowResult<K, A::Output> {
        WindowResult {
            key,
            start: f.first,
            end: f.last + 1,
            stats: agg.finish(&f.acc),
            kind,
        }
    }

    /// Windows filled by the batch at `t`, stamped `t`.
    pub(crate) fn after_batch<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        t: Timestamp,
        emit: Emit<'_, K, A::Output>,
    ) {
        if self.full.is_empty() {
            return;
        }
        let out = self
            .full
            .drain(..)
            .map(|(key, f)| Self::result(agg, key, &f, ResultKind::Final))
            .collect();
        emit(t, out);
    }

    /// At the end of the input (`bound` `None`), every key's last window.
    pub(crate) fn fire<A: Aggregate<Acc = C>>(
        &mut self,
        agg: &A,
        bound: Option<Timestamp>,
        emit: Emit<'_, K, A::Output>,
    ) {
        if bound.is_some() || self.keys.is_empty() {
            return;
        }
        let mut out: Vec<_> = self
            .keys
            .drain()
            .map(|(key, f)| (f.last, Self::result(agg, key, &f, ResultKind::Final)))
            .collect();
        out.sort_by_key(|(last, _)| *last);
        let stamp = out.last().map_or(0, |(last, _)| *last);
        emit(stamp, out.into_iter().map(|(_, r)| r).collect());
    }

    /// Each key's window being filled, as it stands.
    pub(crate) fn partials<A: Aggregate<Acc = C>>(
        &self,
        agg: &A,
    ) -> Vec<WindowResult<K, A::Output>> {
        self.keys
            .iter()
            .map(|(key, f)| Self::result(agg, key.clone(), f, ResultKind::Partial))
            .collect()
    }

    pub(crate) fn retain_keys(&mut self, mut owned: impl FnMut(&K) -> bool) {
        self.keys.retain(|k, _| owned(k));
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.keys.extend(other.keys);
    }
}
