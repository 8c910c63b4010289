use std::collections::BTreeMap;
use std::hash::Hash;

use iotflow_core::state::{KeyedState, route};
use iotflow_types::{Stats, Timestamp, WindowResult, stable_hash};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The open windows of one worker: window start → key → aggregate.
///
/// Everything a tumbling window needs to resume after a restart is in here
/// (plus the input frontier the checkpoint was taken at); it serializes with
/// serde.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub struct TumblingState<K> {
    size_ms: u64,
    allowed_ms: u64,
    /// Windows whose start is below this have fired.
    closed_below: Timestamp,
    windows: BTreeMap<Timestamp, FxHashMap<K, Stats>>,
    /// Keys in the last fired window: new windows start with that capacity
    /// instead of growing (and rehashing) from empty.
    #[serde(default)]
    keys_hint: usize,
}

/// Where a value went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Folded into an open window.
    Open,
    /// Its window had already fired.
    Late,
}

impl<K: Eq + Hash + Clone> TumblingState<K> {
    /// Empty state for windows of `size_ms`, open `allowed_ms` after their end.
    pub fn new(size_ms: u64, allowed_ms: u64) -> Self {
        TumblingState {
            size_ms: size_ms.max(1),
            allowed_ms,
            closed_below: 0,
            windows: BTreeMap::new(),
            keys_hint: 0,
        }
    }

    /// Start of the window holding `ts`.
    #[inline]
    pub fn window_start(&self, ts: Timestamp) -> Timestamp {
        ts - ts % self.size_ms
    }

    /// Folds `value` at `ts` into `key`'s window.
    #[inline]
    pub(crate) fn add(&mut self, key: K, ts: Timestamp, value: f64) -> Placed {
        let s = self.window_start(ts);
        if s < self.closed_below {
            return Placed::Late;
        }
        let hint = self.keys_hint;
        self.windows
            .entry(s)
            .or_insert_with(|| FxHashMap::with_capacity_and_hasher(hint, Default::default()))
            .entry(key)
            .or_default()
            .add(value);
        Placed::Open
    }

    /// Number of open windows (all keys).
    pub fn open_windows(&self) -> usize {
        self.windows.values().map(|w| w.len()).sum()
    }

    /// Fires every window whose last millisecond plus allowed lateness is
    /// below `frontier` (`None`: end of input, fire all), calling `emit`
    /// window by window in start order.
    pub(crate) fn fire(
        &mut self,
        frontier: Option<Timestamp>,
        mut emit: impl FnMut(Vec<WindowResult<K>>),
    ) {
        while let Some((&s, _)) = self.windows.first_key_value() {
            let last = s + self.size_ms - 1 + self.allowed_ms;
            if frontier.is_some_and(|f| last >= f) {
                break;
            }
            let Some((_, keys)) = self.windows.pop_first() else {
                break;
            };
            self.keys_hint = keys.len();
            let end = s + self.size_ms;
            emit(
                keys.into_iter()
                    .map(|(key, stats)| WindowResult {
                        key,
                        start: s,
                        end,
                        stats,
                    })
                    .collect(),
            );
        }
        // Everything up to the frontier is closed, whether or not it had data.
        match frontier {
            Some(f) => {
                // Window s is closed iff s + size − 1 + allowed < f.
                let closed = f.saturating_sub(self.allowed_ms + self.size_ms - 1);
                let closed = closed.div_ceil(self.size_ms) * self.size_ms;
                self.closed_below = self.closed_below.max(closed);
            }
            None => self.closed_below = Timestamp::MAX,
        }
    }
}

impl<K: Eq + Hash + Clone + 'static> crate::windows::WindowLogic<K> for TumblingState<K> {
    fn add(&mut self, key: K, ts: Timestamp, value: f64, _t: Timestamp) -> bool {
        // Windows closed before the batch time have fired (the operator
        // fires up to it first), so `closed_below` decides as the batch time
        // would.
        TumblingState::add(self, key, ts, value) == Placed::Open
    }

    fn fire(
        &mut self,
        bound: Option<Timestamp>,
        emit: &mut impl FnMut(Timestamp, Vec<WindowResult<K>>),
    ) {
        let (size, allowed) = (self.size_ms, self.allowed_ms);
        TumblingState::fire(self, bound, |results| {
            if let Some(first) = results.first() {
                // At the window's last instant (+ allowed lateness).
                let at = first.start + size - 1 + allowed;
                emit(at, results);
            }
        });
    }
}

impl<K> KeyedState for TumblingState<K>
where
    K: Eq + Hash + Clone + Serialize + serde::de::DeserializeOwned,
{
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        for keys in self.windows.values_mut() {
            keys.retain(|k, _| route(stable_hash(k), peers) == worker);
        }
        self.windows.retain(|_, keys| !keys.is_empty());
    }

    fn merge(&mut self, other: Self) {
        // Parts of one consistent snapshot closed the same windows.
        self.closed_below = self.closed_below.max(other.closed_below);
        self.keys_hint = self.keys_hint.max(other.keys_hint);
        for (start, keys) in other.windows {
            let mine = self.windows.entry(start).or_default();
            for (k, stats) in keys {
                mine.entry(k).or_default().merge(&stats);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_fleet_rule() {
        let mut st = TumblingState::<u32>::new(10_000, 0);
        assert_eq!(st.add(1, 12_000, 1.0), Placed::Open);
        let mut out = Vec::new();
        // watermark 19_998 → frontier 19_999: not yet
        st.fire(Some(19_999), |w| out.extend(w));
        assert!(out.is_empty());
        // watermark 19_999 → frontier 20_000: fires
        st.fire(Some(20_000), |w| out.extend(w));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].start, out[0].end, out[0].stats.count),
            (10_000, 20_000, 1)
        );
        assert_eq!(st.add(1, 19_999, 1.0), Placed::Late);
        assert_eq!(st.add(1, 20_000, 1.0), Placed::Open);
    }

    #[test]
    fn rescaling_between_one_and_two_workers_changes_nothing() {
        use iotflow_core::state::{decode, encode, rescale};
        // (key, ts, value) readings in time order; the first half goes in
        // before the snapshot, the rest after the restore.
        let data: Vec<(String, u64, f64)> = (0..2000u64)
            .map(|i| (format!("d-{}", i % 37), i * 13, (i % 11) as f64 * 0.5))
            .collect();
        let (before, after) = data.split_at(1000);
        let run = |old: usize, new: usize| {
            let mut states: Vec<TumblingState<String>> =
                (0..old).map(|_| TumblingState::new(1000, 0)).collect();
            let mut out = Vec::new();
            for (k, ts, v) in before {
                let w = route(stable_hash(k), old);
                states[w].add(k.clone(), *ts, *v);
            }
            let frontier = before.last().map(|r| r.1).unwrap_or(0);
            for st in &mut states {
                st.fire(Some(frontier), |w| out.extend(w));
            }
            let snaps: Vec<Vec<u8>> = states.iter().map(|s| encode(s).expect("encode")).collect();
            let mut restored: Vec<TumblingState<String>> = (0..new)
                .map(|w| {
                    let parts = snaps.iter().map(|b| decode(b).expect("decode")).collect();
                    rescale(parts, w, new).expect("parts")
                })
                .collect();
            for (k, ts, v) in after {
                let w = route(stable_hash(k), new);
                assert_eq!(restored[w].add(k.clone(), *ts, *v), Placed::Open);
            }
            for st in &mut restored {
                st.fire(None, |w| out.extend(w));
            }
            out.sort_by(|x, y| (x.start, &x.key).cmp(&(y.start, &y.key)));
            out
        };
        let reference = run(1, 1);
        assert!(reference.len() > 100);
        assert_eq!(run(2, 1), reference);
        assert_eq!(run(1, 2), reference);
        assert_eq!(run(2, 3), reference);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut st = TumblingState::<String>::new(1000, 0);
        st.add("a".into(), 5, 2.0);
        st.add("b".into(), 1500, 3.0);
        let json = serde_json::to_string(&st).expect("serialize");
        let mut back: TumblingState<String> = serde_json::from_str(&json).expect("deserialize");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        st.fire(None, |w| a.extend(w));
        back.fire(None, |w| b.extend(w));
        a.sort_by(|x, y| (x.start, &x.key).cmp(&(y.start, &y.key)));
        b.sort_by(|x, y| (x.start, &x.key).cmp(&(y.start, &y.key)));
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
    }
}
