//! Which lines are spikes and which are malformed, decided up front.

use std::collections::HashSet;

use rand::Rng;

use crate::rng::FleetRng;
use crate::{LineKind, MalformedKind};

/// `(malformed, spikes)` of a file of `lines` lines: `round(lines * 0.001)`
/// and `round(lines * 0.0005)` with Python's float arithmetic and
/// round-half-to-even.
pub(crate) fn special_counts(lines: u64) -> (u64, u64) {
    let n = lines as f64;
    (
        (n * 0.001).round_ties_even() as u64,
        (n * 0.0005).round_ties_even() as u64,
    )
}

/// Picks the malformed and spike lines: a uniformly random ordered sample of
/// distinct line indices (Floyd's algorithm, then a Fisher–Yates shuffle for
/// the order); the first `malformed` picks get the kinds cyclically, the
/// rest are spikes. Returned sorted by line index.
pub(crate) fn plan(lines: u64, rng: &mut FleetRng) -> Vec<(u64, LineKind)> {
    let (n_bad, n_spike) = special_counts(lines);
    let m = (n_bad + n_spike).min(lines);
    let mut chosen = HashSet::with_capacity(m as usize);
    let mut picks = Vec::with_capacity(m as usize);
    for j in lines - m..lines {
        let t = rng.random_range(0..=j);
        let pick = if chosen.insert(t) {
            t
        } else {
            chosen.insert(j);
            j
        };
        picks.push(pick);
    }
    drop(chosen);
    for k in (1..picks.len()).rev() {
        let r = rng.random_range(0..=k as u64) as usize;
        picks.swap(k, r);
    }
    let mut plan: Vec<(u64, LineKind)> = picks
        .into_iter()
        .enumerate()
        .map(|(j, line)| {
            let kind = if (j as u64) < n_bad {
                LineKind::Malformed(MalformedKind::ALL[j % MalformedKind::ALL.len()])
            } else {
                LineKind::Spike
            };
            (line, kind)
        })
        .collect();
    plan.sort_unstable_by_key(|&(line, _)| line);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn counts_round_like_python() {
        // Values of Python's round(n * 0.001), round(n * 0.0005).
        let cases = [
            (0, (0, 0)),
            (1, (0, 0)),
            (7, (0, 0)),
            (500, (0, 0)),
            (1000, (1, 0)),
            (1500, (2, 1)),
            (2500, (2, 1)),
            (3000, (3, 2)),
            (5000, (5, 2)),
            (200_000, (200, 100)),
            (1_000_000, (1000, 500)),
        ];
        for (n, expected) in cases {
            assert_eq!(special_counts(n), expected, "n = {n}");
        }
    }

    #[test]
    fn plan_is_distinct_sorted_and_cyclic() {
        let mut rng = FleetRng::from_splitmix(&mut SplitMix64(3));
        let plan = plan(100_000, &mut rng);
        assert_eq!(plan.len(), 150);
        assert!(plan.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(plan.iter().all(|&(line, _)| line < 100_000));
        let spikes = plan.iter().filter(|p| p.1 == LineKind::Spike).count();
        assert_eq!(spikes, 50);
        for k in MalformedKind::ALL {
            let n = plan
                .iter()
                .filter(|p| p.1 == LineKind::Malformed(k))
                .count();
            let expected = if k.index() < 100 % 8 { 13 } else { 12 };
            assert_eq!(n, expected, "{k}");
        }
    }
}
