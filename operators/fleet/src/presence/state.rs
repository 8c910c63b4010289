//! One worker's presence state: every device it owns, the readings and
//! registry updates waiting for the watermark, and the offline deadlines,
//! swept in event-time order.
//!
//! [`PresenceState`] is timely-free. The operator pushes what arrives with
//! the timely time of its batch and calls [`PresenceState::release`] with
//! the frontier; everything before the frontier is then applied, in time
//! order, whatever order it arrived in. At one time `x` the order is:
//!
//! 1. the last-seen report due at `x` (it covers readings before `x`);
//! 2. deadlines at `x` (devices going offline);
//! 3. registry updates at `x`, by their `at` and `seq`;
//! 4. readings at `x`.
//!
//! A reading is *late* when its event time is before its batch's time:
//! everything before that time may already have been decided. Deciding
//! lateness from the batch time, not from how far the frontier happened to
//! have moved, keeps results independent of scheduling and worker count.

use std::collections::{BTreeMap, BTreeSet};

use iotflow_core::state::{KeyedState, route};
use iotflow_types::{DeviceId, DeviceUpdate, Reading, Timestamp, stable_hash};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::presence::config::PresenceConfig;
use crate::presence::event::{LastSeen, PresenceEvent, PresenceKind};
use crate::presence::tally::PresenceTally;

/// What [`PresenceState::release`] hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// A device went online or offline.
    Event(PresenceEvent),
    /// A device's last-seen time, reported.
    LastSeen(LastSeen),
}

impl Output {
    /// The time the output is stamped at.
    pub(crate) fn at(&self) -> Timestamp {
        match self {
            Output::Event(e) => e.at,
            Output::LastSeen(l) => l.at,
        }
    }
}

/// Something waiting for the watermark. The derived order is the order of
/// application at one time: registry updates (by `at`, then `seq`) before
/// readings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Pending {
    Update {
        at: Timestamp,
        seq: u64,
        device: DeviceId,
        registered: bool,
    },
    Reading(DeviceId),
}

impl Pending {
    fn device(&self) -> &DeviceId {
        match self {
            Pending::Update { device, .. } | Pending::Reading(device) => device,
        }
    }
}

/// One device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Device {
    /// Its latest reading applied.
    last_seen: Option<Timestamp>,
    /// Whether its last event was `online`.
    online: bool,
    /// When it goes offline unless a reading comes first: set while it is
    /// online, or registered and never seen.
    deadline: Option<Timestamp>,
    /// `last_seen` changed since the last report.
    dirty: bool,
    /// The time of its entry in the timer set (which may be before
    /// `deadline`: timers move lazily). Rebuilt after decoding.
    #[serde(skip)]
    armed: Option<Timestamp>,
}

/// The presence state of one worker (see the module docs): plain serde
/// data under the checkpoint contract of `iotflow_core::state`, keyed by
/// device (hashed as the exchange routes), so a snapshot taken on `W`
/// workers restores on any number.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PresenceState {
    devices: FxHashMap<DeviceId, Device>,
    pending: BTreeMap<Timestamp, Vec<Pending>>,
    /// When the next last-seen report is due (`None`: nothing changed).
    flush_at: Option<Timestamp>,
    tally: PresenceTally,
    /// `(time, device)` wake-ups: at least one per device with a deadline,
    /// at or before it. Rebuilt after decoding.
    #[serde(skip)]
    timers: BTreeSet<(Timestamp, DeviceId)>,
    /// Devices with `dirty` set. Rebuilt after decoding.
    #[serde(skip)]
    dirty: Vec<DeviceId>,
}

impl PresenceState {
    /// Holds a reading that arrived in a batch stamped `batch_time`; gives
    /// it back if it is late (its event time is before `batch_time`).
    pub(crate) fn push_reading(
        &mut self,
        batch_time: Timestamp,
        reading: Reading,
    ) -> Result<(), Reading> {
        self.tally.readings += 1;
        if reading.ts < batch_time {
            self.tally.late += 1;
            return Err(reading);
        }
        self.pending
            .entry(reading.ts)
            .or_default()
            .push(Pending::Reading(reading.device));
        Ok(())
    }

    /// Holds a registry update that arrived in a batch stamped
    /// `batch_time`. It takes effect at `max(at, batch_time)`: an update
    /// released behind its own time counts when it was released, so none
    /// is ever late (and none is lost).
    pub(crate) fn push_update(&mut self, batch_time: Timestamp, update: DeviceUpdate) {
        self.tally.updates += 1;
        self.pending
            .entry(update.at.max(batch_time))
            .or_default()
            .push(Pending::Update {
                at: update.at,
                seq: update.seq,
                device: update.device,
                registered: update.info.is_some(),
            });
    }

    /// Applies everything before `bound` (`None`: everything, the input
    /// has ended) in time order, and hands out what happened, each output
    /// at its own time (always before `bound`).
    pub(crate) fn release(
        &mut self,
        bound: Option<Timestamp>,
        config: &PresenceConfig,
        out: &mut impl FnMut(Output),
    ) {
        loop {
            let next = [
                self.pending.first_key_value().map(|(t, _)| *t),
                self.timers.first().map(|(t, _)| *t),
                self.flush_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(x) = next.filter(|x| bound.is_none_or(|b| *x < b)) else {
                break;
            };
            if self.flush_at == Some(x) {
                self.report(x, out);
            }
            while let Some((t, _)) = self.timers.first()
                && *t == x
            {
                if let Some((_, device)) = self.timers.pop_first() {
                    self.wake(x, device, out);
                }
            }
            if let Some(entry) = self.pending.first_entry()
                && *entry.key() == x
            {
                let mut items = entry.remove();
                items.sort();
                for item in items {
                    match item {
                        Pending::Update {
                            device, registered, ..
                        } => self.update(x, device, registered, config),
                        Pending::Reading(device) => self.reading(x, device, config, out),
                    }
                }
            }
        }
    }

    fn arm(&mut self, device: &DeviceId, at: Timestamp) {
        if let Some(d) = self.devices.get_mut(device)
            && d.armed.is_none()
        {
            d.armed = Some(at);
            self.timers.insert((at, device.clone()));
        }
    }

    fn reading(
        &mut self,
        x: Timestamp,
        device: DeviceId,
        config: &PresenceConfig,
        out: &mut impl FnMut(Output),
    ) {
        self.tally.applied += 1;
        let d = self.devices.entry(device.clone()).or_default();
        if !d.online {
            d.online = true;
            self.tally.online += 1;
            out(Output::Event(PresenceEvent {
                device: device.clone(),
                at: x,
                kind: PresenceKind::Online,
                last_seen: d.last_seen,
            }));
        }
        let deadline = x.saturating_add(config.offline_after_ms);
        d.deadline = Some(deadline);
        if d.last_seen != Some(x) {
            d.last_seen = Some(x);
            if !d.dirty {
                d.dirty = true;
                self.dirty.push(device.clone());
            }
            if self.flush_at.is_none() {
                let every = config.last_seen_every_ms;
                self.flush_at = Some((x / every).saturating_add(1).saturating_mul(every));
            }
        }
        // Armed here rather than through `arm`: the entry is in hand, so a
        // reading costs one map lookup.
        if d.armed.is_none() {
            d.armed = Some(deadline);
            self.timers.insert((deadline, device));
        }
    }

    fn update(
        &mut self,
        x: Timestamp,
        device: DeviceId,
        registered: bool,
        config: &PresenceConfig,
    ) {
        if registered {
            if !self.devices.contains_key(&device) {
                let deadline = x.saturating_add(config.offline_after_ms);
                self.devices.insert(
                    device.clone(),
                    Device {
                        deadline: Some(deadline),
                        ..Device::default()
                    },
                );
                self.arm(&device, deadline);
            }
        } else if self
            .devices
            .get(&device)
            .is_some_and(|d| d.last_seen.is_none() && d.deadline.is_some())
        {
            // Registered, never seen, not yet offline: no longer expected.
            // (Its timer entry goes stale and is skipped.)
            self.devices.remove(&device);
        }
    }

    fn wake(&mut self, x: Timestamp, device: DeviceId, out: &mut impl FnMut(Output)) {
        let Some(d) = self.devices.get_mut(&device) else {
            return;
        };
        if d.armed != Some(x) {
            return; // stale: the device was forgotten and came back
        }
        d.armed = None;
        match d.deadline {
            Some(deadline) if deadline == x => {
                d.deadline = None;
                d.online = false;
                self.tally.offline += 1;
                out(Output::Event(PresenceEvent {
                    device,
                    at: x,
                    kind: PresenceKind::Offline,
                    last_seen: d.last_seen,
                }));
            }
            Some(later) => self.arm(&device, later),
            None => {}
        }
    }

    fn report(&mut self, x: Timestamp, out: &mut impl FnMut(Output)) {
        self.flush_at = None;
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort();
        for device in dirty {
            let Some(d) = self.devices.get_mut(&device) else {
                continue;
            };
            d.dirty = false;
            if let Some(last_seen) = d.last_seen {
                self.tally.last_seen += 1;
                out(Output::LastSeen(LastSeen {
                    device,
                    last_seen,
                    at: x,
                }));
            }
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> &PresenceTally {
        &self.tally
    }

    /// Takes the counts (at the end of input).
    pub(crate) fn take_tally(&mut self) -> PresenceTally {
        std::mem::take(&mut self.tally)
    }

    /// Devices known: seen, or registered and expected.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Devices whose last event was `online`.
    pub fn online(&self) -> usize {
        self.devices.values().filter(|d| d.online).count()
    }

    /// Readings and registry updates waiting for the watermark.
    pub fn pending(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// The latest reading of `device` applied so far.
    pub fn last_seen(&self, device: &DeviceId) -> Option<Timestamp> {
        self.devices.get(device).and_then(|d| d.last_seen)
    }

    /// Rebuilds the timers and the dirty list from the devices (after
    /// decoding or rescaling).
    pub(crate) fn rebuild(&mut self) {
        self.timers.clear();
        self.dirty.clear();
        for (id, d) in &mut self.devices {
            d.armed = d.deadline;
            if let Some(t) = d.deadline {
                self.timers.insert((t, id.clone()));
            }
            if d.dirty {
                self.dirty.push(id.clone());
            }
        }
        if self.dirty.is_empty() {
            self.flush_at = None;
        }
    }
}

impl KeyedState for PresenceState {
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        let owned = |d: &DeviceId| route(stable_hash(d), peers) == worker;
        self.devices.retain(|d, _| owned(d));
        for items in self.pending.values_mut() {
            items.retain(|p| owned(p.device()));
        }
        self.pending.retain(|_, items| !items.is_empty());
        if worker != 0 {
            self.tally = PresenceTally::default();
        }
        self.rebuild();
    }

    fn merge(&mut self, other: Self) {
        // Devices are disjoint between the parts of one snapshot.
        self.devices.extend(other.devices);
        for (at, items) in other.pending {
            self.pending.entry(at).or_default().extend(items);
        }
        // Every part of one snapshot has the same report time (the first
        // multiple of the period at or after the checkpoint), or none.
        self.flush_at = match (self.flush_at, other.flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.tally.merge(&other.tally);
        self.rebuild();
    }
}
