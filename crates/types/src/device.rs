//! What a pipeline knows about a device, and how that knowledge changes.
//!
//! The device registry is the source of truth; a pipeline sees it as a
//! stream of [`DeviceUpdate`]s, each saying "from event time `at` on, this
//! device is described by this [`DeviceInfo`]". Enrichment joins readings
//! with the description valid at the reading's event time; fleet views count
//! devices by tenant, group, status and firmware.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{DeviceId, SmallStr, Tags, Timestamp};

/// Lifecycle status of a device in the registry. Only `Active` devices
/// authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceStatus {
    /// Provisioned and allowed to send.
    Active,
    /// Temporarily refused (maintenance, suspected compromise).
    Suspended,
    /// Permanently retired; kept for history.
    Decommissioned,
}

impl DeviceStatus {
    /// Every status, in declaration order.
    pub const ALL: [DeviceStatus; 3] = [
        DeviceStatus::Active,
        DeviceStatus::Suspended,
        DeviceStatus::Decommissioned,
    ];

    /// The stored, stable name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Suspended => "suspended",
            DeviceStatus::Decommissioned => "decommissioned",
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`DeviceStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown status {:?} (expected active, suspended or decommissioned)",
            self.0
        )
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for DeviceStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        match s {
            "active" => Ok(DeviceStatus::Active),
            "suspended" => Ok(DeviceStatus::Suspended),
            "decommissioned" => Ok(DeviceStatus::Decommissioned),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// The registry's description of one device, as a pipeline uses it.
///
/// `metadata` is the registry's JSON object flattened one level: each
/// top-level key with its value, strings as they are and other JSON values
/// as JSON text; sorted by key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device.
    pub device: DeviceId,
    /// Its tenant.
    pub tenant: SmallStr,
    /// Display name.
    pub name: SmallStr,
    /// Model or kind (`thermostat`, `pump-v2`, …).
    pub device_type: SmallStr,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Firmware version, if known.
    pub firmware: Option<SmallStr>,
    /// Ids of the groups the device is in, sorted.
    pub groups: Vec<SmallStr>,
    /// Metadata, flattened one level, sorted by key.
    pub metadata: Tags,
}

impl DeviceInfo {
    /// An `Active` device of `tenant` of type `device_type`, named after its
    /// id, without firmware, groups or metadata.
    pub fn new(device: &str, tenant: &str, device_type: &str) -> Self {
        DeviceInfo {
            device: DeviceId::new(device),
            tenant: SmallStr::new(tenant),
            name: SmallStr::new(device),
            device_type: SmallStr::new(device_type),
            status: DeviceStatus::Active,
            firmware: None,
            groups: Vec::new(),
            metadata: Tags::new(),
        }
    }

    /// The metadata value of `key`, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A change of the registry: from event time `at` on, `device` is described
/// by `info`; `None` means the device is no longer registered.
///
/// Updates of one device are applied in `at` order; two updates of one
/// device with the same `at` are resolved by `seq` (the registry's change
/// sequence number, higher wins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceUpdate {
    /// Event time from which the change holds, ms since the Unix epoch.
    pub at: Timestamp,
    /// The registry's change sequence number (monotonic per registry).
    pub seq: u64,
    /// The device changed.
    pub device: DeviceId,
    /// Its description from `at` on, or `None` when removed.
    pub info: Option<Arc<DeviceInfo>>,
}
