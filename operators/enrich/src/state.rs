//! The registry's history on one worker, and the join of a reading with the
//! description valid at its time.
//!
//! [`EnrichState`] is timely-free: the operator applies updates with the
//! time they were stamped at, joins readings at their join time, and
//! compacts the history as its frontiers advance.
//!
//! Each device has its *versions*, sorted by `(from, seq)`, where `from =
//! max(at, stamp)`: an update holds from its `at`, or from its stamp if it
//! came later than that (a late update cannot change what was already
//! emitted). The version valid at `t` is the last one with `from <= t`; a
//! version without a description (`None`) means the device was removed.
//!
//! Compaction to a bound `B` (no lookup will ever be made before `B`)
//! keeps, per device, the last version that starts before `B` and every
//! version from `B` on; a device whose only version left is a removal
//! before `B` is forgotten (unknown either way). Versions starting at or
//! after `B` are never dropped, which is what lets a snapshot leave out
//! the updates stamped after its checkpoint ([`EnrichState::at`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use iotflow_core::state::{KeyedState, route};
use iotflow_types::{
    DeviceId, DeviceInfo, DeviceStatus, DeviceUpdate, Reading, Timestamp, stable_hash,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::config::UnknownDevice;
use crate::enriched::Enriched;
use crate::tally::EnrichTally;

/// One registry update as the history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Version {
    /// The update's `at`.
    at: Timestamp,
    /// The timely time it came in at.
    stamp: Timestamp,
    /// The registry's change sequence number.
    seq: u64,
    /// The description, `None` for a removal.
    info: Option<Arc<DeviceInfo>>,
}

impl Version {
    /// From when the version holds.
    #[inline]
    fn from(&self) -> Timestamp {
        self.at.max(self.stamp)
    }

    #[inline]
    fn key(&self) -> (Timestamp, u64) {
        (self.from(), self.seq)
    }
}

/// One device's versions, sorted by [`Version::key`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct History {
    versions: Vec<Version>,
    /// The time this device is registered at in [`EnrichState::wake`].
    #[serde(skip)]
    wake: Option<Timestamp>,
}

impl History {
    /// The bound past which compaction can drop something.
    fn next_compaction(&self) -> Option<Timestamp> {
        match self.versions.as_slice() {
            [] => None,
            [only] => only.info.is_none().then(|| only.from().saturating_add(1)),
            [_, second, ..] => Some(second.from().saturating_add(1)),
        }
    }

    /// Drops what no lookup at or after `bound` can see.
    fn compact(&mut self, bound: Timestamp) {
        let before = self.versions.partition_point(|v| v.from() < bound);
        if before >= 2 {
            self.versions.drain(..before - 1);
        }
        if self
            .versions
            .first()
            .is_some_and(|v| v.from() < bound && v.info.is_none())
        {
            self.versions.remove(0);
        }
    }
}

/// What became of a joined reading.
#[derive(Clone, Debug, PartialEq)]
pub enum Joined {
    /// To the main output: described, or an unknown device passed through.
    Enriched(Enriched),
    /// An unknown device's reading, to be rejected.
    Unknown(Reading),
}

/// The registry history of the devices one worker owns, and its counts.
///
/// Under the checkpoint contract of `iotflow_core::state`
/// ([`KeyedState`]): keyed by device, it rescales between worker counts.
/// Readings are never in it: a checkpoint is taken once no reading waits
/// (see the crate docs).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EnrichState {
    devices: FxHashMap<DeviceId, History>,
    /// Time → devices whose history may be compacted once the bound
    /// reaches it (entries go stale when a device's time moves; checked
    /// against the device when popped).
    #[serde(skip)]
    wake: BTreeMap<Timestamp, Vec<DeviceId>>,
    /// Counts of this worker (rescaling gives them all to worker 0).
    pub tally: EnrichTally,
}

impl EnrichState {
    /// Devices with a history.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Versions kept over all devices.
    pub fn versions(&self) -> usize {
        self.devices.values().map(|h| h.versions.len()).sum()
    }

    /// Applies a registry update that came in at timely time `stamp`: it
    /// holds from `max(update.at, stamp)` on.
    pub fn apply(&mut self, update: DeviceUpdate, stamp: Timestamp) {
        self.tally.updates += 1;
        if update.at < stamp {
            self.tally.late_updates += 1;
        }
        let version = Version {
            at: update.at,
            stamp,
            seq: update.seq,
            info: update.info,
        };
        let history = self.devices.entry(update.device.clone()).or_default();
        // After equal keys: of two updates with the same (at, seq), which
        // the registry never sends, the later one wins.
        let pos = history
            .versions
            .partition_point(|v| v.key() <= version.key());
        history.versions.insert(pos, version);
        Self::schedule(&mut self.wake, update.device, history);
    }

    fn schedule(
        wake: &mut BTreeMap<Timestamp, Vec<DeviceId>>,
        device: DeviceId,
        history: &mut History,
    ) {
        let next = history.next_compaction();
        if next.is_some() && next != history.wake {
            history.wake = next;
            if let Some(at) = next {
                wake.entry(at).or_default().push(device);
            }
        }
    }

    /// The description of `device` valid at `at`, if any.
    #[inline]
    pub fn lookup(&self, device: &DeviceId, at: Timestamp) -> Option<&Arc<DeviceInfo>> {
        let history = self.devices.get(device)?;
        history
            .versions
            .iter()
            .rev()
            .find(|v| v.from() <= at)?
            .info
            .as_ref()
    }

    /// Counts a reading that came in at timely time `stamp` and returns its
    /// join time: its event time, or its stamp if it is behind it (a late
    /// reading: the history before the stamp may be compacted).
    #[inline]
    pub fn receive(&mut self, reading: &Reading, stamp: Timestamp) -> Timestamp {
        self.tally.received += 1;
        if reading.ts < stamp {
            self.tally.late += 1;
            stamp
        } else {
            reading.ts
        }
    }

    /// Joins `reading` with its device's description at `at` (its join
    /// time, see [`EnrichState::receive`]), and counts what became of it.
    #[inline]
    pub fn join(&mut self, reading: Reading, at: Timestamp, unknown: UnknownDevice) -> Joined {
        match self.lookup(&reading.device, at).cloned() {
            Some(info) => {
                self.tally.enriched += 1;
                if info.status != DeviceStatus::Active {
                    self.tally.inactive += 1;
                }
                Joined::Enriched(Enriched {
                    reading,
                    info: Some(info),
                })
            }
            None => match unknown {
                UnknownDevice::Reject => {
                    self.tally.rejected += 1;
                    Joined::Unknown(reading)
                }
                UnknownDevice::PassThrough => {
                    self.tally.passed_through += 1;
                    Joined::Enriched(Enriched {
                        reading,
                        info: None,
                    })
                }
            },
        }
    }

    /// No lookup will be made before `bound` any more: drops every version
    /// no later lookup can see (see the module docs).
    pub fn compact(&mut self, bound: Timestamp) {
        while let Some(entry) = self.wake.first_entry() {
            if *entry.key() > bound {
                break;
            }
            let (at, devices) = entry.remove_entry();
            for device in devices {
                let Some(history) = self.devices.get_mut(&device) else {
                    continue;
                };
                if history.wake != Some(at) {
                    continue;
                }
                history.wake = None;
                history.compact(bound);
                if history.versions.is_empty() {
                    self.devices.remove(&device);
                } else {
                    Self::schedule(&mut self.wake, device, history);
                }
            }
        }
    }

    /// The state as of checkpoint time `time`: without the updates stamped
    /// at or after it (they are replayed after a restore), and with counts
    /// to match. Valid as long as the history was never compacted past
    /// `time`.
    pub fn at(&self, time: Timestamp) -> EnrichState {
        let mut tally = self.tally.clone();
        let mut devices = FxHashMap::default();
        devices.reserve(self.devices.len());
        for (device, history) in &self.devices {
            let mut versions = Vec::with_capacity(history.versions.len());
            for v in &history.versions {
                if v.stamp < time {
                    versions.push(v.clone());
                } else {
                    tally.updates -= 1;
                    if v.at < v.stamp {
                        tally.late_updates -= 1;
                    }
                }
            }
            if !versions.is_empty() {
                devices.insert(
                    device.clone(),
                    History {
                        versions,
                        wake: None,
                    },
                );
            }
        }
        let mut state = EnrichState {
            devices,
            wake: BTreeMap::new(),
            tally,
        };
        state.rebuild_wake();
        state
    }

    /// Registers every device for compaction again (after a restore: the
    /// schedule is not in snapshots).
    pub fn rebuild_wake(&mut self) {
        self.wake.clear();
        for (device, history) in &mut self.devices {
            history.wake = None;
            Self::schedule(&mut self.wake, device.clone(), history);
        }
    }
}

impl KeyedState for EnrichState {
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        self.devices
            .retain(|d, _| route(stable_hash(d), peers) == worker);
        if worker != 0 {
            self.tally = EnrichTally::default();
        }
        self.rebuild_wake();
    }

    fn merge(&mut self, other: Self) {
        // Devices are disjoint between the parts of one snapshot.
        self.devices.extend(other.devices);
        self.tally.merge(&other.tally);
        self.rebuild_wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotflow_core::state::{decode, encode, rescale};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn info(device: &str, firmware: &str) -> Arc<DeviceInfo> {
        let mut i = DeviceInfo::new(device, "acme", "thermostat");
        i.firmware = Some(firmware.into());
        Arc::new(i)
    }

    fn update(device: &str, at: Timestamp, seq: u64, fw: Option<&str>) -> DeviceUpdate {
        DeviceUpdate {
            at,
            seq,
            device: DeviceId::new(device),
            info: fw.map(|f| info(device, f)),
        }
    }

    fn fw(st: &EnrichState, device: &str, at: Timestamp) -> Option<String> {
        st.lookup(&DeviceId::new(device), at)
            .map(|i| i.firmware.as_deref().unwrap_or_default().to_owned())
    }

    #[test]
    fn lookup_takes_the_last_version_at_or_before_the_time() {
        let mut st = EnrichState::default();
        // Out of order in arrival; ties at 20 resolved by seq.
        st.apply(update("d", 20, 7, Some("b")), 0);
        st.apply(update("d", 10, 1, Some("a")), 0);
        st.apply(update("d", 20, 5, Some("x")), 0);
        st.apply(update("d", 30, 9, None), 0);
        st.apply(update("d", 40, 11, Some("c")), 0);
        let got: Vec<_> = [9, 10, 19, 20, 29, 30, 39, 40, 99]
            .iter()
            .map(|t| fw(&st, "d", *t))
            .collect();
        let want = [
            None,
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            None,
            None,
            Some("c"),
            Some("c"),
        ];
        assert_eq!(got, want.map(|w| w.map(str::to_owned)));
        assert_eq!(fw(&st, "other", 50), None);
    }

    #[test]
    fn a_late_update_holds_from_its_stamp() {
        let mut st = EnrichState::default();
        st.apply(update("d", 0, 1, Some("a")), 0);
        st.apply(update("d", 10, 2, Some("b")), 25);
        assert_eq!(fw(&st, "d", 24).as_deref(), Some("a"));
        assert_eq!(fw(&st, "d", 25).as_deref(), Some("b"));
        assert_eq!((st.tally.updates, st.tally.late_updates), (2, 1));
    }

    #[test]
    fn compaction_keeps_every_answer_from_the_bound_on() {
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..200 {
            let mut st = EnrichState::default();
            let mut all = EnrichState::default();
            let mut bound = 0;
            for seq in 0..40u64 {
                let dev = format!("d{}", rng.random_range(0..3));
                let at = bound + rng.random_range(0..50);
                let f = (rng.random_range(0..4) > 0).then(|| format!("{seq}"));
                let u = update(&dev, at, seq, f.as_deref());
                st.apply(u.clone(), bound);
                all.apply(u, bound);
                if rng.random_bool(0.3) {
                    bound += rng.random_range(0..30);
                    st.compact(bound);
                    for d in ["d0", "d1", "d2"] {
                        for t in bound..bound + 120 {
                            assert_eq!(fw(&st, d, t), fw(&all, d, t), "{d} at {t}, bound {bound}");
                        }
                    }
                }
            }
            st.compact(u64::MAX);
            assert!(st.versions() <= 3, "one version per device at most");
        }
    }

    #[test]
    fn removed_devices_are_forgotten_and_old_versions_dropped() {
        let mut st = EnrichState::default();
        st.apply(update("a", 0, 1, Some("1")), 0);
        st.apply(update("a", 10, 2, Some("2")), 0);
        st.apply(update("a", 20, 3, Some("3")), 0);
        st.apply(update("b", 0, 4, Some("1")), 0);
        st.apply(update("b", 5, 5, None), 0);
        st.compact(15);
        // a keeps the version valid at 15 and the later one; b's removal
        // is before the bound: b is forgotten.
        assert_eq!((st.devices(), st.versions()), (1, 2));
        assert_eq!(fw(&st, "a", 15).as_deref(), Some("2"));
        assert_eq!(fw(&st, "b", 15), None);
        st.compact(21);
        assert_eq!(st.versions(), 1);
        assert_eq!(fw(&st, "a", 21).as_deref(), Some("3"));
    }

    #[test]
    fn snapshot_leaves_out_updates_stamped_after_the_checkpoint() {
        let mut st = EnrichState::default();
        st.apply(update("a", 0, 1, Some("1")), 0);
        st.apply(update("a", 90, 2, Some("2")), 100);
        st.apply(update("a", 150, 3, Some("3")), 150);
        st.apply(update("b", 120, 4, Some("1")), 120);
        st.compact(100);
        let snap = st.at(110);
        assert_eq!(fw(&snap, "a", 200).as_deref(), Some("2"));
        assert_eq!(fw(&snap, "b", 200), None);
        assert_eq!((snap.tally.updates, snap.tally.late_updates), (2, 1));
        let bytes = encode(&snap).expect("encodes");
        let back: EnrichState = decode(&bytes).expect("decodes");
        assert_eq!(fw(&back, "a", 200).as_deref(), Some("2"));
        assert_eq!(back.tally, snap.tally);
    }

    #[test]
    fn rescaling_keeps_every_device_once_and_the_counts_on_worker_zero() {
        let mut st = EnrichState::default();
        for i in 0..100u64 {
            st.apply(update(&format!("d-{i}"), i, i, Some("1")), 0);
            st.apply(update(&format!("d-{i}"), i + 50, 100 + i, Some("2")), 0);
        }
        let bytes = encode(&st.at(u64::MAX)).expect("encodes");
        let mut total = EnrichTally::default();
        let mut devices = 0;
        for w in 0..3 {
            let part: EnrichState =
                rescale(vec![decode(&bytes).expect("decodes")], w, 3).expect("one part");
            devices += part.devices();
            total.merge(&part.tally);
            for d in part.devices.keys() {
                assert_eq!(route(stable_hash(d), 3), w);
            }
            assert!(!part.wake.is_empty(), "compaction is scheduled again");
        }
        assert_eq!(devices, 100);
        assert_eq!(total.updates, 200);
    }
}
