//! Replacement semantics to differential diffs: the latest value of each
//! key as a collection.
//!
//! A registry change says "from `at` on, the device is described by this";
//! a presence event says "from `at` on, the device is online". Neither says
//! what it replaces. Differential dataflow wants exactly that: `+1` for the
//! new value, `−1` for the old one. [`Latest::latest`] keeps each key's
//! current value (keys exchanged by a stable hash, so each lives on one
//! worker), applies the upserts of every time once the frontier has passed
//! it, in `(at, seq)` order, and emits the net change of each key at that
//! time.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use iotflow_types::{Timestamp, stable_hash};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;

/// From event time `at` on, `key` has `value` (`None`: no value, the key
/// leaves the collection). Of two upserts of one key that take effect at
/// the same time, the one with the larger `(at, seq)` wins (then the larger
/// value, so the outcome never depends on arrival order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Upsert<K, V> {
    /// Event time from which the value holds.
    pub at: Timestamp,
    /// Orders upserts of one key with the same `at`: higher wins.
    pub seq: u64,
    /// The key.
    pub key: K,
    /// The value from `at` on, or `None` for none.
    pub value: Option<V>,
}

/// The latest value of each key of an upsert stream, as a differential
/// collection.
pub trait Latest<'scope, K, V> {
    /// The collection holding `(key, value)` for each key's latest value.
    ///
    /// An upsert takes effect at `max(at, t)`, `t` being the time it was
    /// stamped at: one released behind its own time counts when it was
    /// released, so none is ever late or lost. Changes are emitted once the
    /// frontier passes that time, as `−(key, old)` and `+(key, new)` at
    /// it (nothing if the value did not change).
    ///
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use iotflow_fleet::{Latest, Upsert};
    /// use timely::dataflow::operators::{Capture, ToStream, capture::Event};
    ///
    /// let up = |at, seq, key: &str, value: Option<u32>| Upsert { at, seq, key: key.to_owned(), value };
    /// let rx = timely::example(move |scope| {
    ///     vec![
    ///         up(0, 1, "a", Some(1)),
    ///         up(5, 3, "a", Some(3)),
    ///         up(5, 2, "a", Some(2)), // same time, lower seq: loses
    ///         up(9, 4, "a", None),
    ///     ]
    ///     .to_stream(scope)
    ///     .latest("latest")
    ///     .inner
    ///     .capture()
    /// });
    /// let mut diffs: Vec<_> = rx.try_iter()
    ///     .flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] })
    ///     .collect();
    /// diffs.sort_by_key(|(kv, t, r)| (*t, *r, kv.clone()));
    /// let a = |v: u32| ("a".to_owned(), v);
    /// assert_eq!(diffs, [(a(1), 0, 1), (a(1), 5, -1), (a(3), 5, 1), (a(3), 9, -1)]);
    /// ```
    fn latest(self, name: &str) -> VecCollection<'scope, Timestamp, (K, V), isize>;
}

impl<'scope, K, V> Latest<'scope, K, V> for StreamVec<'scope, Timestamp, Upsert<K, V>>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
{
    fn latest(self, name: &str) -> VecCollection<'scope, Timestamp, (K, V), isize> {
        let pact = Exchange::new(|u: &Upsert<K, V>| stable_hash(&u.key));
        self.unary_frontier::<CapacityContainerBuilder<Vec<((K, V), Timestamp, isize)>>, _, _, _>(
            pact,
            name,
            |cap, _info| {
                let mut cap = Some(cap);
                let mut current: FxHashMap<K, V> = FxHashMap::default();
                let mut pending: BTreeMap<Timestamp, Vec<Upsert<K, V>>> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|stamp, data| {
                        if let Some(t) = stamp.least() {
                            for u in data.drain(..) {
                                pending.entry(u.at.max(*t)).or_default().push(u);
                            }
                        }
                    });
                    let frontier = frontier.frontier().iter().min().copied();
                    let Some(held) = cap.as_mut() else { return };
                    while let Some(entry) = pending.first_entry() {
                        let x = *entry.key();
                        if frontier.is_some_and(|f| x >= f) {
                            break;
                        }
                        // Never behind the capability: every upsert takes
                        // effect at or after its batch's time.
                        let x = x.max(*held.time());
                        let mut ups = entry.remove();
                        // By key, the winner last.
                        ups.sort_by(|a, b| {
                            (&a.key, a.at, a.seq, &a.value).cmp(&(&b.key, b.at, b.seq, &b.value))
                        });
                        let at = held.delayed(&x);
                        let mut session = output.session(&at);
                        let mut ups = ups.into_iter().peekable();
                        while let Some(u) = ups.next() {
                            if ups.peek().is_some_and(|n| n.key == u.key) {
                                continue;
                            }
                            let old = match &u.value {
                                Some(v) => current.insert(u.key.clone(), v.clone()),
                                None => current.remove(&u.key),
                            };
                            if old == u.value {
                                continue;
                            }
                            if let Some(old) = old {
                                session.give(((u.key.clone(), old), x, -1));
                            }
                            if let Some(new) = u.value {
                                session.give(((u.key, new), x, 1));
                            }
                        }
                    }
                    match frontier {
                        Some(f) => held.downgrade(&f),
                        None => cap = None,
                    }
                }
            },
        )
        .as_collection()
    }
}
