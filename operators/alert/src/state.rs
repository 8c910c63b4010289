//! One worker's lifecycle state: every key's alert, the signals waiting for
//! the watermark, and the deadlines, swept in lifecycle-time order.

use std::collections::{BTreeMap, BTreeSet};

use iotflow_core::state::{KeyedState, route};
use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::AlertEvent;
use crate::lifecycle::KeyState;
use crate::policy::AlertPolicy;
use crate::signal::{AlertKey, Signal};
use crate::tally::AlertTally;

/// The state of a lifecycle operator on one worker: plain serde data under
/// the checkpoint contract, keyed by [`AlertKey`] (hashed as the exchange
/// routes), so a snapshot taken on `W` workers restores on any number.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AlertState {
    keys: BTreeMap<AlertKey, KeyState>,
    /// Signals by lifecycle time, not yet passed by the watermark.
    pending: BTreeMap<Timestamp, Vec<Signal>>,
    tally: AlertTally,
    /// `(deadline, key)` of every key: derived from `keys`, rebuilt after
    /// decoding.
    #[serde(skip)]
    timers: BTreeSet<(Timestamp, AlertKey)>,
}

impl AlertState {
    /// Holds a signal that arrived stamped `t`. Its lifecycle time is
    /// `max(ts, t)`: a signal a detector released behind its own event
    /// time counts when it was released, so the lifecycle never goes back
    /// in time and no signal is ever late.
    pub(crate) fn push(&mut self, t: Timestamp, signal: Signal) {
        self.tally.received += 1;
        self.pending
            .entry(signal.ts.max(t))
            .or_default()
            .push(signal);
    }

    /// Applies every pending signal and expires every deadline before
    /// `bound` (`None`: all, the input has ended), in time order; at equal
    /// times deadlines first, then signals by key and content.
    pub(crate) fn release(
        &mut self,
        bound: Option<Timestamp>,
        policy: &AlertPolicy,
        emit: &mut dyn FnMut(AlertEvent),
    ) {
        let ready = match bound {
            Some(b) => {
                let later = self.pending.split_off(&b);
                std::mem::replace(&mut self.pending, later)
            }
            None => std::mem::take(&mut self.pending),
        };
        for (at, mut signals) in ready {
            self.expire(|due| due <= at, policy, emit);
            signals.sort_by(|a, b| {
                (&a.device, &a.rule)
                    .cmp(&(&b.device, &b.rule))
                    .then_with(|| a.tie_break(b))
            });
            for s in signals {
                self.apply(at, s, policy, emit);
            }
        }
        self.expire(|due| bound.is_none_or(|b| due < b), policy, emit);
    }

    fn apply(
        &mut self,
        at: Timestamp,
        signal: Signal,
        policy: &AlertPolicy,
        emit: &mut dyn FnMut(AlertEvent),
    ) {
        let key = signal.key();
        let prev = self.keys.remove(&key);
        if let Some(p) = &prev {
            self.timers.remove(&(p.deadline(), key.clone()));
        }
        let next = KeyState::apply(prev, &key, at, signal, policy, &mut self.tally, emit);
        self.timers.insert((next.deadline(), key.clone()));
        self.keys.insert(key, next);
    }

    fn expire(
        &mut self,
        due: impl Fn(Timestamp) -> bool,
        policy: &AlertPolicy,
        emit: &mut dyn FnMut(AlertEvent),
    ) {
        while self.timers.first().is_some_and(|(t, _)| due(*t)) {
            let Some((_, key)) = self.timers.pop_first() else {
                break;
            };
            let Some(st) = self.keys.remove(&key) else {
                continue;
            };
            if let Some(next) = st.expire(&key, policy, &mut self.tally, emit) {
                self.timers.insert((next.deadline(), key.clone()));
                self.keys.insert(key, next);
            }
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> &AlertTally {
        &self.tally
    }

    /// Takes the counts (at the end of input).
    pub(crate) fn take_tally(&mut self) -> AlertTally {
        std::mem::take(&mut self.tally)
    }

    /// Keys with an open alert or a cool-down.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Signals waiting for the watermark.
    pub fn pending(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Rebuilds the deadlines from the keys (after decoding or rescaling).
    pub(crate) fn rebuild_timers(&mut self) {
        self.timers = self
            .keys
            .iter()
            .map(|(k, st)| (st.deadline(), k.clone()))
            .collect();
    }
}

impl KeyedState for AlertState {
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        let owned = |h: u64| route(h, peers) == worker;
        self.keys
            .retain(|k, _| owned(AlertKey::hash_parts(&k.device, &k.rule)));
        for signals in self.pending.values_mut() {
            signals.retain(|s| owned(s.key_hash()));
        }
        self.pending.retain(|_, s| !s.is_empty());
        if worker != 0 {
            self.tally = AlertTally::default();
        }
        self.rebuild_timers();
    }

    fn merge(&mut self, other: Self) {
        // Keys are disjoint between the parts of one snapshot.
        self.keys.extend(other.keys);
        for (at, signals) in other.pending {
            self.pending.entry(at).or_default().extend(signals);
        }
        self.tally.merge(&other.tally);
        self.rebuild_timers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Transition;
    use crate::signal::Severity;
    use iotflow_core::state::{decode, encode, rescale};

    fn policy() -> AlertPolicy {
        AlertPolicy::default()
            .with_cooldown_ms(120)
            .with_escalate_after_ms(150)
            .with_resolve_after_ms(100)
    }

    /// Pushes `(stamp, device, ts)` signals one by one, releasing up to each
    /// stamp; snapshots and restores on `new` of `old` workers before the
    /// `cut`-th. Returns every event, sorted.
    fn run(signals: &[(u64, String, u64)], old: usize, new: usize, cut: usize) -> Vec<AlertEvent> {
        let p = policy();
        let mut out = Vec::new();
        let mut emit = |e: AlertEvent| out.push(e);
        let mut states: Vec<AlertState> = (0..old).map(|_| AlertState::default()).collect();
        for (i, (t, dev, ts)) in signals.iter().enumerate() {
            for st in &mut states {
                st.release(Some(*t), &p, &mut emit);
            }
            if i == cut {
                let snaps: Vec<Vec<u8>> =
                    states.iter().map(|s| encode(s).expect("encode")).collect();
                states = (0..new)
                    .map(|w| {
                        let parts: Vec<AlertState> =
                            snaps.iter().map(|b| decode(b).expect("decode")).collect();
                        rescale(parts, w, new).expect("parts")
                    })
                    .collect();
            }
            let s = Signal::new(dev, "hot", *ts, Severity::Warning);
            let w = route(s.key_hash(), states.len());
            states[w].push(*t, s);
        }
        let mut tally = AlertTally::default();
        for st in &mut states {
            st.release(None, &p, &mut emit);
            assert_eq!((st.keys(), st.pending()), (0, 0));
            tally.merge(st.tally());
        }
        tally.check_conservation().expect("conserved");
        out.sort_by(|a, b| (&a.device, a.at, a.transition).cmp(&(&b.device, b.at, b.transition)));
        out
    }

    #[test]
    fn snapshots_rescale_without_changing_events() {
        let signals: Vec<(u64, String, u64)> = (0..600u64)
            .map(|i| {
                // Bursts of 150 signals with quiet gaps between, so alerts
                // open, escalate, resolve, and cool down.
                let t = i * 7 + (i / 150) * 700;
                (t, format!("d-{}", (i * 13) % 5), t + (i * 31) % 40)
            })
            .collect();
        let reference = run(&signals, 1, 1, usize::MAX);
        assert!(
            reference
                .iter()
                .any(|e| e.transition == Transition::Escalated)
        );
        assert!(
            reference
                .iter()
                .any(|e| e.transition == Transition::Resolved)
        );
        assert!(reference.len() > 20, "{}", reference.len());
        for (old, new, cut) in [(1, 2, 100), (2, 1, 333), (2, 3, 50), (3, 2, 599)] {
            assert_eq!(
                run(&signals, old, new, cut),
                reference,
                "{old}→{new} at {cut}"
            );
        }
    }
}
