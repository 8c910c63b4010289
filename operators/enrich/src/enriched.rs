//! The output record of an enrichment.

use std::sync::Arc;

use iotflow_types::{DeviceInfo, DeviceStatus, Reading};
use serde::{Deserialize, Serialize};

/// A reading with the registry's description of its device as of the
/// reading's event time.
///
/// `info` is shared, not copied: every reading of a device between two
/// registry changes points at the same [`DeviceInfo`], so 10 000 devices
/// cost 10 000 descriptions however many readings flow, and enriching a
/// reading costs one reference-count increment. `None` only when the
/// enrichment passes unknown devices through
/// ([`UnknownDevice::PassThrough`](crate::UnknownDevice::PassThrough)).
///
/// The description says what the registry said, status included: a reading
/// of a suspended or decommissioned device is enriched like any other, and
/// [`Enriched::is_active`] tells them apart (the enrichment counts them in
/// [`EnrichTally::inactive`](crate::EnrichTally::inactive)). Filter on it
/// downstream if such readings must not count.
///
/// As JSON: `{"reading": {…}, "info": {…} | null}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enriched {
    /// The reading, unchanged.
    pub reading: Reading,
    /// Its device's description at the reading's event time.
    pub info: Option<Arc<DeviceInfo>>,
}

impl Enriched {
    /// Whether the registry knew the device at the reading's event time.
    pub fn is_known(&self) -> bool {
        self.info.is_some()
    }

    /// Whether the device was registered and `Active` at the reading's
    /// event time.
    pub fn is_active(&self) -> bool {
        self.status() == Some(DeviceStatus::Active)
    }

    /// The device's status at the reading's event time, if known.
    pub fn status(&self) -> Option<DeviceStatus> {
        self.info.as_ref().map(|i| i.status)
    }

    /// The device's tenant at the reading's event time, if known.
    pub fn tenant(&self) -> Option<&str> {
        self.info.as_ref().map(|i| i.tenant.as_str())
    }
}
