use std::collections::BTreeMap;
use std::hash::Hash;

use iotflow_types::{Stats, Timestamp, WindowResult};
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
