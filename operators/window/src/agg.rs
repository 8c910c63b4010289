//! Mergeable window aggregates.
//!
//! A window folds the readings of one key into an *accumulator* and, when it
//! fires, turns the accumulator into its output. [`Aggregate`] names the four
//! steps: [`init`](Aggregate::init) an empty accumulator,
//! [`add`](Aggregate::add) one `(event time, value)` pair,
//! [`merge`](Aggregate::merge) two partial accumulators and
//! [`finish`](Aggregate::finish). Merging is what the checkpoint contract
//! needs: a sliding window keeps one partial per pane and merges the panes it
//! covers when it fires, and after a rescale the partials that different
//! workers wrote for one key and window meet on one worker and merge.
//! Accumulators are serde types, snapshotted as they are with
//! [`iotflow_core::state::encode`].
//!
//! # Results do not depend on order
//!
//! A window's readings arrive in any order and are split over panes and
//! workers in any way, so every built-in gives the same result whatever the
//! order of adds and the shape of merges:
//!
//! | aggregate | accumulator | output | independent of order |
//! |---|---|---|---|
//! | [`StatsAggregate`] | [`Stats`] | [`Stats`] | exactly (the sum is an [`ExactSum`]) |
//! | [`Count`] | `u64` | `u64` | exactly |
//! | [`Sum`] | [`ExactSum`] | `f64` | exactly (within [`ExactSum`]'s range) |
//! | [`Min`], [`Max`] | `Option<f64>` | `Option<f64>` | exactly (total order: `-0.0 < 0.0`) |
//! | [`Mean`] | [`MeanAcc`] | `Option<f64>` | exactly: exact sum ÷ count, rounded once |
//! | [`Variance`], [`StdDev`] | [`Moments`] | `Option<f64>` | to about 1e-16 relative, see [`Moments`] |
//! | [`First`], [`Last`] | `Option<(u64, f64)>` | `Option<f64>` | exactly: equal event times go to the smaller (first) or larger (last) value |
//! | [`Percentiles`] | [`QuantileSketch`] | `Option<Vec<f64>>` | exactly; each within the relative accuracy |
//! | [`DistinctCount`] | [`DistinctSketch`] | `u64` | exact to 128 distinct values, then HyperLogLog (±1.6 %) |
//! | `(A, B)`, `(A, B, C)`, `(A, B, C, D)` | tuple of accumulators | tuple of outputs | as their parts |
//! | [`Aggregates`] | [`AggregatesAcc`] | `Vec<(SmallStr, f64)>` | as its columns |
//!
//! # Empty windows and non-finite values
//!
//! An accumulator that saw no value is *empty* (merging empty partials gives
//! one, and so does a window whose every reading was rejected). Typed outputs
//! say so with `None`; [`Count`], [`Sum`] and [`DistinctCount`] say 0.
//! [`Aggregates`] has plain `f64` columns and writes `NaN` where a typed
//! output would be `None`.
//!
//! Values are finite: validation rejects NaN and infinities, counted and
//! routed to dead letters, before any window sees them. The built-ins
//! ignore a non-finite value should one reach them anyway, so that it can
//! neither poison an accumulator that lives on in checkpoints (a NaN sum stays
//! NaN) nor make min and max depend on order. A user's aggregate gets values
//! as they come.
//!
//! # Aggregates named in configuration
//!
//! [`AggregateSpec`] names a built-in with a string a TOML file can hold
//! (`"count"`, `"mean"`, `"p95"`, `"p99.9"`, `"distinct"`, …), and
//! [`Aggregates`] runs a list of them as one aggregate whose output is a row
//! of named columns, so a pipeline picks its aggregates without recompiling:
//!
//! ```
//! use iotflow_window::agg::{Aggregate, AggregatesConfig};
//!
//! let config: AggregatesConfig =
//!     toml::from_str(r#"columns = ["count", "mean", "p95", "distinct"]"#)?;
//! let aggs = config.build()?;
//! let mut acc = aggs.init();
//! for (ts, v) in [(1_000, 20.5), (2_000, 21.0), (3_000, 20.5)] {
//!     aggs.add(&mut acc, ts, v);
//! }
//! let row = aggs.finish(&acc);
//! assert_eq!(row[0], ("count".into(), 3.0));
//! assert_eq!(row[3], ("distinct".into(), 2.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Writing your own
//!
//! The trait is the way to a user-defined aggregate; the accumulator only has
//! to be a serde type that merges:
//!
//! ```
//! use iotflow_window::agg::Aggregate;
//!
//! /// Largest minus smallest value.
//! #[derive(Clone)]
//! struct Range;
//!
//! impl Aggregate for Range {
//!     type Acc = Option<(f64, f64)>;
//!     type Output = Option<f64>;
//!     fn init(&self) -> Self::Acc {
//!         None
//!     }
//!     fn add(&self, acc: &mut Self::Acc, _ts: u64, v: f64) {
//!         self.merge(acc, &Some((v, v)));
//!     }
//!     fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
//!         *acc = match (*acc, *other) {
//!             (Some((lo, hi)), Some((l, h))) => Some((lo.min(l), hi.max(h))),
//!             (a, b) => a.or(b),
//!         };
//!     }
//!     fn finish(&self, acc: &Self::Acc) -> Self::Output {
//!         acc.map(|(lo, hi)| hi - lo)
//!     }
//! }
//!
//! let mut acc = Range.init();
//! Range.add(&mut acc, 0, 3.0);
//! Range.add(&mut acc, 1, 7.5);
//! assert_eq!(Range.finish(&acc), Some(4.5));
//! ```
//!
//! # Sketches
//!
//! Percentiles come from a DDSketch (the `ddsketchy` crate): logarithmic
//! buckets whose counts merge by addition, so any quantile is within a chosen
//! relative accuracy of the exact one. Distinct counts come from Cloudflare's
//! `cardinality-estimator`: an exact set of hashes up to 128 values, then
//! HyperLogLog++ with 4096 registers (standard error 1.6 %). That crate
//! builds on 64-bit targets only.

use std::fmt;
use std::str::FromStr;

use cardinality_estimator::CardinalityEstimator;
use ddsketchy::DDSketch;
use iotflow_core::Error;
use iotflow_types::{ExactSum, SmallStr, Stats};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A window aggregate: folds (event time, value) pairs into a mergeable
/// accumulator.
///
/// `init`, `add` and `merge` must make `finish` independent of the order
/// values are added and partials merged: a window's values reach it in any
/// order, split over panes and workers in any way. Accumulators are part of
/// checkpoints, so they are serde types, and an accumulator restored from a
/// checkpoint merges with fresh ones.
///
/// ```
/// use iotflow_window::agg::{Aggregate, Mean};
///
/// // Two partials, as two panes of a sliding window or two workers hold them.
/// let mut left = Mean.init();
/// Mean.add(&mut left, 1_000, 20.0);
/// let mut right = Mean.init();
/// Mean.add(&mut right, 2_000, 22.0);
/// Mean.add(&mut right, 3_000, 24.0);
///
/// Mean.merge(&mut left, &right);
/// assert_eq!(Mean.finish(&left), Some(22.0));
/// assert_eq!(Mean.finish(&Mean.init()), None); // empty
/// ```
pub trait Aggregate: Clone + Send + 'static {
    /// Partial state; merged across panes and workers; part of checkpoints.
    type Acc: Clone + Send + fmt::Debug + Serialize + serde::de::DeserializeOwned + 'static;
    /// What a window emits.
    type Output: Clone + Send + fmt::Debug + 'static;
    /// An empty accumulator.
    fn init(&self) -> Self::Acc;
    /// Folds in the value `value` of event time `ts` (ms).
    fn add(&self, acc: &mut Self::Acc, ts: u64, value: f64);
    /// Folds the partial `other` into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// The window's result.
    fn finish(&self, acc: &Self::Acc) -> Self::Output;
}

// ---------------------------------------------------------------------------
// Count, sum, min, max, mean

/// Count, min, max, exact sum and mean in one [`Stats`]: what a window
/// emits when no aggregate is named (fleet-v1's window output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsAggregate;

impl Aggregate for StatsAggregate {
    type Acc = Stats;
    type Output = Stats;
    #[inline]
    fn init(&self) -> Stats {
        Stats::default()
    }
    #[inline]
    fn add(&self, acc: &mut Stats, _ts: u64, value: f64) {
        acc.add(value);
    }
    #[inline]
    fn merge(&self, acc: &mut Stats, other: &Stats) {
        acc.merge(other);
    }
    #[inline]
    fn finish(&self, acc: &Stats) -> Stats {
        *acc
    }
}

/// Number of values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count;

impl Aggregate for Count {
    type Acc = u64;
    type Output = u64;
    fn init(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _ts: u64, value: f64) {
        *acc += u64::from(value.is_finite());
    }
    fn merge(&self, acc: &mut u64, other: &u64) {
        *acc += other;
    }
    fn finish(&self, acc: &u64) -> u64 {
        *acc
    }
}

/// Sum of the values, exact and rounded once ([`ExactSum`]); 0 when empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum;

impl Aggregate for Sum {
    type Acc = ExactSum;
    type Output = f64;
    fn init(&self) -> ExactSum {
        ExactSum::default()
    }
    #[inline]
    fn add(&self, acc: &mut ExactSum, _ts: u64, value: f64) {
        if value.is_finite() {
            acc.add(value);
        }
    }
    fn merge(&self, acc: &mut ExactSum, other: &ExactSum) {
        acc.merge(other);
    }
    fn finish(&self, acc: &ExactSum) -> f64 {
        acc.value()
    }
}

/// Smallest value in the total order of `f64` (so `-0.0` is below `0.0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Min;

impl Aggregate for Min {
    type Acc = Option<f64>;
    type Output = Option<f64>;
    fn init(&self) -> Option<f64> {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Option<f64>, _ts: u64, value: f64) {
        if value.is_finite() {
            keep_min(acc, value);
        }
    }
    fn merge(&self, acc: &mut Option<f64>, other: &Option<f64>) {
        if let Some(v) = *other {
            keep_min(acc, v);
        }
    }
    fn finish(&self, acc: &Option<f64>) -> Option<f64> {
        *acc
    }
}

/// Largest value in the total order of `f64` (so `0.0` is above `-0.0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Max;

impl Aggregate for Max {
    type Acc = Option<f64>;
    type Output = Option<f64>;
    fn init(&self) -> Option<f64> {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Option<f64>, _ts: u64, value: f64) {
        if value.is_finite() {
            keep_max(acc, value);
        }
    }
    fn merge(&self, acc: &mut Option<f64>, other: &Option<f64>) {
        if let Some(v) = *other {
            keep_max(acc, v);
        }
    }
    fn finish(&self, acc: &Option<f64>) -> Option<f64> {
        *acc
    }
}

#[inline]
fn keep_min(acc: &mut Option<f64>, v: f64) {
    if acc.is_none_or(|m| v.total_cmp(&m).is_lt()) {
        *acc = Some(v);
    }
}

#[inline]
fn keep_max(acc: &mut Option<f64>, v: f64) {
    if acc.is_none_or(|m| v.total_cmp(&m).is_gt()) {
        *acc = Some(v);
    }
}

/// Arithmetic mean: the exact sum divided by the count, rounded once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mean;

/// Accumulator of [`Mean`]: count and exact sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanAcc {
    count: u64,
    sum: ExactSum,
}

impl MeanAcc {
    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean (`None` when empty).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum.value() / self.count as f64)
    }
}

impl Aggregate for Mean {
    type Acc = MeanAcc;
    type Output = Option<f64>;
    fn init(&self) -> MeanAcc {
        MeanAcc::default()
    }
    #[inline]
    fn add(&self, acc: &mut MeanAcc, _ts: u64, value: f64) {
        if value.is_finite() {
            acc.count += 1;
            acc.sum.add(value);
        }
    }
    fn merge(&self, acc: &mut MeanAcc, other: &MeanAcc) {
        acc.count += other.count;
        acc.sum.merge(&other.sum);
    }
    fn finish(&self, acc: &MeanAcc) -> Option<f64> {
        acc.mean()
    }
}

// ---------------------------------------------------------------------------
// Variance and standard deviation

/// Variance of the values: of the sample (divided by n − 1, `None` below two
/// values) or of the population (divided by n).
///
/// Computed from [`Moments`]: order-independent to about 1e-16 relative for
/// ordinary data; read [`Moments`] for the one caveat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variance {
    /// Sample variance (n − 1) rather than population variance (n).
    pub sample: bool,
}

/// Standard deviation: the square root of [`Variance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdDev {
    /// Sample (n − 1) rather than population (n) standard deviation.
    pub sample: bool,
}

/// Count, exact sum and near-exact sum of squares: the accumulator of
/// [`Variance`] and [`StdDev`].
///
/// Each square `x²` is kept as two floats, its rounded value and the
/// rounding error (found with a fused multiply-add), both added to an
/// [`ExactSum`]; at finish, `Σx² − (Σx)²/n` is evaluated in double-double
/// arithmetic. So the subtraction, where the textbook one-pass formula loses
/// every digit when the mean is large against the spread, keeps about 106
/// bits, and the result depends on the order of adds and merges only through
/// parts that fall outside `ExactSum`'s fixed-point range (the tiny rounding
/// errors of squares, values below ~5e-4 or above ~2e9 in magnitude), which
/// move it by about 1e-16 relative.
///
/// The caveat that remains: the relative error of the variance grows as
/// `mean² / variance` times ~1e-32, so it stays below 1e-12 unless the
/// values' mean is 10^10 times their standard deviation. Values whose
/// square overflows (|x| > 1e154) give an infinite or NaN variance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    count: u64,
    sum: ExactSum,
    sum_sq: ExactSum,
}

impl Moments {
    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean (`None` when empty).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum.value() / self.count as f64)
    }

    /// The variance of the sample (`sample`, `None` below two values) or of
    /// the population (`None` when empty).
    pub fn variance(&self, sample: bool) -> Option<f64> {
        let dof = self.count.checked_sub(u64::from(sample))?;
        (dof > 0).then(|| self.m2() / dof as f64)
    }

    #[inline]
    fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum.add(x);
        add_square(&mut self.sum_sq, x);
    }

    fn merge(&mut self, other: &Moments) {
        self.count += other.count;
        self.sum.merge(&other.sum);
        self.sum_sq.merge(&other.sum_sq);
    }

    /// `Σ(x − mean)² = Σx² − (Σx)²/n`, in double-double.
    fn m2(&self) -> f64 {
        let n = self.count as f64;
        let (a, a_lo) = two_parts(&self.sum);
        let (b, b_lo) = two_parts(&self.sum_sq);
        // (Σx)² = p + p_lo; a_lo² is below the precision kept.
        let p = a * a;
        let p_lo = a.mul_add(a, -p) + 2.0 * a * a_lo;
        // (Σx)²/n = q + q_lo; p − q·n is exact (the remainder of a
        // correctly rounded division is representable).
        let q = p / n;
        let q_lo = ((-q).mul_add(n, p) + p_lo) / n;
        let (d, d_lo) = two_sum(b, -q);
        (d + (d_lo + b_lo - q_lo)).max(0.0)
    }
}

/// Adds `x²` as its rounded value plus the rounding error, so the sum of
/// squares is exact wherever `ExactSum` is.
#[inline]
fn add_square(sum_sq: &mut ExactSum, x: f64) {
    let sq = x * x;
    sum_sq.add(sq);
    sum_sq.add(x.mul_add(x, -sq));
}

/// `s` as `hi + lo`: `hi` the sum rounded once, `lo` what that rounding left
/// out (rounded in turn). Subtracting `hi` is exact in `ExactSum`'s fixed
/// point: `hi` is a rounding of a multiple of 2⁻⁶⁴, so a multiple of it.
fn two_parts(s: &ExactSum) -> (f64, f64) {
    let hi = s.value();
    let mut rest = *s;
    rest.add(-hi);
    (hi, rest.value())
}

/// Knuth's error-free sum: `a + b = s + e` exactly.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

impl Aggregate for Variance {
    type Acc = Moments;
    type Output = Option<f64>;
    fn init(&self) -> Moments {
        Moments::default()
    }
    #[inline]
    fn add(&self, acc: &mut Moments, _ts: u64, value: f64) {
        if value.is_finite() {
            acc.add(value);
        }
    }
    fn merge(&self, acc: &mut Moments, other: &Moments) {
        acc.merge(other);
    }
    fn finish(&self, acc: &Moments) -> Option<f64> {
        acc.variance(self.sample)
    }
}

impl Aggregate for StdDev {
    type Acc = Moments;
    type Output = Option<f64>;
    fn init(&self) -> Moments {
        Moments::default()
    }
    #[inline]
    fn add(&self, acc: &mut Moments, _ts: u64, value: f64) {
        if value.is_finite() {
            acc.add(value);
        }
    }
    fn merge(&self, acc: &mut Moments, other: &Moments) {
        acc.merge(other);
    }
    fn finish(&self, acc: &Moments) -> Option<f64> {
        acc.variance(self.sample).map(f64::sqrt)
    }
}

// ---------------------------------------------------------------------------
// First and last by event time

/// The value of the earliest event time; of several values at that time,
/// the smallest. The accumulator keeps `(event time, value)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct First;

/// The value of the latest event time; of several values at that time, the
/// largest. The accumulator keeps `(event time, value)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Last;

/// Whether `(ts, v)` orders before `(ts0, v0)`: by time, then by value.
#[inline]
fn stamped_lt((ts, v): (u64, f64), (ts0, v0): (u64, f64)) -> bool {
    ts.cmp(&ts0).then(v.total_cmp(&v0)).is_lt()
}

#[inline]
fn keep_first(acc: &mut Option<(u64, f64)>, x: (u64, f64)) {
    if acc.is_none_or(|y| stamped_lt(x, y)) {
        *acc = Some(x);
    }
}

#[inline]
fn keep_last(acc: &mut Option<(u64, f64)>, x: (u64, f64)) {
    if acc.is_none_or(|y| stamped_lt(y, x)) {
        *acc = Some(x);
    }
}

impl Aggregate for First {
    type Acc = Option<(u64, f64)>;
    type Output = Option<f64>;
    fn init(&self) -> Self::Acc {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Self::Acc, ts: u64, value: f64) {
        if value.is_finite() {
            keep_first(acc, (ts, value));
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        if let Some(x) = *other {
            keep_first(acc, x);
        }
    }
    fn finish(&self, acc: &Self::Acc) -> Option<f64> {
        acc.map(|(_, v)| v)
    }
}

impl Aggregate for Last {
    type Acc = Option<(u64, f64)>;
    type Output = Option<f64>;
    fn init(&self) -> Self::Acc {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Self::Acc, ts: u64, value: f64) {
        if value.is_finite() {
            keep_last(acc, (ts, value));
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        if let Some(x) = *other {
            keep_last(acc, x);
        }
    }
    fn finish(&self, acc: &Self::Acc) -> Option<f64> {
        acc.map(|(_, v)| v)
    }
}

// ---------------------------------------------------------------------------
// Percentiles (DDSketch)

/// Relative accuracy of percentiles unless configured otherwise: 1 %.
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;

/// Smallest relative accuracy accepted (a sketch then may reach ~1 MiB).
const MIN_RELATIVE_ACCURACY: f64 = 1e-4;

/// Ratio of largest to smallest magnitude a sketch holds before it folds its
/// lowest buckets together (losing accuracy for the smallest values only).
const DYNAMIC_RANGE: f64 = 1e12;

fn check_relative_accuracy(alpha: f64) -> Result<(), Error> {
    if (MIN_RELATIVE_ACCURACY..1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "percentile relative accuracy must be in [{MIN_RELATIVE_ACCURACY}, 1), got {alpha}"
        )))
    }
}

fn check_quantile(q: f64) -> Result<(), Error> {
    if (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "quantile must be in [0, 1], got {q}"
        )))
    }
}

/// Estimated quantiles of the values, each within a relative accuracy of the
/// exact one.
///
/// The quantile `q` of n values is the value of 0-based rank `⌊q·(n − 1)⌋`
/// in ascending order (`q = 0.5` of `[1, 2, 3, 4]` is 2); the estimate `e`
/// of an exact quantile `x` satisfies `|e − x| ≤ relative_accuracy · |x|`.
/// The output has one estimate per configured quantile, or is `None` for an
/// empty window.
///
/// ```
/// use iotflow_window::agg::{Aggregate, Percentiles};
///
/// let p = Percentiles::new(vec![0.5, 0.99], 0.01)?;
/// let mut acc = p.init();
/// for i in 1..=1000 {
///     p.add(&mut acc, i, i as f64);
/// }
/// let est = p.finish(&acc).expect("not empty");
/// assert!((est[0] - 500.0).abs() <= 0.01 * 500.0);
/// assert!((est[1] - 990.0).abs() <= 0.01 * 990.0);
/// # Ok::<(), iotflow_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Percentiles {
    quantiles: Vec<f64>,
    relative_accuracy: f64,
}

impl Percentiles {
    /// Estimates `quantiles` (each in `[0, 1]`) within `relative_accuracy`
    /// (in `[0.0001, 1)`; [`DEFAULT_RELATIVE_ACCURACY`] is 1 %).
    pub fn new(quantiles: impl Into<Vec<f64>>, relative_accuracy: f64) -> Result<Self, Error> {
        let quantiles = quantiles.into();
        quantiles.iter().try_for_each(|&q| check_quantile(q))?;
        check_relative_accuracy(relative_accuracy)?;
        Ok(Percentiles {
            quantiles,
            relative_accuracy,
        })
    }

    /// The quantiles estimated, in output order.
    pub fn quantiles(&self) -> &[f64] {
        &self.quantiles
    }

    /// The relative accuracy of the estimates.
    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }
}

impl Aggregate for Percentiles {
    type Acc = QuantileSketch;
    type Output = Option<Vec<f64>>;
    fn init(&self) -> QuantileSketch {
        QuantileSketch::new(self.relative_accuracy)
    }
    #[inline]
    fn add(&self, acc: &mut QuantileSketch, _ts: u64, value: f64) {
        acc.add(value);
    }
    /// # Panics
    ///
    /// If the two sketches have different relative accuracies, which happens
    /// only when a checkpoint written with one accuracy is restored into a
    /// pipeline configured with another.
    fn merge(&self, acc: &mut QuantileSketch, other: &QuantileSketch) {
        acc.merge(other);
    }
    fn finish(&self, acc: &QuantileSketch) -> Option<Vec<f64>> {
        (acc.count() > 0).then(|| {
            self.quantiles
                .iter()
                .map(|&q| acc.quantile(q).unwrap_or(f64::NAN))
                .collect()
        })
    }
}

/// A DDSketch: the accumulator of [`Percentiles`] (and of percentile columns
/// of [`Aggregates`]).
///
/// Values go to logarithmic buckets `(γ^(k−1), γ^k]` with
/// `γ = (1 + α)/(1 − α)` for relative accuracy `α`, a bucket for zero and
/// mirrored buckets for negative values; a bucket's estimate is within `α`
/// of every value in it. Bucket counts merge by addition, so the state is the
/// same for any order of adds and merges. Memory is 8 bytes per bucket
/// between the smallest and largest magnitude, about `ln(max / min) / 2α` of
/// them, allocated 128 at a time (2 KiB for readings spanning a factor of
/// 100 at 1 %). Values spanning more than a factor of 10¹² fold the lowest
/// buckets together.
///
/// Checkpoints (bincode) round-trip it exactly. A JSON round trip can move
/// the bucket mapping's derived constants by one unit in the last place
/// (serde_json's default float parsing), which leaves estimates within the
/// accuracy but may bin a value lying exactly on a bucket boundary
/// differently.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuantileSketch(DDSketch);

impl QuantileSketch {
    /// An empty sketch of relative accuracy `alpha` (validated by callers).
    fn new(alpha: f64) -> Self {
        let gamma_ln = (2.0 * alpha / (1.0 - alpha)).ln_1p();
        let max_bins = ((DYNAMIC_RANGE.ln() / gamma_ln).ceil() as usize).max(4096);
        QuantileSketch(
            DDSketch::with_max_bins(alpha, max_bins)
                .expect("relative accuracy is validated before a sketch is made"),
        )
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.0.count()
    }

    /// The estimated quantile `q` (`None` when empty or `q` is not in
    /// `[0, 1]`).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile_opt(q).ok().flatten()
    }

    /// The relative accuracy of the estimates.
    pub fn relative_accuracy(&self) -> f64 {
        self.0.alpha()
    }

    #[inline]
    fn add(&mut self, value: f64) {
        // DDSketch itself ignores non-finite values.
        self.0.add(value);
    }

    fn merge(&mut self, other: &QuantileSketch) {
        if let Err(e) = self.0.merge(&other.0) {
            panic!(
                "percentile sketches of accuracy {} and {} cannot merge ({e}): \
                 restore a checkpoint with the accuracy it was written with",
                self.0.alpha(),
                other.0.alpha()
            );
        }
    }
}

impl fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("QuantileSketch");
        d.field("relative_accuracy", &self.0.alpha())
            .field("count", &self.0.count());
        if self.0.count() > 0 {
            d.field("min", &self.0.min()).field("max", &self.0.max());
        }
        d.finish()
    }
}

// ---------------------------------------------------------------------------
// Distinct count (HyperLogLog++)

/// Approximate number of distinct values, told apart by their bits (with
/// `-0.0` counted as `0.0`).
///
/// Exact (up to a ~1e-4 chance of a hash collision) for up to 128 distinct
/// values; above that, HyperLogLog++ with 4096 registers estimates within a
/// standard error of 1.6 % (3 KiB per window).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DistinctCount;

impl Aggregate for DistinctCount {
    type Acc = DistinctSketch;
    type Output = u64;
    fn init(&self) -> DistinctSketch {
        DistinctSketch::default()
    }
    #[inline]
    fn add(&self, acc: &mut DistinctSketch, _ts: u64, value: f64) {
        acc.add(value);
    }
    fn merge(&self, acc: &mut DistinctSketch, other: &DistinctSketch) {
        acc.merge(other);
    }
    fn finish(&self, acc: &DistinctSketch) -> u64 {
        acc.estimate()
    }
}

/// A distinct-count sketch: the accumulator of [`DistinctCount`].
///
/// Values are hashed by a fixed function of their bits (the same on every
/// worker and after every restart, as merging needs). Registers merge by
/// maximum, so the estimate depends on order only through the running `f32`
/// harmonic sum the crate keeps, which can move a large estimate by one.
/// The serialized form carries the crate's tagged word, which for large sets
/// includes a heap address that decoding ignores: equal sketches can
/// serialize to different bytes.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DistinctSketch(CardinalityEstimator<u64>);

impl DistinctSketch {
    /// The estimated number of distinct values.
    pub fn estimate(&self) -> u64 {
        self.0.estimate() as u64
    }

    #[inline]
    fn add(&mut self, value: f64) {
        if value.is_finite() {
            self.0.insert_hash(value_hash(value));
        }
    }

    fn merge(&mut self, other: &DistinctSketch) {
        self.0.merge(&other.0);
    }
}

impl fmt::Debug for DistinctSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctSketch")
            .field("estimate", &self.estimate())
            .finish()
    }
}

/// A 64-bit hash of a value's bits: SplitMix64's finalizer, a bijection with
/// full avalanche, so distinct values never collide before the sketch's own
/// truncation.
#[inline]
fn value_hash(v: f64) -> u64 {
    let bits = if v == 0.0 { 0 } else { v.to_bits() };
    let mut z = bits.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Several aggregates as one

macro_rules! tuple_aggregate {
    ($($a:ident $i:tt),+) => {
        /// Runs each aggregate of the tuple over the same values.
        impl<$($a: Aggregate),+> Aggregate for ($($a,)+) {
            type Acc = ($($a::Acc,)+);
            type Output = ($($a::Output,)+);
            fn init(&self) -> Self::Acc {
                ($(self.$i.init(),)+)
            }
            #[inline]
            fn add(&self, acc: &mut Self::Acc, ts: u64, value: f64) {
                $(self.$i.add(&mut acc.$i, ts, value);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
                $(self.$i.merge(&mut acc.$i, &other.$i);)+
            }
            fn finish(&self, acc: &Self::Acc) -> Self::Output {
                ($(self.$i.finish(&acc.$i),)+)
            }
        }
    };
}

tuple_aggregate!(A 0, B 1);
tuple_aggregate!(A 0, B 1, C 2);
tuple_aggregate!(A 0, B 1, C 2, D 3);

// ---------------------------------------------------------------------------
// Aggregates named in configuration

/// A built-in aggregate named by a string, as configuration files name it.
///
/// | name | aggregate | column when empty |
/// |---|---|---|
/// | `count` | [`Count`] | 0 |
/// | `sum` | [`Sum`] | 0 |
/// | `min`, `max` | [`Min`], [`Max`] | NaN |
/// | `mean` | [`Mean`] | NaN |
/// | `variance`, `variance_pop` | [`Variance`] of the sample (n − 1), of the population (n) | NaN |
/// | `stddev`, `stddev_pop` | [`StdDev`] of the sample, of the population | NaN |
/// | `first`, `last` | [`First`], [`Last`] | NaN |
/// | `p0` … `p100`, e.g. `p50`, `p95`, `p99.9` | quantile 0 … 1 of [`Percentiles`] | NaN |
/// | `distinct` | [`DistinctCount`] | 0 |
///
/// As with SQL's `VARIANCE` and `STDDEV`, the short names are of the sample.
/// The name is also the column's name in the output of [`Aggregates`];
/// [`Display`](fmt::Display) writes it back (percentiles in shortest form:
/// `p095` reads as, and writes back as, `p95`).
///
/// ```
/// use iotflow_window::agg::AggregateSpec;
///
/// let spec: AggregateSpec = "p99.9".parse()?;
/// assert_eq!(spec, AggregateSpec::Percentile { quantile: 0.999 });
/// assert_eq!(spec.to_string(), "p99.9");
/// assert!("median".parse::<AggregateSpec>().is_err());
/// # Ok::<(), iotflow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum AggregateSpec {
    /// `count`.
    Count,
    /// `sum`.
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `mean`.
    Mean,
    /// `variance` (sample) or `variance_pop`.
    Variance {
        /// Of the sample (n − 1) rather than the population (n).
        sample: bool,
    },
    /// `stddev` (sample) or `stddev_pop`.
    StdDev {
        /// Of the sample (n − 1) rather than the population (n).
        sample: bool,
    },
    /// `first`.
    First,
    /// `last`.
    Last,
    /// `pNN`: the quantile `NN / 100`.
    Percentile {
        /// The quantile, in `[0, 1]`.
        quantile: f64,
    },
    /// `distinct`.
    Distinct,
}

impl fmt::Display for AggregateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            AggregateSpec::Count => "count",
            AggregateSpec::Sum => "sum",
            AggregateSpec::Min => "min",
            AggregateSpec::Max => "max",
            AggregateSpec::Mean => "mean",
            AggregateSpec::Variance { sample: true } => "variance",
            AggregateSpec::Variance { sample: false } => "variance_pop",
            AggregateSpec::StdDev { sample: true } => "stddev",
            AggregateSpec::StdDev { sample: false } => "stddev_pop",
            AggregateSpec::First => "first",
            AggregateSpec::Last => "last",
            AggregateSpec::Distinct => "distinct",
            AggregateSpec::Percentile { quantile } => {
                // Six decimals of a percent, trailing zeros cut: 0.999 → p99.9.
                let percent = format!("{:.6}", quantile * 100.0);
                let percent = percent.trim_end_matches('0').trim_end_matches('.');
                return write!(f, "p{percent}");
            }
        };
        f.write_str(name)
    }
}

impl FromStr for AggregateSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "count" => AggregateSpec::Count,
            "sum" => AggregateSpec::Sum,
            "min" => AggregateSpec::Min,
            "max" => AggregateSpec::Max,
            "mean" => AggregateSpec::Mean,
            "variance" => AggregateSpec::Variance { sample: true },
            "variance_pop" => AggregateSpec::Variance { sample: false },
            "stddev" => AggregateSpec::StdDev { sample: true },
            "stddev_pop" => AggregateSpec::StdDev { sample: false },
            "first" => AggregateSpec::First,
            "last" => AggregateSpec::Last,
            "distinct" => AggregateSpec::Distinct,
            _ => match s.strip_prefix('p').and_then(percent_to_quantile) {
                Some(quantile) => AggregateSpec::Percentile { quantile },
                None => {
                    return Err(Error::Config(format!(
                        "unknown aggregate {s:?}: expected count, sum, min, max, mean, \
                         variance, variance_pop, stddev, stddev_pop, first, last, distinct \
                         or a percentile p0 … p100 such as p95 or p99.9"
                    )));
                }
            },
        })
    }
}

/// `"99.9"` → 0.999: digits with at most one decimal point, at most 100.
fn percent_to_quantile(percent: &str) -> Option<f64> {
    let (int, frac) = percent.split_once('.').unwrap_or((percent, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    // Move the decimal point two places in the text, so "99.9" parses as the
    // double nearest 0.999 (dividing by 100 would round twice).
    let all = format!("{int}{frac}");
    let text = match int.len().checked_sub(2) {
        Some(point) if point > 0 => format!("{}.{}", &all[..point], &all[point..]),
        Some(_) => format!("0.{all}"),
        None => format!("0.0{all}"),
    };
    let q: f64 = text.parse().ok()?;
    (q <= 1.0).then_some(q)
}

impl Serialize for AggregateSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AggregateSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Which parts of [`AggregatesAcc`] the configured columns need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Needs {
    sum: bool,
    squares: bool,
    min: bool,
    max: bool,
    first: bool,
    last: bool,
    quantiles: bool,
    distinct: bool,
}

/// Several built-in aggregates, chosen at run time, as one aggregate whose
/// output is a row of `(column name, value)`.
///
/// The columns share one accumulator ([`AggregatesAcc`]): count, sums,
/// extremes, one quantile sketch for every percentile column and one distinct
/// sketch, each kept only if a column needs it. Column names are
/// [`AggregateSpec`]'s names; a column with no value for an empty window is
/// `NaN` (see [`AggregateSpec`]).
///
/// ```
/// use iotflow_window::agg::{Aggregate, AggregateSpec, Aggregates};
///
/// let specs: Vec<AggregateSpec> = ["count", "max", "stddev_pop"]
///     .iter()
///     .map(|name| name.parse())
///     .collect::<Result<_, _>>()?;
/// let aggs = Aggregates::new(specs)?;
/// let mut acc = aggs.init();
/// for (ts, v) in [(0, 2.0), (1, 4.0), (2, 4.0), (3, 4.0), (4, 5.0), (5, 5.0), (6, 7.0), (7, 9.0)] {
///     aggs.add(&mut acc, ts, v);
/// }
/// let row = aggs.finish(&acc);
/// let row: Vec<(&str, f64)> = row.iter().map(|(name, v)| (name.as_str(), *v)).collect();
/// assert_eq!(row, [("count", 8.0), ("max", 9.0), ("stddev_pop", 2.0)]);
/// # Ok::<(), iotflow_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregates {
    columns: Vec<(SmallStr, AggregateSpec)>,
    relative_accuracy: f64,
    needs: Needs,
}

impl Aggregates {
    /// The aggregates `specs`, in output order, with percentiles of
    /// [`DEFAULT_RELATIVE_ACCURACY`]. Fails on an empty list, a column named
    /// twice or a quantile outside `[0, 1]`.
    pub fn new(specs: impl IntoIterator<Item = AggregateSpec>) -> Result<Self, Error> {
        let mut columns: Vec<(SmallStr, AggregateSpec)> = Vec::new();
        let mut needs = Needs::default();
        for spec in specs {
            if let AggregateSpec::Percentile { quantile } = spec {
                check_quantile(quantile)?;
            }
            let name = SmallStr::from(spec.to_string());
            if columns.iter().any(|(n, _)| *n == name) {
                return Err(Error::Config(format!("aggregate {name:?} is listed twice")));
            }
            match spec {
                AggregateSpec::Count => {}
                AggregateSpec::Sum | AggregateSpec::Mean => needs.sum = true,
                AggregateSpec::Variance { .. } | AggregateSpec::StdDev { .. } => {
                    needs.sum = true;
                    needs.squares = true;
                }
                AggregateSpec::Min => needs.min = true,
                AggregateSpec::Max => needs.max = true,
                AggregateSpec::First => needs.first = true,
                AggregateSpec::Last => needs.last = true,
                AggregateSpec::Percentile { .. } => needs.quantiles = true,
                AggregateSpec::Distinct => needs.distinct = true,
            }
            columns.push((name, spec));
        }
        if columns.is_empty() {
            return Err(Error::Config(
                "no aggregates: name at least one, e.g. [\"count\", \"mean\"]".into(),
            ));
        }
        Ok(Aggregates {
            columns,
            relative_accuracy: DEFAULT_RELATIVE_ACCURACY,
            needs,
        })
    }

    /// Percentile columns within `alpha` (in `[0.0001, 1)`) relative
    /// accuracy.
    pub fn with_relative_accuracy(mut self, alpha: f64) -> Result<Self, Error> {
        check_relative_accuracy(alpha)?;
        self.relative_accuracy = alpha;
        Ok(self)
    }

    /// The column names, in output order.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.columns.iter().map(|(name, _)| name.as_str())
    }

    /// The aggregates, in output order.
    pub fn specs(&self) -> impl ExactSizeIterator<Item = AggregateSpec> + '_ {
        self.columns.iter().map(|&(_, spec)| spec)
    }

    /// The relative accuracy of percentile columns.
    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    fn value(&self, spec: AggregateSpec, acc: &AggregatesAcc) -> f64 {
        let m = &acc.moments;
        let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        match spec {
            AggregateSpec::Count => m.count as f64,
            AggregateSpec::Sum => m.sum.value(),
            AggregateSpec::Min => or_nan(acc.min),
            AggregateSpec::Max => or_nan(acc.max),
            AggregateSpec::Mean => or_nan(m.mean()),
            AggregateSpec::Variance { sample } => or_nan(m.variance(sample)),
            AggregateSpec::StdDev { sample } => or_nan(m.variance(sample).map(f64::sqrt)),
            AggregateSpec::First => or_nan(acc.first.map(|(_, v)| v)),
            AggregateSpec::Last => or_nan(acc.last.map(|(_, v)| v)),
            AggregateSpec::Percentile { quantile } => {
                or_nan(acc.quantiles.as_ref().and_then(|s| s.quantile(quantile)))
            }
            AggregateSpec::Distinct => acc.distinct.as_ref().map_or(0.0, |d| d.estimate() as f64),
        }
    }
}

/// The accumulator of [`Aggregates`]: the parts its columns need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregatesAcc {
    /// Count always; sums only for sum, mean, variance and stddev columns.
    moments: Moments,
    min: Option<f64>,
    max: Option<f64>,
    first: Option<(u64, f64)>,
    last: Option<(u64, f64)>,
    quantiles: Option<QuantileSketch>,
    distinct: Option<DistinctSketch>,
}

impl AggregatesAcc {
    /// Number of values.
    pub fn count(&self) -> u64 {
        self.moments.count
    }
}

impl Aggregate for Aggregates {
    type Acc = AggregatesAcc;
    type Output = Vec<(SmallStr, f64)>;

    fn init(&self) -> AggregatesAcc {
        AggregatesAcc {
            moments: Moments::default(),
            min: None,
            max: None,
            first: None,
            last: None,
            quantiles: self
                .needs
                .quantiles
                .then(|| QuantileSketch::new(self.relative_accuracy)),
            distinct: self.needs.distinct.then(DistinctSketch::default),
        }
    }

    fn add(&self, acc: &mut AggregatesAcc, ts: u64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let needs = self.needs;
        acc.moments.count += 1;
        if needs.sum {
            acc.moments.sum.add(value);
        }
        if needs.squares {
            add_square(&mut acc.moments.sum_sq, value);
        }
        if needs.min {
            keep_min(&mut acc.min, value);
        }
        if needs.max {
            keep_max(&mut acc.max, value);
        }
        if needs.first {
            keep_first(&mut acc.first, (ts, value));
        }
        if needs.last {
            keep_last(&mut acc.last, (ts, value));
        }
        if let Some(sketch) = &mut acc.quantiles {
            sketch.add(value);
        }
        if let Some(sketch) = &mut acc.distinct {
            sketch.add(value);
        }
    }

    /// # Panics
    ///
    /// As [`Percentiles`]' merge: if percentile sketches of different
    /// relative accuracies meet.
    fn merge(&self, acc: &mut AggregatesAcc, other: &AggregatesAcc) {
        acc.moments.merge(&other.moments);
        if let Some(v) = other.min {
            keep_min(&mut acc.min, v);
        }
        if let Some(v) = other.max {
            keep_max(&mut acc.max, v);
        }
        if let Some(x) = other.first {
            keep_first(&mut acc.first, x);
        }
        if let Some(x) = other.last {
            keep_last(&mut acc.last, x);
        }
        merge_some(&mut acc.quantiles, &other.quantiles, QuantileSketch::merge);
        merge_some(&mut acc.distinct, &other.distinct, DistinctSketch::merge);
    }

    fn finish(&self, acc: &AggregatesAcc) -> Vec<(SmallStr, f64)> {
        self.columns
            .iter()
            .map(|(name, spec)| (name.clone(), self.value(*spec, acc)))
            .collect()
    }
}

fn merge_some<T: Clone>(acc: &mut Option<T>, other: &Option<T>, merge: impl FnOnce(&mut T, &T)) {
    match (acc.as_mut(), other) {
        (Some(a), Some(b)) => merge(a, b),
        (None, Some(b)) => *acc = Some(b.clone()),
        (_, None) => {}
    }
}

/// Configuration of [`Aggregates`], as a pipeline file holds it:
///
/// ```toml
/// columns = ["count", "mean", "stddev", "p50", "p99", "distinct"]
/// relative_accuracy = 0.005   # of percentiles; default 0.01
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatesConfig {
    /// The aggregates, in output order. Default `["count", "min", "max",
    /// "mean"]`.
    pub columns: Vec<AggregateSpec>,
    /// Relative accuracy of percentile columns, in `[0.0001, 1)`. Default
    /// [`DEFAULT_RELATIVE_ACCURACY`] (1 %).
    pub relative_accuracy: f64,
}

impl Default for AggregatesConfig {
    fn default() -> Self {
        AggregatesConfig {
            columns: vec![
                AggregateSpec::Count,
                AggregateSpec::Min,
                AggregateSpec::Max,
                AggregateSpec::Mean,
            ],
            relative_accuracy: DEFAULT_RELATIVE_ACCURACY,
        }
    }
}

impl AggregatesConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), Error> {
        self.build().map(drop)
    }

    /// The aggregates configured.
    pub fn build(&self) -> Result<Aggregates, Error> {
        Aggregates::new(self.columns.iter().copied())?
            .with_relative_accuracy(self.relative_accuracy)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use iotflow_core::state::{decode, encode};
    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use serde::de::DeserializeOwned;

    use super::*;

    type Items = Vec<(u64, f64)>;

    /// Readings like fleet-v1's: two decimals at a few magnitudes and both
    /// signs, with repeated values, zeros of both signs and many equal event
    /// times.
    fn fleet(rng: &mut SmallRng, n: usize) -> Items {
        let ticks = (n as u64 / 4).max(1);
        (0..n)
            .map(|_| {
                let ts = rng.random_range(0..ticks);
                let v = match rng.random_range(0..50) {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 21.5,
                    _ => {
                        let cents = [100, 10_000, 1_000_000, 100_000_000][rng.random_range(0..4)];
                        rng.random_range(-cents..=cents) as f64 / 100.0
                    }
                };
                (ts, v)
            })
            .collect()
    }

    /// Folds in the given order, into one accumulator.
    fn fold<A: Aggregate>(agg: &A, items: &[(u64, f64)]) -> A::Acc {
        let mut acc = agg.init();
        for &(ts, v) in items {
            agg.add(&mut acc, ts, v);
        }
        acc
    }

    /// Folds the way a window might meet the items: shuffled, spread over
    /// 1–8 partials (some maybe empty), some partials restored from a
    /// checkpoint, merged in a random tree.
    fn fold_split<A: Aggregate>(agg: &A, items: &[(u64, f64)], rng: &mut SmallRng) -> A::Acc {
        let mut items = items.to_vec();
        items.shuffle(rng);
        let parts = rng.random_range(1..=8);
        let mut accs: Vec<A::Acc> = (0..parts).map(|_| agg.init()).collect();
        for (ts, v) in items {
            agg.add(&mut accs[rng.random_range(0..parts)], ts, v);
        }
        while accs.len() > 1 {
            let mut other = accs.swap_remove(rng.random_range(0..accs.len()));
            if rng.random_bool(0.3) {
                other = via_bincode(&other);
            }
            let into = rng.random_range(0..accs.len());
            agg.merge(&mut accs[into], &other);
        }
        accs.pop().expect("one partial is left")
    }

    fn via_bincode<T: Serialize + DeserializeOwned>(x: &T) -> T {
        decode(&encode(x).expect("encodes")).expect("decodes")
    }

    fn via_json<T: Serialize + DeserializeOwned>(x: &T) -> T {
        serde_json::from_str(&serde_json::to_string(x).expect("to json")).expect("from json")
    }

    /// Neumaier's compensated sum: an independent, accurate reference.
    fn compensated_sum(values: impl IntoIterator<Item = f64>) -> f64 {
        let (mut sum, mut c) = (0.0f64, 0.0f64);
        for x in values {
            let t = sum + x;
            c += if sum.abs() >= x.abs() {
                (sum - t) + x
            } else {
                (x - t) + sum
            };
            sum = t;
        }
        sum + c
    }

    /// Two-pass variance: the naive reference that does not cancel.
    fn two_pass_m2(values: &[f64]) -> f64 {
        let mean = compensated_sum(values.iter().copied()) / values.len() as f64;
        compensated_sum(values.iter().map(|x| (x - mean) * (x - mean)))
    }

    fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
        let tol = rel * want.abs().max(f64::MIN_POSITIVE);
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got}, want {want} (±{tol})"
        );
    }

    fn bits(x: Option<f64>) -> Option<u64> {
        x.map(f64::to_bits)
    }

    #[test]
    fn count_sum_min_max_mean_first_last_do_not_depend_on_order() {
        let mut rng = SmallRng::seed_from_u64(1);
        for round in 0..40 {
            let n = if round == 0 {
                0
            } else {
                rng.random_range(1..600)
            };
            let items = fleet(&mut rng, n);
            let values: Vec<f64> = items.iter().map(|&(_, v)| v).collect();
            let aggs = (Count, Sum, (Min, Max), (Mean, First, Last));
            let once = aggs.finish(&fold(&aggs, &items));

            // The naive recomputation.
            assert_eq!(once.0, n as u64);
            let sum = compensated_sum(values.iter().copied());
            let scale: f64 = values.iter().map(|v| v.abs()).sum();
            assert!(
                (once.1 - sum).abs() <= 1e-15 * scale,
                "sum {} vs {sum}",
                once.1
            );
            let min = values.iter().copied().min_by(f64::total_cmp);
            let max = values.iter().copied().max_by(f64::total_cmp);
            assert_eq!(bits(once.2.0), bits(min));
            assert_eq!(bits(once.2.1), bits(max));
            match once.3.0 {
                Some(mean) => assert!((mean - sum / n as f64).abs() <= 1e-15 * scale / n as f64),
                None => assert_eq!(n, 0),
            }
            let by_time =
                |a: &&(u64, f64), b: &&(u64, f64)| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1));
            let first = items.iter().min_by(by_time).map(|&(_, v)| v);
            let last = items.iter().max_by(by_time).map(|&(_, v)| v);
            assert_eq!(bits(once.3.1), bits(first));
            assert_eq!(bits(once.3.2), bits(last));

            // Any order and any split: the same bits.
            for _ in 0..5 {
                let split = aggs.finish(&fold_split(&aggs, &items, &mut rng));
                assert_eq!(format!("{split:?}"), format!("{once:?}"), "round {round}");
            }
        }
    }

    #[test]
    fn sum_and_mean_are_exact_where_float_addition_is_not() {
        // Every partial sum of these is exact in f64, so the naive sum is
        // the exact one …
        let mut rng = SmallRng::seed_from_u64(2);
        let items: Items = (0..1000)
            .map(|t| {
                (
                    t,
                    rng.random_range(-(1i64 << 40)..(1 << 40)) as f64 / 1024.0,
                )
            })
            .collect();
        let naive: f64 = items.iter().map(|&(_, v)| v).sum();
        assert_eq!(Sum.finish(&fold(&Sum, &items)), naive);
        assert_eq!(Mean.finish(&fold(&Mean, &items)), Some(naive / 1000.0));
        // … and these are where floats lose the small terms.
        let items: Items = [1e16, 1.0, -1e16, 0.5]
            .into_iter()
            .map(|v| (0, v))
            .collect();
        assert_eq!(Sum.finish(&fold(&Sum, &items)), 1.5);
        assert_eq!(Mean.finish(&fold(&Mean, &items)), Some(0.375));
    }

    #[test]
    fn first_and_last_break_ties_in_event_time_by_value() {
        let items: Items = vec![(5, 3.0), (5, 1.0), (9, 2.0), (9, 7.0), (9, -4.0), (5, 2.0)];
        for perm in 0..50 {
            let mut items = items.clone();
            items.shuffle(&mut SmallRng::seed_from_u64(perm));
            assert_eq!(First.finish(&fold(&First, &items)), Some(1.0));
            assert_eq!(Last.finish(&fold(&Last, &items)), Some(7.0));
        }
        // Zeros of both signs are ordered too, so even their sign is stable.
        let zeros: Items = vec![(1, 0.0), (1, -0.0)];
        let rev: Items = zeros.iter().rev().copied().collect();
        for items in [zeros, rev] {
            assert_eq!(bits(First.finish(&fold(&First, &items))), bits(Some(-0.0)));
            assert_eq!(bits(Last.finish(&fold(&Last, &items))), bits(Some(0.0)));
            assert_eq!(bits(Min.finish(&fold(&Min, &items))), bits(Some(-0.0)));
            assert_eq!(bits(Max.finish(&fold(&Max, &items))), bits(Some(0.0)));
        }
    }

    #[test]
    fn variance_and_stddev_match_two_pass_on_any_order() {
        let mut rng = SmallRng::seed_from_u64(3);
        for round in 0..30 {
            let n = rng.random_range(2..800);
            let items = match round % 3 {
                0 => fleet(&mut rng, n),
                // A large mean and a small spread: the textbook one-pass
                // formula loses every digit here (mean² / variance ≈ 1e17).
                1 => (0..n as u64)
                    .map(|t| (t, 1e6 + rng.random_range(-1e-3..1e-3)))
                    .collect(),
                // Values outside ExactSum's fixed point (tiny and huge).
                _ => (0..n as u64)
                    .map(|t| (t, rng.random_range(-1.0..1.0) * [1e-6, 1e9][t as usize % 2]))
                    .collect(),
            };
            let values: Vec<f64> = items.iter().map(|&(_, v)| v).collect();
            let m2 = two_pass_m2(&values);
            let nf = n as f64;
            let aggs = (
                Variance { sample: true },
                Variance { sample: false },
                StdDev { sample: true },
                StdDev { sample: false },
            );
            let once = aggs.finish(&fold(&aggs, &items));
            let want = [
                m2 / (nf - 1.0),
                m2 / nf,
                (m2 / (nf - 1.0)).sqrt(),
                (m2 / nf).sqrt(),
            ];
            let got = [once.0, once.1, once.2, once.3].map(|v| v.expect("n ≥ 2"));
            for (g, w) in got.iter().zip(want) {
                assert_close(*g, w, 1e-9, &format!("round {round} vs two-pass"));
            }
            for _ in 0..4 {
                let split = aggs.finish(&fold_split(&aggs, &items, &mut rng));
                let split = [split.0, split.1, split.2, split.3].map(|v| v.expect("n ≥ 2"));
                for (s, g) in split.iter().zip(got) {
                    assert_close(*s, g, 1e-13, &format!("round {round} split vs once"));
                }
            }
        }
    }

    #[test]
    fn variance_of_few_values() {
        let var = |sample: bool, values: &[f64]| {
            let items: Items = values.iter().map(|&v| (0, v)).collect();
            let agg = Variance { sample };
            agg.finish(&fold(&agg, &items))
        };
        assert_eq!(var(true, &[]), None);
        assert_eq!(var(false, &[]), None);
        assert_eq!(var(true, &[3.0]), None);
        assert_eq!(var(false, &[3.0]), Some(0.0));
        assert_eq!(var(true, &[1.0, 3.0]), Some(2.0));
        assert_eq!(var(false, &[21.43; 7]), Some(0.0));
        let sd = StdDev { sample: false };
        let items: Items = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
            .map(|v| (0, v))
            .to_vec();
        assert_eq!(sd.finish(&fold(&sd, &items)), Some(2.0));
    }

    /// The exact quantile by the sketch's rank rule.
    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
    }

    #[test]
    fn percentiles_are_within_relative_accuracy_on_any_order() {
        let qs = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];
        let mut rng = SmallRng::seed_from_u64(4);
        for (round, (n, alpha)) in [
            (1, 0.01),
            (2, 0.01),
            (10, 0.01),
            (1000, 0.01),
            (20_000, 0.01),
            (5000, 0.001),
            (5000, 0.05),
            (3000, 1e-4),
        ]
        .into_iter()
        .enumerate()
        {
            let items: Items = if round % 2 == 0 {
                fleet(&mut rng, n)
            } else {
                // Log-uniform over 12 decades: stresses the bucket range.
                (0..n as u64)
                    .map(|t| (t, 10f64.powf(rng.random_range(-6.0..6.0))))
                    .collect()
            };
            let agg = Percentiles::new(qs, alpha).expect("valid");
            let once = agg.finish(&fold(&agg, &items)).expect("not empty");
            let mut sorted: Vec<f64> = items.iter().map(|&(_, v)| v).collect();
            sorted.sort_by(f64::total_cmp);
            for (&q, &est) in qs.iter().zip(&once) {
                let exact = exact_quantile(&sorted, q);
                assert!(
                    (est - exact).abs() <= alpha * exact.abs() * (1.0 + 1e-9),
                    "n={n} α={alpha} q={q}: {est} vs exact {exact}"
                );
            }
            for _ in 0..3 {
                let split = agg.finish(&fold_split(&agg, &items, &mut rng));
                assert_eq!(split.as_ref(), Some(&once), "n={n} α={alpha}");
            }
        }
    }

    #[test]
    fn percentiles_reject_bad_arguments() {
        assert!(Percentiles::new([0.5], 0.01).is_ok());
        assert!(Percentiles::new([1.5], 0.01).is_err());
        assert!(Percentiles::new([f64::NAN], 0.01).is_err());
        assert!(Percentiles::new([0.5], 0.0).is_err());
        assert!(Percentiles::new([0.5], 1.0).is_err());
        assert!(Percentiles::new([0.5], 1e-5).is_err());
        assert!(Percentiles::new([0.5], f64::NAN).is_err());
    }

    #[test]
    #[should_panic(expected = "cannot merge")]
    fn percentile_sketches_of_different_accuracy_do_not_merge() {
        let a = Percentiles::new([0.5], 0.01).expect("valid");
        let b = Percentiles::new([0.5], 0.02).expect("valid");
        let mut acc = a.init();
        let mut other = b.init();
        b.add(&mut other, 0, 1.0);
        a.merge(&mut acc, &other);
    }

    fn distinct_bits(values: impl IntoIterator<Item = f64>) -> usize {
        values
            .into_iter()
            .map(|v| if v == 0.0 { 0 } else { v.to_bits() })
            .collect::<HashSet<u64>>()
            .len()
    }

    #[test]
    fn distinct_count_is_exact_for_small_sets() {
        let mut rng = SmallRng::seed_from_u64(5);
        for round in 0..40 {
            let pool: Vec<f64> = (0..rng.random_range(1..=128))
                .map(|_| rng.random_range(-5000i64..5000) as f64 / 100.0)
                .chain([0.0, -0.0])
                .collect();
            let items: Items = (0..rng.random_range(0..1000))
                .map(|t| (t, pool[rng.random_range(0..pool.len())]))
                .collect();
            let want = distinct_bits(items.iter().map(|&(_, v)| v));
            if want > 128 {
                continue;
            }
            assert_eq!(
                DistinctCount.finish(&fold(&DistinctCount, &items)),
                want as u64
            );
            let split = fold_split(&DistinctCount, &items, &mut rng);
            assert_eq!(DistinctCount.finish(&split), want as u64, "round {round}");
        }
    }

    #[test]
    fn distinct_count_is_within_four_standard_errors_for_large_sets() {
        let se = 1.04 / 64.0; // 1.04 / √4096 registers
        let mut rng = SmallRng::seed_from_u64(6);
        let sets: [(&str, Vec<f64>); 4] = [
            (
                "10k random",
                (0..10_000).map(|_| rng.random::<f64>() * 1e3).collect(),
            ),
            (
                "100k random",
                (0..100_000).map(|_| rng.random_range(-1e6..1e6)).collect(),
            ),
            ("10k steps", (0..10_000).map(|i| i as f64 * 0.01).collect()),
            ("100k ints", (0..100_000).map(|i| i as f64).collect()),
        ];
        for (name, pool) in sets {
            // Every value at least once, a third of them twice.
            let mut items: Items = pool.iter().map(|&v| (0, v)).collect();
            items.extend(pool.iter().step_by(3).map(|&v| (1, v)));
            let want = distinct_bits(pool.iter().copied()) as f64;
            let once = DistinctCount.finish(&fold(&DistinctCount, &items)) as f64;
            assert!(
                (once - want).abs() <= 4.0 * se * want,
                "{name}: {once} vs {want}"
            );
            let split = DistinctCount.finish(&fold_split(&DistinctCount, &items, &mut rng)) as f64;
            // Same registers; only the crate's f32 running sum may differ.
            assert!(
                (split - once).abs() <= 1e-4 * want,
                "{name}: split {split} vs {once}"
            );
        }
    }

    #[test]
    fn empty_windows() {
        assert_eq!(Count.finish(&Count.init()), 0);
        assert_eq!(Sum.finish(&Sum.init()), 0.0);
        assert_eq!(Min.finish(&Min.init()), None);
        assert_eq!(Max.finish(&Max.init()), None);
        assert_eq!(Mean.finish(&Mean.init()), None);
        assert_eq!(Variance { sample: false }.finish(&Moments::default()), None);
        assert_eq!(StdDev { sample: true }.finish(&Moments::default()), None);
        assert_eq!(First.finish(&First.init()), None);
        assert_eq!(Last.finish(&Last.init()), None);
        let p = Percentiles::new([0.5, 0.99], 0.01).expect("valid");
        assert_eq!(p.finish(&p.init()), None);
        assert_eq!(DistinctCount.finish(&DistinctCount.init()), 0);

        let all = Aggregates::new(every_spec()).expect("valid");
        let row = all.finish(&all.init());
        for (name, value) in &row {
            match name.as_str() {
                "count" | "sum" | "distinct" => assert_eq!(*value, 0.0, "{name}"),
                _ => assert!(value.is_nan(), "{name} = {value}"),
            }
        }

        // Merging empty partials in either direction changes nothing.
        let items = fleet(&mut SmallRng::seed_from_u64(7), 100);
        let full = fold(&all, &items);
        let mut left = all.init();
        all.merge(&mut left, &full);
        let mut right = full.clone();
        all.merge(&mut right, &all.init());
        let want = format!("{:?}", all.finish(&full));
        assert_eq!(format!("{:?}", all.finish(&left)), want);
        assert_eq!(format!("{:?}", all.finish(&right)), want);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let items = fleet(&mut SmallRng::seed_from_u64(8), 300);
        let mut dirty = items.clone();
        for (i, bad) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN]
            .into_iter()
            .enumerate()
        {
            dirty.insert(i * 50, (0, bad));
        }
        let typed = (
            (Count, Sum, Min, Max),
            (Mean, Variance { sample: true }, First, Last),
            (
                Percentiles::new([0.0, 0.5, 1.0], 0.01).expect("valid"),
                DistinctCount,
            ),
        );
        assert_eq!(
            format!("{:?}", typed.finish(&fold(&typed, &dirty))),
            format!("{:?}", typed.finish(&fold(&typed, &items)))
        );
        let all = Aggregates::new(every_spec()).expect("valid");
        assert_eq!(
            format!("{:?}", all.finish(&fold(&all, &dirty))),
            format!("{:?}", all.finish(&fold(&all, &items)))
        );
        assert!(
            all.finish(&fold(&all, &dirty))
                .iter()
                .all(|(_, v)| v.is_finite())
        );
    }

    /// Finishes `acc` and its bincode and JSON round trips, and merges each
    /// with a fresh partial, for `same` to compare.
    fn round_trips<A: Aggregate>(agg: &A, acc: &A::Acc, more: &A::Acc) -> [A::Output; 6] {
        let merged = |acc: &A::Acc| {
            let mut acc = acc.clone();
            agg.merge(&mut acc, more);
            agg.finish(&acc)
        };
        let (bin, json) = (via_bincode(acc), via_json(acc));
        [
            agg.finish(acc),
            agg.finish(&bin),
            agg.finish(&json),
            merged(acc),
            merged(&bin),
            merged(&json),
        ]
    }

    #[test]
    fn accumulators_survive_checkpoints() {
        let mut rng = SmallRng::seed_from_u64(9);
        for n in [0, 1, 3, 200, 5000] {
            let items = fleet(&mut rng, n);
            let more = fleet(&mut rng, 50);

            // Exact through both formats: plain values, bit for bit.
            let exact = ((Count, Sum, Min, Max), (Mean, First, Last, DistinctCount));
            let [a, b, c, d, e, f] =
                round_trips(&exact, &fold(&exact, &items), &fold(&exact, &more));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "n={n} bincode");
            assert_eq!(format!("{a:?}"), format!("{c:?}"), "n={n} json");
            assert_eq!(format!("{d:?}"), format!("{e:?}"), "n={n} bincode merged");
            assert_eq!(format!("{d:?}"), format!("{f:?}"), "n={n} json merged");

            // Exact through bincode; through JSON within a few ulps (floats
            // of 17 digits may parse one ulp off with serde_json's defaults).
            let var = (Variance { sample: false }, StdDev { sample: true });
            let outs = round_trips(&var, &fold(&var, &items), &fold(&var, &more));
            assert_eq!(format!("{:?}", outs[0]), format!("{:?}", outs[1]));
            assert_eq!(format!("{:?}", outs[3]), format!("{:?}", outs[4]));
            for (x, y) in [(&outs[0], &outs[2]), (&outs[3], &outs[5])] {
                for (x, y) in [(x.0, y.0), (x.1, y.1)] {
                    match (x, y) {
                        (Some(x), Some(y)) => assert_close(y, x, 1e-12, "variance via json"),
                        (x, y) => assert_eq!(x, y),
                    }
                }
            }

            let p = Percentiles::new([0.0, 0.5, 0.9, 0.99, 1.0], 0.01).expect("valid");
            let outs = round_trips(&p, &fold(&p, &items), &fold(&p, &more));
            assert_eq!(outs[0], outs[1]);
            assert_eq!(outs[3], outs[4]);
            for (x, y) in [(&outs[0], &outs[2]), (&outs[3], &outs[5])] {
                match (x, y) {
                    (Some(x), Some(y)) => {
                        for (x, y) in x.iter().zip(y) {
                            assert_close(*y, *x, 0.021, "percentile via json");
                        }
                    }
                    (x, y) => assert_eq!(x, y),
                }
            }

            let all = Aggregates::new(every_spec()).expect("valid");
            let outs = round_trips(&all, &fold(&all, &items), &fold(&all, &more));
            assert_eq!(format!("{:?}", outs[0]), format!("{:?}", outs[1]));
            assert_eq!(format!("{:?}", outs[3]), format!("{:?}", outs[4]));
            for (x, y) in [(&outs[0], &outs[2]), (&outs[3], &outs[5])] {
                for ((name, x), (_, y)) in x.iter().zip(y) {
                    if x.is_nan() {
                        assert!(y.is_nan(), "{name}");
                    } else {
                        assert_close(*y, *x, 0.021, name);
                    }
                }
            }
        }
    }

    fn every_spec() -> Vec<AggregateSpec> {
        [
            "count",
            "sum",
            "min",
            "max",
            "mean",
            "variance",
            "variance_pop",
            "stddev",
            "stddev_pop",
            "first",
            "last",
            "p0",
            "p50",
            "p95",
            "p99.9",
            "p100",
            "distinct",
        ]
        .into_iter()
        .map(|s| s.parse().expect("a known name"))
        .collect()
    }

    #[test]
    fn aggregates_agree_with_the_typed_aggregates() {
        let all = Aggregates::new(every_spec()).expect("valid");
        let qs = [0.0, 0.5, 0.95, 0.999, 1.0];
        let p = Percentiles::new(qs, DEFAULT_RELATIVE_ACCURACY).expect("valid");
        let mut rng = SmallRng::seed_from_u64(10);
        for n in [1, 2, 50, 3000] {
            let items = fleet(&mut rng, n);
            let row = all.finish(&fold_split(&all, &items, &mut rng));
            let names: Vec<&str> = row.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names, all.columns().collect::<Vec<_>>());
            let col = |name: &str| {
                let found = row.iter().find(|(n, _)| n.as_str() == name);
                found.expect("column").1
            };
            let nan = f64::NAN;
            let typed = |x: Option<f64>| x.unwrap_or(nan).to_bits();
            let once = |agg: &dyn Fn(&Items) -> Option<f64>| typed(agg(&items));
            assert_eq!(col("count"), n as f64);
            assert_eq!(
                col("sum").to_bits(),
                Sum.finish(&fold(&Sum, &items)).to_bits()
            );
            assert_eq!(col("min").to_bits(), once(&|i| Min.finish(&fold(&Min, i))));
            assert_eq!(col("max").to_bits(), once(&|i| Max.finish(&fold(&Max, i))));
            assert_eq!(
                col("mean").to_bits(),
                once(&|i| Mean.finish(&fold(&Mean, i)))
            );
            assert_eq!(
                col("first").to_bits(),
                once(&|i| First.finish(&fold(&First, i)))
            );
            assert_eq!(
                col("last").to_bits(),
                once(&|i| Last.finish(&fold(&Last, i)))
            );
            for (name, sample) in [("variance", true), ("variance_pop", false)] {
                let v = Variance { sample };
                let want = v.finish(&fold(&v, &items)).unwrap_or(nan);
                if want.is_nan() {
                    assert!(col(name).is_nan());
                } else {
                    assert_close(col(name), want, 1e-13, name);
                }
            }
            let s = StdDev { sample: false };
            assert_close(
                col("stddev_pop"),
                s.finish(&fold(&s, &items)).unwrap_or(nan),
                1e-13,
                "sd",
            );
            let quantiles = p.finish(&fold(&p, &items)).expect("not empty");
            for (name, want) in ["p0", "p50", "p95", "p99.9", "p100"].iter().zip(quantiles) {
                assert_eq!(col(name), want, "{name}");
            }
            assert_eq!(
                col("distinct"),
                DistinctCount.finish(&fold(&DistinctCount, &items)) as f64
            );
        }
    }

    /// A user-defined aggregate, through the trait alone: max − min.
    #[derive(Clone)]
    struct Range;

    impl Aggregate for Range {
        type Acc = Option<(f64, f64)>;
        type Output = Option<f64>;
        fn init(&self) -> Self::Acc {
            None
        }
        fn add(&self, acc: &mut Self::Acc, _ts: u64, v: f64) {
            self.merge(acc, &Some((v, v)));
        }
        fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
            *acc = match (*acc, *other) {
                (Some((lo, hi)), Some((l, h))) => Some((lo.min(l), hi.max(h))),
                (a, b) => a.or(b),
            };
        }
        fn finish(&self, acc: &Self::Acc) -> Option<f64> {
            acc.map(|(lo, hi)| hi - lo)
        }
    }

    #[test]
    fn a_user_defined_aggregate_runs_beside_the_built_ins() {
        let mut rng = SmallRng::seed_from_u64(11);
        for n in [0, 1, 10, 500] {
            let items: Items = fleet(&mut rng, n)
                .into_iter()
                .map(|(t, v)| (t, v + 0.0)) // −0.0 + 0.0 = 0.0: one zero
                .collect();
            let agg = (Range, Count);
            let (range, count) = agg.finish(&fold_split(&agg, &items, &mut rng));
            let values = items.iter().map(|&(_, v)| v);
            let naive = values.clone().reduce(f64::max).zip(values.reduce(f64::min));
            assert_eq!(range, naive.map(|(hi, lo)| hi - lo));
            assert_eq!(count, n as u64);
        }
    }

    #[test]
    fn specs_have_names_that_read_back() {
        for spec in every_spec() {
            let name = spec.to_string();
            assert_eq!(
                name.parse::<AggregateSpec>().expect("reads back"),
                spec,
                "{name}"
            );
        }
        let parse = |s: &str| s.parse::<AggregateSpec>();
        let q = |s: &str| match parse(s) {
            Ok(AggregateSpec::Percentile { quantile }) => quantile,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(q("p0"), 0.0);
        assert_eq!(q("p5"), 0.05);
        assert_eq!(q("p50"), 0.5);
        assert_eq!(q("p95"), 0.95);
        assert_eq!(q("p99.9"), 0.999);
        assert_eq!(q("p99.99"), 0.9999);
        assert_eq!(q("p0.1"), 0.001);
        assert_eq!(q("p100"), 1.0);
        assert_eq!(q("p095"), 0.95);
        assert_eq!(parse("p095").expect("valid").to_string(), "p95");
        assert_eq!(
            AggregateSpec::Percentile { quantile: 0.999 }.to_string(),
            "p99.9"
        );
        for bad in [
            "", "p", "p-5", "p100.5", "p101", "p.5", "p5.", "p1e2", "pNaN", "pinf", "P95",
            "median", "avg", "Count", "p9 5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn config_reads_from_toml() {
        let config: AggregatesConfig = toml::from_str(
            r#"
            columns = ["count", "mean", "stddev", "p50", "p99.9", "distinct"]
            relative_accuracy = 0.005
            "#,
        )
        .expect("parses");
        let aggs = config.build().expect("valid");
        assert_eq!(
            aggs.columns().collect::<Vec<_>>(),
            ["count", "mean", "stddev", "p50", "p99.9", "distinct"]
        );
        assert_eq!(aggs.relative_accuracy(), 0.005);
        // Specs serialize as their names, so configs round-trip.
        let text = toml::to_string(&config).expect("writes");
        assert_eq!(
            toml::from_str::<AggregatesConfig>(&text).expect("reads"),
            config
        );

        // Defaults, and what is refused.
        let default: AggregatesConfig = toml::from_str("").expect("parses");
        assert_eq!(default, AggregatesConfig::default());
        assert_eq!(default.build().expect("valid").columns().len(), 4);
        let err = toml::from_str::<AggregatesConfig>(r#"columns = ["count", "median"]"#);
        assert!(err.expect_err("unknown").to_string().contains("median"));
        assert!(toml::from_str::<AggregatesConfig>("colums = []").is_err());
        let build = |text: &str| {
            toml::from_str::<AggregatesConfig>(text)
                .expect("parses")
                .build()
        };
        assert!(build("columns = []").is_err());
        assert!(build(r#"columns = ["mean", "mean"]"#).is_err());
        assert!(build(r#"columns = ["p95", "p95.0"]"#).is_err());
        assert!(build("relative_accuracy = 0.0").is_err());
        assert!(build("relative_accuracy = 1.5").is_err());
        assert!(Aggregates::new([AggregateSpec::Percentile { quantile: 2.0 }]).is_err());
    }
}
