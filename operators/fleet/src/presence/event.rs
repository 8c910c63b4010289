//! What comes out of the presence operator.

use iotflow_types::{DeviceId, Timestamp};
use serde::{Deserialize, Serialize};

/// Whether a device is reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    /// The device sent a reading after being offline, unknown, or
    /// registered and silent.
    Online,
    /// No reading for `offline_after_ms`.
    Offline,
}

impl PresenceKind {
    /// `online` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::Online => "online",
            PresenceKind::Offline => "offline",
        }
    }
}

/// A device went online or offline, in event time.
///
/// Each event is stamped at its own time ([`PresenceEvent::at`]); the
/// events of one device alternate, except that a registered device that
/// never sent starts with `offline`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PresenceEvent {
    /// The device.
    pub device: DeviceId,
    /// When: for `online` the reading's time, for `offline` the last
    /// reading's time (or the registration time) + `offline_after_ms`.
    pub at: Timestamp,
    /// What happened.
    pub kind: PresenceKind,
    /// The device's latest reading before `at`; `None` when it never sent
    /// one (its first `online`, or a registered device going `offline`
    /// without ever reporting). For `online`, `at - last_seen` is how long
    /// it was away.
    pub last_seen: Option<Timestamp>,
}

/// The last-seen view of a device, as of `at`.
///
/// The `last_seen` output carries one record per device whose last reading
/// changed in the period ending at `at` (a multiple of
/// `last_seen_every_ms`): an upsert stream. The current view is the
/// latest record of each device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LastSeen {
    /// The device.
    pub device: DeviceId,
    /// The time of its latest reading before `at`.
    pub last_seen: Timestamp,
    /// The report time (a multiple of `last_seen_every_ms`).
    pub at: Timestamp,
}
