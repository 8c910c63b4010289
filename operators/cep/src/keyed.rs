//! Every key's matcher on one worker, and the buffer that puts each key's
//! events in event-time order before they are matched.
//!
//! [`CepState`] is timely-free: the operator pushes events with the timely
//! time of the batch they came in, and advances it to the frontier.
//! An event is *late* when its event time is before its batch's time: every
//! event before that time may already have been matched, so it can no
//! longer take its place in order. Deciding lateness from the batch time,
//! never from how far the frontier happened to have moved, keeps results
//! independent of scheduling and of the number of workers.

use std::collections::BTreeMap;
use std::hash::Hash;

use iotflow_core::state::{KeyedState, route};
use iotflow_types::{Timestamp, stable_hash};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::nfa::{Matcher, Outcome};
use crate::pattern::{Event, Pattern};
use crate::tally::CepTally;

/// One key: events waiting for the frontier, and its matcher.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "E: Serialize", deserialize = "E: DeserializeOwned"))]
struct KeyState<E> {
    buffer: Vec<E>,
    matcher: Matcher<E>,
    /// The time this key is registered at in [`CepState::wake`].
    wake: Option<Timestamp>,
}

impl<E> Default for KeyState<E> {
    fn default() -> Self {
        KeyState {
            buffer: Vec::new(),
            matcher: Matcher::default(),
            wake: None,
        }
    }
}

/// What became of a pushed event.
#[derive(Debug, PartialEq)]
pub enum Pushed<E> {
    /// Buffered until the frontier passes it.
    Buffered,
    /// Its event time is before its batch's time: it cannot be matched in
    /// order.
    Late(E),
    /// Its key's buffer is full ([`Limits::max_buffered_events`](crate::Limits)).
    Overflow(E),
}

/// The CEP state of one worker: every key it owns (see the module docs).
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, E: Serialize",
    deserialize = "K: DeserializeOwned + Eq + Hash, E: DeserializeOwned"
))]
pub struct CepState<K, E> {
    keys: FxHashMap<K, KeyState<E>>,
    /// Time → keys with work at that time (entries go stale when a key's
    /// wake-up time moves; checked against the key when popped).
    wake: BTreeMap<Timestamp, Vec<K>>,
    /// Counts of this worker (rescaling gives them all to worker 0).
    pub tally: CepTally,
}

impl<K, E> Default for CepState<K, E> {
    fn default() -> Self {
        CepState {
            keys: FxHashMap::default(),
            wake: BTreeMap::new(),
            tally: CepTally::default(),
        }
    }
}

impl<K: Clone + Eq + Hash, E: Event> CepState<K, E> {
    /// Keys holding buffered events, partial matches or waiting matches.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Partial matches alive over all keys.
    pub fn partial_matches(&self) -> usize {
        self.keys
            .values()
            .map(|k| k.matcher.partial_matches())
            .sum()
    }

    /// Events buffered over all keys.
    pub fn buffered(&self) -> usize {
        self.keys.values().map(|k| k.buffer.len()).sum()
    }

    /// An estimate of the heap bytes the state holds: keys, buffered
    /// events, runs and the events they share (each counted once), and
    /// waiting matches; not the heap inside events (small readings have
    /// none). For sizing, not accounting.
    pub fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut bytes = self.keys.capacity() * (size_of::<K>() + size_of::<KeyState<E>>() + 1);
        for st in self.keys.values() {
            bytes += st.buffer.capacity() * size_of::<E>();
            bytes += st.matcher.approx_heap_bytes();
        }
        bytes + self.wake.len() * (size_of::<Timestamp>() + size_of::<Vec<K>>() + size_of::<K>())
    }

    /// Takes an event of `key` that came in a batch stamped `batch_time`.
    pub fn push(&mut self, p: &Pattern<E>, key: K, event: E, batch_time: Timestamp) -> Pushed<E> {
        self.tally.received += 1;
        let ts = event.event_time();
        if ts < batch_time {
            self.tally.late += 1;
            return Pushed::Late(event);
        }
        let st = self.keys.entry(key.clone()).or_default();
        if st.buffer.len() >= p.limits.max_buffered_events {
            self.tally.overflow += 1;
            return Pushed::Overflow(event);
        }
        st.buffer.push(event);
        // Releasable once the frontier is past it.
        let at = ts.saturating_add(1);
        if st.wake.is_none_or(|w| at < w) {
            st.wake = Some(at);
            self.wake.entry(at).or_default().push(key);
        }
        Pushed::Buffered
    }

    /// Every event before `to` has been pushed (`None`: the input ended):
    /// matches each key's events before `to` in order and lets time pass.
    /// `out(key, time, outcome)` gets every match and timeout, `time` being
    /// when it happened (never after `to`).
    pub fn advance(
        &mut self,
        p: &Pattern<E>,
        to: Option<Timestamp>,
        out: &mut impl FnMut(&K, Timestamp, Outcome<E>),
    ) {
        match to {
            Some(t) => {
                while let Some(entry) = self.wake.first_entry() {
                    if *entry.key() > t {
                        break;
                    }
                    let (at, keys) = entry.remove_entry();
                    for key in keys {
                        let Some(st) = self.keys.get_mut(&key) else {
                            continue;
                        };
                        if st.wake != Some(at) {
                            continue;
                        }
                        st.wake = None;
                        self.run_key(p, key, Some(t), out);
                    }
                }
            }
            None => {
                self.wake.clear();
                let keys: Vec<K> = self.keys.keys().cloned().collect();
                for key in keys {
                    self.run_key(p, key, None, out);
                }
            }
        }
    }

    fn run_key(
        &mut self,
        p: &Pattern<E>,
        key: K,
        to: Option<Timestamp>,
        out: &mut impl FnMut(&K, Timestamp, Outcome<E>),
    ) {
        let Some(st) = self.keys.get_mut(&key) else {
            return;
        };
        let tally = &mut self.tally;
        let mut emit = |at: Timestamp, o: Outcome<E>| out(&key, at, o);
        let bound = to.unwrap_or(Timestamp::MAX);
        // A stable sort: sorting an already ordered buffer again changes
        // nothing, so the buffer stays in order and its first event is the
        // earliest one left.
        let order = |a: &E, b: &E| {
            a.event_time()
                .cmp(&b.event_time())
                .then_with(|| a.tie_break(b))
        };
        if !st.buffer.is_sorted_by(|a, b| order(a, b).is_le()) {
            st.buffer.sort_by(order);
        }
        let n = st.buffer.partition_point(|e| e.event_time() < bound);
        for e in st.buffer.drain(..n) {
            st.matcher.push(p, e, tally, &mut emit);
        }
        st.matcher.advance(p, to, tally, &mut emit);
        if st.buffer.is_empty() && st.matcher.is_empty() {
            self.keys.remove(&key);
            return;
        }
        let next = [
            st.buffer.first().map(|e| e.event_time().saturating_add(1)),
            st.matcher.next_deadline(p),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next {
            st.wake = Some(at);
            self.wake.entry(at).or_default().push(key);
        }
    }
}

impl<K, E> KeyedState for CepState<K, E>
where
    K: Clone + Eq + Hash + Serialize + DeserializeOwned,
    E: Serialize + DeserializeOwned,
{
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        let owned = |k: &K| route(stable_hash(k), peers) == worker;
        self.keys.retain(|k, _| owned(k));
        for keys in self.wake.values_mut() {
            keys.retain(|k| owned(k));
        }
        self.wake.retain(|_, keys| !keys.is_empty());
        if worker != 0 {
            self.tally = CepTally::default();
        }
    }

    fn merge(&mut self, other: Self) {
        // Keys are disjoint between the parts of one snapshot.
        self.keys.extend(other.keys);
        for (at, keys) in other.wake {
            self.wake.entry(at).or_default().extend(keys);
        }
        self.tally.merge(&other.tally);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotflow_core::state::{decode, encode, rescale};
    use iotflow_types::Reading;

    /// Three rising temperatures (each within 10 s of the first), then a
    /// spike; timeouts on their own output.
    fn pattern() -> Pattern<Reading> {
        Pattern::begin("rise")
            .filter_with(|r: &Reading, p| {
                r.metric.as_str() == "temp" && p.last("rise").is_none_or(|l| r.value > l.value)
            })
            .times(3)
            .followed_by("spike")
            .filter(|r| r.metric.as_str() == "vib" && r.value > 5.0)
            .within_ms(10_000)
            .build()
            .expect("valid")
    }

    type Out = Vec<(String, Timestamp, String)>;

    /// Feeds readings in batches stamped at the watermark, snapshots after
    /// `cut` readings, restores on `new` workers (from `old`), and returns
    /// every outcome.
    fn run(old: usize, new: usize, cut: usize) -> Out {
        let p = pattern();
        let data: Vec<Reading> = (0..2000u64)
            .map(|i| {
                let jitter = (i * 7919) % 900;
                let metric = if i % 7 == 3 { "vib" } else { "temp" };
                let value = ((i * 31) % 17) as f64;
                Reading::new(
                    &format!("d-{}", i % 13),
                    1_000 + i * 60 - jitter,
                    metric,
                    value,
                )
            })
            .collect();
        let mut out: Out = Vec::new();
        let mut emit = |k: &String, at: Timestamp, o: Outcome<Reading>| {
            let what = match o {
                Outcome::Match(m) => {
                    format!("match {:?}", m.events().map(|e| e.ts).collect::<Vec<_>>())
                }
                Outcome::Timeout(t) => format!(
                    "timeout {:?}",
                    t.partial.events().map(|e| e.ts).collect::<Vec<_>>()
                ),
            };
            out.push((k.clone(), at, what));
        };
        let mut states: Vec<CepState<String, Reading>> =
            (0..old).map(|_| CepState::default()).collect();
        let mut max_ts: Timestamp = 0;
        for (i, r) in data.into_iter().enumerate() {
            let t = max_ts.saturating_sub(900);
            if i == cut {
                for st in &mut states {
                    st.advance(&p, Some(t), &mut emit);
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
            max_ts = max_ts.max(r.ts);
            let key = r.device.to_string();
            let peers = states.len();
            let st = &mut states[route(stable_hash(&key), peers)];
            st.advance(&p, Some(t), &mut emit);
            assert_eq!(st.push(&p, key, r, t), Pushed::Buffered);
        }
        let mut tally = CepTally::default();
        for st in &mut states {
            st.advance(&p, None, &mut emit);
            tally.merge(&st.tally);
            assert_eq!(st.keys(), 0, "nothing left after the end");
        }
        assert_eq!(tally.received, 2000);
        assert_eq!(tally.events, 2000);
        out.sort();
        out
    }

    #[test]
    fn snapshots_rescale_without_changing_results() {
        let reference = run(1, 1, usize::MAX);
        let matches = reference
            .iter()
            .filter(|o| o.2.starts_with("match"))
            .count();
        let timeouts = reference
            .iter()
            .filter(|o| o.2.starts_with("timeout"))
            .count();
        assert!(
            matches > 20 && timeouts > 20,
            "{matches} matches, {timeouts} timeouts"
        );
        for (old, new, cut) in [
            (1, 2, 700),
            (2, 1, 1300),
            (2, 3, 400),
            (3, 2, 1999),
            (1, 1, 1000),
        ] {
            assert_eq!(run(old, new, cut), reference, "{old}→{new} at {cut}");
        }
    }

    #[test]
    fn late_and_overflow_are_counted_and_returned() {
        let p = Pattern::<Reading>::begin("a")
            .limits(crate::Limits {
                max_buffered_events: 2,
                ..crate::Limits::default()
            })
            .build()
            .expect("valid");
        let mut st: CepState<String, Reading> = CepState::default();
        let r = |ts| Reading::new("d", ts, "m", 1.0);
        assert_eq!(st.push(&p, "d".into(), r(5), 10), Pushed::Late(r(5)));
        assert_eq!(st.push(&p, "d".into(), r(10), 10), Pushed::Buffered);
        assert_eq!(st.push(&p, "d".into(), r(12), 10), Pushed::Buffered);
        assert_eq!(st.push(&p, "d".into(), r(11), 10), Pushed::Overflow(r(11)));
        assert_eq!(st.buffered(), 2);
        let mut n = 0;
        st.advance(&p, Some(12), &mut |_, _, _| n += 1);
        assert_eq!(
            (n, st.buffered()),
            (1, 1),
            "only ts 10 is before the frontier"
        );
        st.advance(&p, None, &mut |_, _, _| n += 1);
        assert_eq!(n, 2);
        let t = &st.tally;
        assert_eq!(
            (t.received, t.events, t.late, t.overflow, t.matches),
            (4, 2, 1, 1, 2)
        );
    }
}
