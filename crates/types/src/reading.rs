use serde::{Deserialize, Serialize};

use crate::{DeviceId, Metric, SmallStr, Timestamp};

/// Optional key/value labels of a reading (site, firmware, …). Empty tags
/// cost no allocation.
pub type Tags = Vec<(SmallStr, SmallStr)>;

/// One measured value of one metric of one device at one event time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The device that measured.
    pub device: DeviceId,
    /// Event time, ms since the Unix epoch.
    pub ts: Timestamp,
    /// What was measured.
    pub metric: Metric,
    /// The measured value; always finite once validated.
    pub value: f64,
    /// Unit of `value` as the device sent it (`C`, `%`, `hPa`, …), if any.
    pub unit: Option<SmallStr>,
    /// Optional labels.
    pub tags: Tags,
}

impl Reading {
    /// A reading without unit or tags.
    pub fn new(device: &str, ts: Timestamp, metric: &str, value: f64) -> Self {
        Reading {
            device: DeviceId::new(device),
            ts,
            metric: Metric::new(metric),
            value,
            unit: None,
            tags: Tags::new(),
        }
    }

    /// Sets the unit.
    pub fn with_unit(mut self, unit: &str) -> Self {
        self.unit = Some(SmallStr::new(unit));
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((SmallStr::new(key), SmallStr::new(value)));
        self
    }
}
