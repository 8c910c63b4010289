//! The bytes of one line: the metric table, and a reading written as a JSON
//! object, whole or broken in one of the eight malformed ways.

use rand::Rng;

use crate::MalformedKind;
use crate::format::push_fixed;
use crate::rng::FleetRng;

/// One of the four fleet-v1 metrics.
pub(crate) struct MetricSpec {
    pub(crate) name: &'static [u8],
    pub(crate) unit: &'static [u8],
    /// Normal band the per-(device, metric) baselines are drawn from.
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    /// Noise standard deviation.
    pub(crate) sigma: f64,
    pub(crate) decimals: u8,
    /// Literal written by [`MalformedKind::OutOfRange`].
    pub(crate) out_of_range: &'static [u8],
}

/// Indexed by `(second + device) % 4`, as in `gen_fleet.py`.
pub(crate) const METRICS: [MetricSpec; 4] = [
    MetricSpec {
        name: b"temp",
        unit: b"C",
        lo: 15.0,
        hi: 30.0,
        sigma: 0.3,
        decimals: 2,
        out_of_range: b"999.0",
    },
    MetricSpec {
        name: b"humidity",
        unit: b"%",
        lo: 20.0,
        hi: 80.0,
        sigma: 1.5,
        decimals: 2,
        out_of_range: b"150.0",
    },
    MetricSpec {
        name: b"pressure",
        unit: b"hPa",
        lo: 980.0,
        hi: 1040.0,
        sigma: 0.8,
        decimals: 2,
        out_of_range: b"5.0",
    },
    MetricSpec {
        name: b"vibration",
        unit: b"g",
        lo: 0.0,
        hi: 2.0,
        sigma: 0.05,
        decimals: 4,
        out_of_range: b"-1.0",
    },
];

/// A value as it goes into a line.
#[derive(Clone, Copy)]
pub(crate) enum Value {
    /// A number with this many decimals.
    Fixed(f64, u8),
    /// Bytes written as they are (`NaN`, `"n/a"`, `1e999`, …).
    Raw(&'static [u8]),
}

/// The fields of one reading; [`Fields::push`] writes them as a JSON object.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// The whole device id, `d-` included.
    pub(crate) id: &'a [u8],
    pub(crate) ts: u64,
    pub(crate) metric: &'a [u8],
    pub(crate) value: Value,
    pub(crate) unit: &'a [u8],
}

impl Fields<'_> {
    /// Appends the object without a newline, leaving out field number
    /// `skip` (0 device_id, 1 ts, 2 metric, 3 value, 4 unit) if given.
    #[inline]
    pub(crate) fn push(&self, buf: &mut Vec<u8>, skip: Option<usize>) {
        buf.push(b'{');
        let mut first = true;
        for field in 0..5 {
            if skip == Some(field) {
                continue;
            }
            if !first {
                buf.push(b',');
            }
            first = false;
            match field {
                0 => {
                    buf.extend_from_slice(b"\"device_id\":\"");
                    buf.extend_from_slice(self.id);
                    buf.push(b'"');
                }
                1 => {
                    buf.extend_from_slice(b"\"ts\":");
                    buf.extend_from_slice(itoa::Buffer::new().format(self.ts).as_bytes());
                }
                2 => {
                    buf.extend_from_slice(b"\"metric\":\"");
                    buf.extend_from_slice(self.metric);
                    buf.push(b'"');
                }
                3 => {
                    buf.extend_from_slice(b"\"value\":");
                    match self.value {
                        Value::Fixed(v, decimals) => push_fixed(buf, v, decimals),
                        Value::Raw(raw) => buf.extend_from_slice(raw),
                    }
                }
                _ => {
                    buf.extend_from_slice(b"\"unit\":\"");
                    buf.extend_from_slice(self.unit);
                    buf.push(b'"');
                }
            }
        }
        buf.push(b'}');
    }
}

/// Writes the malformed variant `kind` of the reading `fields`.
pub(crate) fn push_malformed(
    buf: &mut Vec<u8>,
    rng: &mut FleetRng,
    kind: MalformedKind,
    fields: Fields<'_>,
    metric: &MetricSpec,
) {
    let raw = |value| Fields {
        value: Value::Raw(value),
        ..fields
    };
    match kind {
        MalformedKind::Truncated => {
            let start = buf.len();
            fields.push(buf, None);
            let len = (buf.len() - start) as u64;
            // Keep 1..=len-2 bytes: the closing `"}` or `}` is always lost.
            let keep = rng.random_range(1..=len - 2);
            buf.truncate(start + keep as usize);
        }
        MalformedKind::MissingField => {
            let skip = rng.random_range(0..4u32) as usize;
            fields.push(buf, Some(skip));
        }
        MalformedKind::NanLiteral => raw(b"NaN").push(buf, None),
        MalformedKind::NanString => raw(b"\"NaN\"").push(buf, None),
        MalformedKind::StringValue => raw(b"\"n/a\"").push(buf, None),
        MalformedKind::OutOfRange => raw(metric.out_of_range).push(buf, None),
        MalformedKind::OverflowInf => raw(b"1e999").push(buf, None),
        MalformedKind::UnknownMetric => Fields {
            metric: b"rpm",
            unit: b"rpm",
            ..fields
        }
        .push(buf, None),
    }
}
