use serde::{Deserialize, Serialize};

use crate::{DeviceId, Metric, Reading, SmallStr, Timestamp, stable_hash};

/// The key of one time series: a device's metric.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The device.
    pub device: DeviceId,
    /// The metric.
    pub metric: Metric,
}

impl SeriesKey {
    /// The series a reading belongs to.
    #[inline]
    pub fn of(r: &Reading) -> Self {
        SeriesKey {
            device: r.device.clone(),
            metric: r.metric.clone(),
        }
    }

    /// `stable_hash(&SeriesKey::of(r))` without building the key: the hash
    /// every operator keyed by series exchanges by, so they co-partition.
    ///
    /// ```
    /// use iotflow_types::{Reading, SeriesKey, stable_hash};
    /// let r = Reading::new("d-7", 0, "temp", 1.0);
    /// assert_eq!(SeriesKey::hash_of(&r), stable_hash(&SeriesKey::of(&r)));
    /// ```
    #[inline]
    pub fn hash_of(r: &Reading) -> u64 {
        Self::hash_parts(r.device.as_str(), r.metric.as_str())
    }

    /// The same hash from a device and a metric name.
    #[inline]
    pub fn hash_parts(device: &str, metric: &str) -> u64 {
        stable_hash(&(device, metric))
    }
}

/// Count, min, max and sum of the values of a window (mean derived).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub count: u64,
    /// Smallest value (`+inf` when empty).
    pub min: f64,
    /// Largest value (`-inf` when empty).
    pub max: f64,
    /// Sum of the values, in arrival order.
    pub sum: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }
}

impl Stats {
    /// Folds one value in.
    #[inline]
    pub fn add(&mut self, v: f64) {
        self.count += 1;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        self.sum += v;
    }

    /// Merges another partial aggregate into this one.
    pub fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Arithmetic mean (`NaN` when empty).
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// The aggregate of one key over one window `[start, end)` of event time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowResult<K = SeriesKey> {
    /// The window's key.
    pub key: K,
    /// Inclusive window start (ms).
    pub start: Timestamp,
    /// Exclusive window end (ms).
    pub end: Timestamp,
    /// The aggregate.
    pub stats: Stats,
}

/// An anomaly found by a detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The device.
    pub device: DeviceId,
    /// The metric.
    pub metric: Metric,
    /// Event time of the reading that raised the alert.
    pub ts: Timestamp,
    /// The reading's value.
    pub value: f64,
    /// The detector's score (for z-score detectors, z).
    pub score: f64,
    /// Name of the operator that raised it.
    pub detector: SmallStr,
}
