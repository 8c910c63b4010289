//! Naive recomputations of operator results, independent of timely.
//!
//! Each oracle follows the written fleet-v1 semantics directly, with plain
//! loops and maps, so a disagreement with an operator points at one of them.

use std::collections::BTreeMap;

use iotflow_types::Reading;

/// A window as the oracle computes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NaiveWindow {
    /// Device id.
    pub device: String,
    /// Metric.
    pub metric: String,
    /// Inclusive start (ms).
    pub start: u64,
    /// Exclusive end (ms).
    pub end: u64,
    /// Readings in the window.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
}

/// The oracle's tumbling-window answer.
#[derive(Clone, Debug, Default)]
pub struct NaiveTumbling {
    /// Windows sorted by (device, metric, start).
    pub windows: Vec<NaiveWindow>,
    /// Late readings.
    pub late: u64,
    /// Readings that went into windows.
    pub windowed: u64,
}

/// Tumbling windows of `size_ms` (allowed lateness `allowed_ms`) over the
/// valid readings of each worker, in that worker's input order.
///
/// Every worker has its own watermark `max ts seen − disorder_ms` (the
/// reading being decided included); a reading is late when its window's last
/// millisecond plus the allowed lateness is at or behind that watermark.
/// At the end every window with data fires.
pub fn naive_tumbling(
    per_worker: &[Vec<Reading>],
    disorder_ms: u64,
    size_ms: u64,
    allowed_ms: u64,
) -> NaiveTumbling {
    // (device, metric, start) → (count, min, max, sum)
    type Acc = BTreeMap<(String, String, u64), (u64, f64, f64, f64)>;
    let mut acc = Acc::new();
    let mut out = NaiveTumbling::default();
    for readings in per_worker {
        let mut max_ts: Option<u64> = None;
        for r in readings {
            max_ts = Some(max_ts.map_or(r.ts, |m| m.max(r.ts)));
            let watermark = max_ts.unwrap_or(0) as i128 - disorder_ms as i128;
            let start = r.ts - r.ts % size_ms;
            let last = (start + size_ms - 1 + allowed_ms) as i128;
            if last <= watermark {
                out.late += 1;
                continue;
            }
            out.windowed += 1;
            let e = acc
                .entry((
                    r.device.as_str().to_owned(),
                    r.metric.as_str().to_owned(),
                    start,
                ))
                .or_insert((0, f64::INFINITY, f64::NEG_INFINITY, 0.0));
            e.0 += 1;
            e.1 = e.1.min(r.value);
            e.2 = e.2.max(r.value);
            e.3 += r.value;
        }
    }
    out.windows = acc
        .into_iter()
        .map(
            |((device, metric, start), (count, min, max, sum))| NaiveWindow {
                device,
                metric,
                start,
                end: start + size_ms,
                count,
                min,
                max,
                sum,
            },
        )
        .collect();
    out
}

/// An alert as the oracle computes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NaiveAlert {
    /// Device id.
    pub device: String,
    /// Metric.
    pub metric: String,
    /// Event time of the reading.
    pub ts: u64,
    /// The reading's value.
    pub value: f64,
    /// Its z-score.
    pub z: f64,
}

/// Parameters of the fleet-v1 EWMA z-score.
#[derive(Clone, Copy, Debug)]
pub struct EwmaParams {
    /// Smoothing factor (fleet-v1: 0.01).
    pub alpha: f64,
    /// Alert when |z| is above (fleet-v1: 6).
    pub threshold: f64,
    /// Readings a series must have seen (fleet-v1: 30).
    pub warmup: u64,
}

impl EwmaParams {
    /// fleet-v1's parameters.
    pub fn fleet_v1() -> Self {
        EwmaParams {
            alpha: 0.01,
            threshold: 6.0,
            warmup: 30,
        }
    }
}

/// The EWMA z-score of every (device, metric) series, each series in
/// (ts, value) order: `z = (v − mean) / sqrt(var)` against the state before
/// `v`, an alert when `|z| > threshold` once `warmup` readings were seen and
/// `var > 0`. Alerts sorted by (device, metric, ts, value).
pub fn naive_ewma(readings: &[Reading], p: EwmaParams) -> Vec<NaiveAlert> {
    let mut series: BTreeMap<(String, String), Vec<(u64, f64)>> = BTreeMap::new();
    for r in readings {
        series
            .entry((r.device.as_str().to_owned(), r.metric.as_str().to_owned()))
            .or_default()
            .push((r.ts, r.value));
    }
    let mut alerts = Vec::new();
    for ((device, metric), mut values) in series {
        values.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (mut n, mut mean, mut var) = (0u64, 0.0f64, 0.0f64);
        for (ts, v) in values {
            if n == 0 {
                n = 1;
                mean = v;
                var = 0.0;
                continue;
            }
            let diff = v - mean;
            if n >= p.warmup && var > 0.0 {
                let z = diff / var.sqrt();
                if z.abs() > p.threshold {
                    alerts.push(NaiveAlert {
                        device: device.clone(),
                        metric: metric.clone(),
                        ts,
                        value: v,
                        z,
                    });
                }
            }
            let incr = p.alpha * diff;
            n += 1;
            mean += incr;
            var = (1.0 - p.alpha) * (var + diff * incr);
        }
    }
    alerts
}
