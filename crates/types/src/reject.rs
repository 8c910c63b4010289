use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a record came from: the source (file path, topic/partition, …) and
/// the byte offset of the record's first byte in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePos {
    /// Source name, e.g. a file path.
    pub source: Arc<str>,
    /// Byte offset of the record in the source.
    pub offset: u64,
}

/// A required field of a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `device_id`
    DeviceId,
    /// `ts`
    Ts,
    /// `metric`
    Metric,
    /// `value`
    Value,
}

impl Field {
    /// The field's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Field::DeviceId => "device_id",
            Field::Ts => "ts",
            Field::Metric => "metric",
            Field::Value => "value",
        }
    }
}

/// Why a record was rejected. Every reject carries exactly one reason; its
/// [`code`](RejectReason::code) is stable and is what summaries and metrics
/// count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// Not parseable as JSON (truncated, garbage, …).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A required field is absent (or `null`).
    MissingField(Field),
    /// A field has the wrong type (e.g. `"value":"n/a"`, a float `ts`).
    WrongType(Field),
    /// A bare `NaN` / `Infinity` literal, which JSON does not allow.
    NanLiteral,
    /// A quoted non-finite number such as `"NaN"` or `"Infinity"`.
    NanString,
    /// A number that is not finite once parsed (e.g. `1e999`).
    NonFinite,
    /// A value outside the metric's physical range.
    OutOfRange,
    /// A metric the rules do not know.
    UnknownMetric,
    /// A timestamp that is negative or beyond the representable range.
    BadTimestamp,
    /// A record longer than the configured maximum.
    TooLong,
    /// A CSV row with the wrong number of columns.
    BadCsv,
    /// An event time too far ahead of the event time its source has seen:
    /// a device whose clock runs ahead (the clock-skew guard, `max_skew_ms`
    /// of the job's `[event_time]`).
    FutureTimestamp,
    /// A reading from a device the registry does not know (at the reading's
    /// event time), when enrichment is configured to reject those.
    UnknownDevice,
}

impl RejectReason {
    /// Stable snake_case code, used in summaries, metrics and dead-letter files.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField(_) => "missing_field",
            RejectReason::WrongType(_) => "wrong_type",
            RejectReason::NanLiteral => "nan_literal",
            RejectReason::NanString => "nan_string",
            RejectReason::NonFinite => "non_finite",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::UnknownMetric => "unknown_metric",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::TooLong => "too_long",
            RejectReason::BadCsv => "bad_csv",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::UnknownDevice => "unknown_device",
        }
    }

    /// The field the reason is about, if any.
    pub fn field(&self) -> Option<Field> {
        match self {
            RejectReason::MissingField(f) | RejectReason::WrongType(f) => Some(*f),
            RejectReason::NanLiteral
            | RejectReason::NanString
            | RejectReason::NonFinite
            | RejectReason::OutOfRange => Some(Field::Value),
            RejectReason::UnknownMetric => Some(Field::Metric),
            RejectReason::UnknownDevice => Some(Field::DeviceId),
            RejectReason::BadTimestamp | RejectReason::FutureTimestamp => Some(Field::Ts),
            _ => None,
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field() {
            Some(field) => write!(f, "{} ({})", self.code(), field.name()),
            None => f.write_str(self.code()),
        }
    }
}

/// A record that could not become a valid reading: where it was, why, and
/// its raw bytes (for the dead-letter output; nothing is silently dropped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Where the record was read.
    pub pos: SourcePos,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// The record's raw bytes (without the line terminator).
    pub raw: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_timestamp_is_about_ts() {
        let r = RejectReason::FutureTimestamp;
        assert_eq!(r.code(), "future_timestamp");
        assert_eq!(r.field(), Some(Field::Ts));
        assert_eq!(r.to_string(), "future_timestamp (ts)");
        // The serde name is the code, like every unit reason's.
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some("\"future_timestamp\"")
        );
    }
}
