use std::fmt;

use serde::{Deserialize, Serialize};

/// The eight ways a fleet-v1 line is broken. Malformed lines are assigned
/// these kinds cyclically, in this order, so their counts differ by at most
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// A strict prefix of a valid line, cut at least two bytes before its
    /// end, so the closing `}` is always missing: not JSON.
    Truncated,
    /// A JSON object without one of `device_id`, `ts`, `metric`, `value`.
    MissingField,
    /// `"value":NaN`, a bare literal JSON does not allow.
    NanLiteral,
    /// `"value":"NaN"`, a string where a number belongs.
    NanString,
    /// `"value":"n/a"`, a non-numeric string.
    StringValue,
    /// A number outside the metric's physical range (`999.0` °C, `150.0` %,
    /// `5.0` hPa, `-1.0` g).
    OutOfRange,
    /// `"value":1e999`, which overflows an `f64` to infinity.
    OverflowInf,
    /// Metric `rpm` (unit `rpm`), none of the four known metrics.
    UnknownMetric,
}

impl MalformedKind {
    /// All kinds, in the order lines cycle through them.
    pub const ALL: [MalformedKind; 8] = [
        MalformedKind::Truncated,
        MalformedKind::MissingField,
        MalformedKind::NanLiteral,
        MalformedKind::NanString,
        MalformedKind::StringValue,
        MalformedKind::OutOfRange,
        MalformedKind::OverflowInf,
        MalformedKind::UnknownMetric,
    ];

    /// The kind's name as `gen_fleet.py` writes it in `FILE.meta.json`.
    ///
    /// ```
    /// use iotflow_sim::MalformedKind;
    /// assert_eq!(MalformedKind::OverflowInf.name(), "overflow_inf");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            MalformedKind::Truncated => "truncated",
            MalformedKind::MissingField => "missing_field",
            MalformedKind::NanLiteral => "nan_literal",
            MalformedKind::NanString => "nan_string",
            MalformedKind::StringValue => "string_value",
            MalformedKind::OutOfRange => "out_of_range",
            MalformedKind::OverflowInf => "overflow_inf",
            MalformedKind::UnknownMetric => "unknown_metric",
        }
    }

    /// Position in [`MalformedKind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of line [`FleetGenerator::next_line`](crate::FleetGenerator::next_line)
/// produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// A valid reading with ordinary noise.
    Valid,
    /// A valid reading that is an anomalous spike (baseline ± 8 σ).
    Spike,
    /// A line a pipeline must reject.
    Malformed(MalformedKind),
}

impl LineKind {
    /// Whether a correct pipeline accepts the line (`Valid` or `Spike`).
    pub fn is_valid(&self) -> bool {
        !matches!(self, LineKind::Malformed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_order() {
        for (i, k) in MalformedKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            let json = serde_json::to_string(k).expect("serialize");
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(k.to_string(), k.name());
        }
    }
}
