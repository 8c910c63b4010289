//! Comparisons shared by the oracle and reference tests.

use iotflow_types::{Alert, SeriesKey, WindowResult};

use crate::oracle::{NaiveAlert, NaiveWindow};

/// Whether `a` and `b` agree to a relative tolerance `rel` (exact at zero).
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Compares operator windows with the oracle's: same keys and windows,
/// count/min/max exact, sum within relative `sum_rel`. Returns a description
/// of the first differences.
pub fn windows_match(
    got: &[WindowResult<SeriesKey>],
    want: &[NaiveWindow],
    sum_rel: f64,
) -> Result<(), String> {
    let mut got: Vec<NaiveWindow> = got
        .iter()
        .map(|w| NaiveWindow {
            device: w.key.device.as_str().to_owned(),
            metric: w.key.metric.as_str().to_owned(),
            start: w.start,
            end: w.end,
            count: w.stats.count,
            min: w.stats.min,
            max: w.stats.max,
            sum: w.stats.sum(),
        })
        .collect();
    got.sort_by(|a, b| (&a.device, &a.metric, a.start).cmp(&(&b.device, &b.metric, b.start)));
    let mut problems = Vec::new();
    if got.len() != want.len() {
        problems.push(format!("{} windows, oracle has {}", got.len(), want.len()));
    }
    for (g, w) in got.iter().zip(want) {
        let same = (&g.device, &g.metric, g.start, g.end, g.count)
            == (&w.device, &w.metric, w.start, w.end, w.count)
            && g.min == w.min
            && g.max == w.max
            && close(g.sum, w.sum, sum_rel);
        if !same {
            problems.push(format!("got {g:?}\n  oracle {w:?}"));
        }
        if problems.len() > 5 {
            break;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Compares alerts with the oracle's as sets of (device, metric, ts, value),
/// z within relative `z_rel`.
pub fn alerts_match(got: &[Alert], want: &[NaiveAlert], z_rel: f64) -> Result<(), String> {
    let mut got: Vec<NaiveAlert> = got
        .iter()
        .map(|a| NaiveAlert {
            device: a.device.as_str().to_owned(),
            metric: a.metric.as_str().to_owned(),
            ts: a.ts,
            value: a.value,
            z: a.score,
        })
        .collect();
    let key = |a: &NaiveAlert| (a.device.clone(), a.metric.clone(), a.ts, a.value.to_bits());
    got.sort_by_key(key);
    let mut want = want.to_vec();
    want.sort_by_key(key);
    let mut problems = Vec::new();
    if got.len() != want.len() {
        problems.push(format!("{} alerts, oracle has {}", got.len(), want.len()));
    }
    for (g, w) in got.iter().zip(&want) {
        if key(g) != key(w) || !close(g.z, w.z, z_rel) {
            problems.push(format!("got {g:?}\n  oracle {w:?}"));
        }
        if problems.len() > 5 {
            break;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
