//! Event-level precision, recall, F1 and time to detect.

use serde::Serialize;

/// One labelled anomaly window and whether it was detected.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowResult {
    /// First row (0-based).
    pub start_row: usize,
    /// Last row.
    pub end_row: usize,
    /// Timestamp of the first row (ms).
    pub start_ts: i64,
    /// First flagged row in the window or its tolerance, if any.
    pub detected_row: Option<usize>,
    /// Timestamp of that row minus `start_ts` (ms).
    pub time_to_detect_ms: Option<i64>,
}

/// The figures of one evaluation (definitions in the [module docs](super)).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Rows.
    pub rows: usize,
    /// Flagged rows.
    pub flagged_rows: usize,
    /// Flagged events (maximal runs of consecutive flagged rows).
    pub flagged_events: usize,
    /// Labelled anomaly windows.
    pub windows: usize,
    /// Windows with a flag inside them or their tolerance.
    pub detected: usize,
    /// Flagged events that touch no window (with tolerance).
    pub false_alarms: usize,
    /// `detected / (detected + false_alarms)`; `None` when both are 0.
    pub precision: Option<f64>,
    /// `detected / windows`; `None` without windows.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall (0 when either is 0 or
    /// undefined).
    pub f1: f64,
    /// Flagged labelled rows over flagged rows.
    pub row_precision: Option<f64>,
    /// Flagged labelled rows over labelled rows.
    pub row_recall: Option<f64>,
    /// Mean time to detect over detected windows (ms).
    pub mean_time_to_detect_ms: Option<f64>,
    /// Every window.
    pub per_window: Vec<WindowResult>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Maximal runs of `true`, as inclusive row ranges.
pub fn runs(flags: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, f) in flags.iter().enumerate() {
        match (start, *f) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, flags.len() - 1));
    }
    out
}

/// Scores `flags` against `labels` (same length as `ts`), with windows
/// extended by `tolerance` rows after their end.
pub fn evaluate(ts: &[i64], labels: &[bool], flags: &[bool], tolerance: usize) -> Metrics {
    let n = ts.len().min(labels.len()).min(flags.len());
    let (labels, flags) = (&labels[..n], &flags[..n]);
    let windows = runs(labels);
    let events = runs(flags);
    // Row -> covered by some window extended by the tolerance.
    let mut covered = vec![false; n];
    let mut per_window = Vec::with_capacity(windows.len());
    for &(s, e) in &windows {
        let end = (e + tolerance).min(n.saturating_sub(1));
        covered[s..=end].iter_mut().for_each(|c| *c = true);
        let detected_row = (s..=end).find(|&i| flags[i]);
        per_window.push(WindowResult {
            start_row: s,
            end_row: e,
            start_ts: ts[s],
            detected_row,
            time_to_detect_ms: detected_row.map(|d| ts[d] - ts[s]),
        });
    }
    let detected = per_window
        .iter()
        .filter(|w| w.detected_row.is_some())
        .count();
    let false_alarms = events
        .iter()
        .filter(|&&(s, e)| !covered[s..=e].iter().any(|c| *c))
        .count();
    let precision = ratio(detected, detected + false_alarms);
    let recall = ratio(detected, windows.len());
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => 2.0 * p * r / (p + r),
        _ => 0.0,
    };
    let flagged_rows = flags.iter().filter(|f| **f).count();
    let hits = flags.iter().zip(labels).filter(|(f, l)| **f && **l).count();
    let ttd: Vec<i64> = per_window
        .iter()
        .filter_map(|w| w.time_to_detect_ms)
        .collect();
    Metrics {
        rows: n,
        flagged_rows,
        flagged_events: events.len(),
        windows: windows.len(),
        detected,
        false_alarms,
        precision,
        recall,
        f1,
        row_precision: ratio(hits, flagged_rows),
        row_recall: ratio(hits, labels.iter().filter(|l| **l).count()),
        mean_time_to_detect_ms: (!ttd.is_empty())
            .then(|| ttd.iter().map(|t| *t as f64).sum::<f64>() / ttd.len() as f64),
        per_window,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bools(s: &str) -> Vec<bool> {
        s.chars().map(|c| c == '1').collect()
    }

    #[test]
    fn hand_worked_example() {
        // windows: rows 2-3 and 8; flags: row 0 (false alarm), 4 (within
        // tolerance 1 of window 1), 5-6 (one false-alarm event), none for 8.
        let labels = bools("0011000010");
        let flags = bools("1000110000");
        let ts: Vec<i64> = (0..10).map(|i| i * 1000).collect();
        let m = evaluate(&ts, &labels, &flags, 1);
        assert_eq!((m.windows, m.detected, m.flagged_events), (2, 1, 2));
        // Event 4-6 touches the extended window 2..=4: not a false alarm.
        assert_eq!(m.false_alarms, 1);
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.recall, Some(0.5));
        assert!((m.f1 - 0.5).abs() < 1e-12);
        assert_eq!(m.per_window[0].time_to_detect_ms, Some(2000));
        assert_eq!(m.per_window[1].detected_row, None);
        assert_eq!(m.row_precision, Some(0.0));
        assert_eq!(m.row_recall, Some(0.0));
        let strict = evaluate(&ts, &labels, &flags, 0);
        assert_eq!((strict.detected, strict.false_alarms), (0, 2));
        assert_eq!(strict.f1, 0.0);
    }

    #[test]
    fn runs_cover_edges() {
        assert_eq!(runs(&bools("110011")), vec![(0, 1), (4, 5)]);
        assert!(runs(&[]).is_empty());
    }
}
