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
///
/// Every part is independent of the order values are added and partial
/// aggregates merged (the sum is an [`ExactSum`]), so a window's result has
/// the same bits on any number of workers, and after any restart.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of values.
    pub count: u64,
    /// Smallest value (`+inf` when empty).
    pub min: f64,
    /// Largest value (`-inf` when empty).
    pub max: f64,
    /// Sum of the values.
    sum: ExactSum,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: ExactSum::default(),
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
        self.sum.add(v);
    }

    /// Merges another partial aggregate into this one.
    pub fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum.merge(&other.sum);
    }

    /// Sum of the values (the exact sum, rounded once).
    pub fn sum(&self) -> f64 {
        self.sum.value()
    }

    /// Arithmetic mean (`NaN` when empty).
    pub fn mean(&self) -> f64 {
        self.sum() / self.count as f64
    }
}

/// A sum of `f64` values that does not depend on the order of additions.
///
/// Values are accumulated exactly in 128-bit fixed point with 64 fraction
/// bits, which holds every finite `f64` from about `5e-4` (full 53-bit
/// mantissa; shorter ones from `5.4e-20`) up to `4.6e18`, and the total
/// rounds once to the nearest `f64`: more accurate than adding floats, and
/// the same bits for any order. Values outside that range (and a total that
/// would overflow) go to an ordinary `f64` remainder, the only part whose
/// rounding depends on order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactSum {
    fixed: i128,
    rest: f64,
}

/// Fraction bits of [`ExactSum`]'s fixed point.
const FRAC_BITS: i32 = 64;

impl ExactSum {
    /// Adds `v`.
    #[inline]
    pub fn add(&mut self, v: f64) {
        if let Some(x) = to_fixed(v)
            && let Some(sum) = self.fixed.checked_add(x)
        {
            self.fixed = sum;
            return;
        }
        self.rest += v;
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &ExactSum) {
        match self.fixed.checked_add(other.fixed) {
            Some(sum) => self.fixed = sum,
            None => self.rest += fixed_to_f64(other.fixed),
        }
        self.rest += other.rest;
    }

    /// The sum, rounded to the nearest `f64`.
    #[inline]
    pub fn value(&self) -> f64 {
        fixed_to_f64(self.fixed) + self.rest
    }
}

/// `v` as a fixed-point integer (`v · 2^64`) when that is exact and safely
/// inside `i128`.
#[inline]
fn to_fixed(v: f64) -> Option<i128> {
    if v == 0.0 {
        return Some(0);
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 || exp == 0x7ff {
        return None; // subnormal, infinite or NaN
    }
    let mantissa = ((bits & ((1u64 << 52) - 1)) | (1u64 << 52)) as i128;
    // v = mantissa · 2^(exp − 1075); fixed = v · 2^64.
    let shift = exp - 1075 + FRAC_BITS;
    let magnitude = if shift >= 0 {
        // Keep 2 bits of headroom below i128::MAX for sums (checked anyway).
        if shift > 125 - 53 {
            return None;
        }
        mantissa << shift
    } else {
        let down = -shift;
        if down > 52 || mantissa.trailing_zeros() < down as u32 {
            return None;
        }
        mantissa >> down
    };
    Some(if bits >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    })
}

#[inline]
fn fixed_to_f64(x: i128) -> f64 {
    // `as` rounds to nearest; scaling by a power of two is exact.
    x as f64 * (-FRAC_BITS as f64).exp2()
}

/// What a window result is: the window's first firing, a correction of it,
/// or a preview of a window still open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    /// The window closed (the watermark passed its end): its first, on-time
    /// result. Without allowed lateness, the only one.
    #[default]
    Final,
    /// A reading arrived within the allowed lateness after the window fired:
    /// the window again, with that reading. It replaces the key's earlier
    /// results for the same window (for sessions: the sessions it overlaps).
    Update,
    /// Early firing: the window so far, while it is still open. A later
    /// `final` result replaces it.
    Partial,
}

impl ResultKind {
    /// `final`, `update` or `partial`: the `kind` column of window outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultKind::Final => "final",
            ResultKind::Update => "update",
            ResultKind::Partial => "partial",
        }
    }
}

/// The aggregate of one key over one window `[start, end)` of event time.
///
/// `V` is the aggregate's output: [`Stats`] by default, any
/// `Aggregate::Output` of the window crate otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowResult<K = SeriesKey, V = Stats> {
    /// The window's key.
    pub key: K,
    /// Inclusive window start (ms).
    pub start: Timestamp,
    /// Exclusive window end (ms).
    pub end: Timestamp,
    /// The aggregate.
    pub stats: V,
    /// Final, update or partial.
    #[serde(default)]
    pub kind: ResultKind,
}

/// A valid reading that came too late for the window it belonged to: the
/// window had fired and its allowed lateness had passed. It goes to the
/// late output with the window it missed, never silently away.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LateReading {
    /// The reading.
    pub reading: Reading,
    /// Start of the earliest window the reading belonged to, which had
    /// closed (for a record-level rule, the reading's own event time).
    pub window_start: Timestamp,
    /// End of that window (exclusive).
    pub window_end: Timestamp,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
        let mut s = ExactSum::default();
        values.into_iter().for_each(|v| s.add(v));
        s.value()
    }

    #[test]
    fn exact_sum_is_exact_where_floats_are_not() {
        // Adding floats loses the 1.0 (1e16 + 1 rounds to 1e16).
        assert_eq!(1e16 + 1.0 - 1e16, 0.0);
        assert_eq!(sum([1e16, 1.0, -1e16]), 1.0);
        assert_eq!(sum([21.43, 18.06, -21.43, -18.06]), 0.0);
        assert_eq!(sum([]), 0.0);
        assert_eq!(sum([-2.5]), -2.5);
        // Outside the fixed-point range: still summed, in the remainder.
        assert_eq!(sum([1e300, 1e300]), 2e300);
        assert_eq!(sum([1e-30, 2.0]), 2.0 + 1e-30);
        assert!(sum([f64::INFINITY, 1.0]).is_infinite());
    }

    #[test]
    fn exact_sum_does_not_depend_on_order_or_merging() {
        // Values like fleet-v1's: a few decimals, several magnitudes.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let values: Vec<f64> = (0..2000)
            .map(|_| {
                let r = next();
                let scale = [0.01, 1.0, 100.0, 1e4][(r % 4) as usize];
                ((r >> 8) % 100_000) as f64 / 100.0 * scale * if r & 1 == 0 { 1.0 } else { -1.0 }
            })
            .collect();
        let forward = sum(values.iter().copied());
        let backward = sum(values.iter().rev().copied());
        assert_eq!(forward.to_bits(), backward.to_bits());
        // Split into parts, merged in two orders.
        let parts: Vec<ExactSum> = values
            .chunks(333)
            .map(|c| {
                let mut s = ExactSum::default();
                c.iter().for_each(|v| s.add(*v));
                s
            })
            .collect();
        let mut a = ExactSum::default();
        parts.iter().for_each(|p| a.merge(p));
        let mut b = ExactSum::default();
        parts.iter().rev().for_each(|p| b.merge(p));
        assert_eq!(a.value().to_bits(), forward.to_bits());
        assert_eq!(b.value().to_bits(), forward.to_bits());
        let mut st = Stats::default();
        values.iter().for_each(|v| st.add(*v));
        assert_eq!(st.sum().to_bits(), forward.to_bits());
        assert_eq!(st.count, 2000);
    }
}
