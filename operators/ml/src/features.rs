//! Feature vectors: what a model sees of a record, and why a record cannot
//! be seen.

use std::fmt;

use iotflow_types::{Stats, WindowResult};
use serde::{Deserialize, Serialize};

use crate::shingle::Shingle;

/// Builds a fixed-length `f32` feature vector from a record of type `D`.
///
/// Implemented by [`FeatureSpec`] for window results and shingles, and by
/// [`FeatureFn`] for any closure. The operator checks every value is finite
/// after `extract`, so an implementation need not.
pub trait Features<D>: 'static {
    /// Values per vector.
    fn width(&self) -> usize;

    /// Writes the record's features into `out` (`width()` values), or says
    /// why the record has none.
    fn extract(&self, record: &D, out: &mut [f32]) -> Result<(), RejectReason>;

    /// Whether these features can be built from `D` at all (checked once,
    /// when the operator is built).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Features from a closure: `features_fn(width, |record, out| ...)`.
#[derive(Clone, Debug)]
pub struct FeatureFn<F> {
    width: usize,
    f: F,
}

/// Features of `width` values written by `f`.
///
/// ```
/// use iotflow_ml::{Features, RejectReason, features_fn};
/// use iotflow_types::Reading;
/// let value_and_hour = features_fn(2, |r: &Reading, out: &mut [f32]| {
///     out[0] = r.value as f32;
///     out[1] = ((r.ts / 3_600_000) % 24) as f32;
///     Ok(())
/// });
/// let mut out = [0.0; 2];
/// value_and_hour.extract(&Reading::new("d-1", 7_200_000, "temp", 21.5), &mut out)?;
/// assert_eq!(out, [21.5, 2.0]);
/// # Ok::<(), RejectReason>(())
/// ```
pub fn features_fn<D, F>(width: usize, f: F) -> FeatureFn<F>
where
    F: Fn(&D, &mut [f32]) -> Result<(), RejectReason> + 'static,
{
    FeatureFn { width, f }
}

impl<D, F> Features<D> for FeatureFn<F>
where
    F: Fn(&D, &mut [f32]) -> Result<(), RejectReason> + 'static,
{
    fn width(&self) -> usize {
        self.width
    }

    fn extract(&self, record: &D, out: &mut [f32]) -> Result<(), RejectReason> {
        (self.f)(record, out)
    }
}

/// Why a record got no model outputs. It goes to the rejects output with
/// the record, never silently away.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// A feature has no value (the mean of an empty window, a column the
    /// record lacks).
    MissingFeature {
        /// The feature's position in the vector.
        column: usize,
        /// What the feature is.
        name: String,
    },
    /// A feature is NaN or infinite (or too large for `f32`).
    NonFiniteFeature {
        /// The feature's position in the vector.
        column: usize,
        /// The value before conversion to `f32`.
        value: f64,
    },
    /// The model failed on the batch the record was in.
    Model {
        /// The model's error.
        message: String,
    },
}

impl RejectReason {
    /// A stable snake_case code, for counts and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::MissingFeature { .. } => "missing_feature",
            RejectReason::NonFiniteFeature { .. } => "non_finite_feature",
            RejectReason::Model { .. } => "model",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::MissingFeature { column, name } => {
                write!(f, "feature {column} ({name}) is missing")
            }
            RejectReason::NonFiniteFeature { column, value } => {
                write!(f, "feature {column} is not a finite f32: {value}")
            }
            RejectReason::Model { message } => write!(f, "model failed: {message}"),
        }
    }
}

impl std::error::Error for RejectReason {}

/// Feature vectors named in configuration: columns of window statistics,
/// or the last values of a series.
///
/// ```
/// use iotflow_ml::{FeatureSpec, WindowColumn};
/// let spec: FeatureSpec = toml::from_str(r#"window = { columns = ["count", "mean", "range"] }"#)
///     .expect("valid");
/// assert_eq!(spec, FeatureSpec::window([WindowColumn::Count, WindowColumn::Mean, WindowColumn::Range]));
/// let spec: FeatureSpec = toml::from_str("shingle = { size = 8 }").expect("valid");
/// assert_eq!(spec, FeatureSpec::shingle(8));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureSpec {
    /// One value per column, from a `WindowResult<_, Stats>`.
    Window {
        /// The columns, in vector order.
        columns: Vec<WindowColumn>,
    },
    /// The values of a [`Shingle`], oldest first.
    Shingle {
        /// Values per vector; must equal the shingles' size.
        size: usize,
    },
}

impl FeatureSpec {
    /// Window statistics, one per column.
    pub fn window(columns: impl IntoIterator<Item = WindowColumn>) -> Self {
        FeatureSpec::Window {
            columns: columns.into_iter().collect(),
        }
    }

    /// The last `size` values of a series.
    pub fn shingle(size: usize) -> Self {
        FeatureSpec::Shingle { size }
    }

    fn len(&self) -> usize {
        match self {
            FeatureSpec::Window { columns } => columns.len(),
            FeatureSpec::Shingle { size } => *size,
        }
    }
}

/// A statistic of a window, as a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowColumn {
    /// Number of values.
    Count,
    /// Sum of the values.
    Sum,
    /// Mean (missing for an empty window).
    Mean,
    /// Smallest value (missing for an empty window).
    Min,
    /// Largest value (missing for an empty window).
    Max,
    /// `max − min` (missing for an empty window).
    Range,
    /// The window's length in seconds (`end − start`).
    DurationSecs,
}

impl WindowColumn {
    /// The column's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowColumn::Count => "count",
            WindowColumn::Sum => "sum",
            WindowColumn::Mean => "mean",
            WindowColumn::Min => "min",
            WindowColumn::Max => "max",
            WindowColumn::Range => "range",
            WindowColumn::DurationSecs => "duration_secs",
        }
    }

    /// The column's value for a window, `None` when it has none.
    pub fn of<K>(self, w: &WindowResult<K, Stats>) -> Option<f64> {
        let s = &w.stats;
        let empty = s.count == 0;
        match self {
            WindowColumn::Count => Some(s.count as f64),
            WindowColumn::Sum => Some(s.sum()),
            WindowColumn::Mean if !empty => Some(s.mean()),
            WindowColumn::Min if !empty => Some(s.min),
            WindowColumn::Max if !empty => Some(s.max),
            WindowColumn::Range if !empty => Some(s.max - s.min),
            WindowColumn::DurationSecs => Some(w.end.saturating_sub(w.start) as f64 / 1_000.0),
            _ => None,
        }
    }
}

/// Writes `v` as column `column`, rejecting what `f32` cannot hold.
#[inline]
pub(crate) fn put(out: &mut [f32], column: usize, v: f64) -> Result<(), RejectReason> {
    let x = v as f32;
    if !x.is_finite() {
        return Err(RejectReason::NonFiniteFeature { column, value: v });
    }
    out[column] = x;
    Ok(())
}

impl<K: 'static> Features<WindowResult<K, Stats>> for FeatureSpec {
    fn width(&self) -> usize {
        self.len()
    }

    fn extract(&self, w: &WindowResult<K, Stats>, out: &mut [f32]) -> Result<(), RejectReason> {
        let FeatureSpec::Window { columns } = self else {
            return Err(RejectReason::MissingFeature {
                column: 0,
                name: "window features on a window result".into(),
            });
        };
        for (i, c) in columns.iter().enumerate() {
            let v = c.of(w).ok_or_else(|| RejectReason::MissingFeature {
                column: i,
                name: c.as_str().into(),
            })?;
            put(out, i, v)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        match self {
            FeatureSpec::Window { columns } if !columns.is_empty() => Ok(()),
            FeatureSpec::Window { .. } => Err("window features need at least one column".into()),
            FeatureSpec::Shingle { .. } => {
                Err("shingle features cannot be built from window results".into())
            }
        }
    }
}

impl<K: 'static> Features<Shingle<K>> for FeatureSpec {
    fn width(&self) -> usize {
        self.len()
    }

    fn extract(&self, s: &Shingle<K>, out: &mut [f32]) -> Result<(), RejectReason> {
        if s.values.len() != self.len() {
            return Err(RejectReason::MissingFeature {
                column: s.values.len().min(self.len()),
                name: format!("a shingle of {} values, not {}", s.values.len(), self.len()),
            });
        }
        for (i, v) in s.values.iter().enumerate() {
            put(out, i, *v)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        match self {
            FeatureSpec::Shingle { size } if *size > 0 => Ok(()),
            FeatureSpec::Shingle { .. } => Err("shingle features need a size of at least 1".into()),
            FeatureSpec::Window { .. } => {
                Err("window features cannot be built from shingles".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(values: &[f64]) -> WindowResult<&'static str> {
        let mut stats = Stats::default();
        values.iter().for_each(|v| stats.add(*v));
        WindowResult {
            key: "d-1",
            start: 10_000,
            end: 15_000,
            stats,
            kind: Default::default(),
        }
    }

    #[test]
    fn window_columns_in_order() {
        let spec = FeatureSpec::window([
            WindowColumn::Count,
            WindowColumn::Sum,
            WindowColumn::Mean,
            WindowColumn::Min,
            WindowColumn::Max,
            WindowColumn::Range,
            WindowColumn::DurationSecs,
        ]);
        let mut out = [0.0; 7];
        spec.extract(&window(&[1.0, 2.0, 6.0]), &mut out)
            .expect("features");
        assert_eq!(out, [3.0, 9.0, 3.0, 1.0, 6.0, 5.0, 5.0]);
    }

    #[test]
    fn empty_windows_and_huge_values_are_rejected_with_the_column() {
        let spec = FeatureSpec::window([WindowColumn::Count, WindowColumn::Mean]);
        let mut out = [0.0; 2];
        assert_eq!(
            spec.extract(&window(&[]), &mut out),
            Err(RejectReason::MissingFeature {
                column: 1,
                name: "mean".into()
            })
        );
        let err = spec.extract(&window(&[1e300]), &mut out);
        assert_eq!(
            err,
            Err(RejectReason::NonFiniteFeature {
                column: 1,
                value: 1e300
            })
        );
        assert_eq!(err.map_err(|e| e.code()), Err("non_finite_feature"));
    }

    #[test]
    fn specs_say_what_they_apply_to() {
        let w = FeatureSpec::window([WindowColumn::Mean]);
        let s = FeatureSpec::shingle(4);
        assert!(Features::<WindowResult<u8>>::check(&w).is_ok());
        assert!(Features::<WindowResult<u8>>::check(&s).is_err());
        assert!(Features::<Shingle<u8>>::check(&s).is_ok());
        assert!(Features::<Shingle<u8>>::check(&w).is_err());
        assert!(Features::<Shingle<u8>>::check(&FeatureSpec::shingle(0)).is_err());
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<FeatureSpec>("shingle = { size = 3, step = 2 }").is_err());
        assert!(toml::from_str::<FeatureSpec>(r#"window = { columns = ["median"] }"#).is_err());
    }
}
