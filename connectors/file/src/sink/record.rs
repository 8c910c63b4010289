//! Records as flat rows: the one description every file format writes from.
//!
//! A record type names its columns once ([`FileRecord::COLUMNS`]) and hands
//! its fields, in that order, to a [`FieldWriter`]
//! ([`FileRecord::write_fields`]). The CSV, NDJSON and Parquet sinks each
//! implement `FieldWriter`, so one `write_fields` serves all three formats and
//! they cannot disagree on the column order.

use std::io;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use iotflow_types::{Alert, LateReading, Reading, Reject, SeriesKey, SmallStr, WindowResult};

/// The kind of value a column holds, which fixes how each format writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// A UTF-8 string (Arrow `Utf8`, not null).
    Str,
    /// A string that may be absent: empty in CSV, `null` in NDJSON, null in
    /// Parquet (Arrow `Utf8`, nullable).
    OptStr,
    /// Bytes written as lossy UTF-8 (invalid sequences become U+FFFD; Arrow
    /// `Utf8`, not null).
    LossyUtf8,
    /// An unsigned 64-bit integer (Arrow `UInt64`).
    U64,
    /// An unsigned 64-bit integer that may be absent: empty in CSV, `null`
    /// in NDJSON, null in Parquet (Arrow `UInt64`, nullable).
    OptU64,
    /// A signed 64-bit integer (Arrow `Int64`).
    I64,
    /// A 64-bit float (Arrow `Float64`). NDJSON writes a non-finite value as
    /// `null`; CSV writes `NaN`, `inf` or `-inf`; Parquet stores it as is.
    F64,
    /// Key/value tags as one JSON object: a nested object in NDJSON (`{}` when
    /// empty), its JSON text in CSV and Parquet (an empty string when empty;
    /// Arrow `Utf8`, not null).
    Tags,
}

impl ColumnKind {
    /// The Arrow type of the column and whether it is nullable.
    pub fn arrow_type(self) -> (DataType, bool) {
        match self {
            ColumnKind::Str | ColumnKind::LossyUtf8 | ColumnKind::Tags => (DataType::Utf8, false),
            ColumnKind::OptStr => (DataType::Utf8, true),
            ColumnKind::U64 => (DataType::UInt64, false),
            ColumnKind::OptU64 => (DataType::UInt64, true),
            ColumnKind::I64 => (DataType::Int64, false),
            ColumnKind::F64 => (DataType::Float64, false),
        }
    }
}

/// One column of a flat row: its name and the kind of value it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Column name (CSV header, NDJSON key, Parquet field name).
    pub name: &'static str,
    /// What the column holds.
    pub kind: ColumnKind,
}

impl Column {
    /// A column named `name` holding `kind`.
    pub const fn new(name: &'static str, kind: ColumnKind) -> Self {
        Column { name, kind }
    }
}

/// Receives the fields of one row, one call per column, in column order.
///
/// Each method belongs to one [`ColumnKind`]; calling the method of another
/// kind than the current column's, or writing more fields than there are
/// columns, is an [`io::ErrorKind::InvalidData`] error (a bug in the record's
/// [`FileRecord::write_fields`], never a panic).
pub trait FieldWriter {
    /// A [`ColumnKind::Str`] field.
    fn string(&mut self, value: &str) -> io::Result<()>;
    /// A [`ColumnKind::OptStr`] field.
    fn optional_string(&mut self, value: Option<&str>) -> io::Result<()>;
    /// A [`ColumnKind::OptU64`] field.
    fn optional_uint(&mut self, value: Option<u64>) -> io::Result<()>;
    /// A [`ColumnKind::I64`] field.
    fn int(&mut self, value: i64) -> io::Result<()>;
    /// A [`ColumnKind::LossyUtf8`] field.
    fn lossy_utf8(&mut self, value: &[u8]) -> io::Result<()>;
    /// A [`ColumnKind::U64`] field.
    fn uint(&mut self, value: u64) -> io::Result<()>;
    /// A [`ColumnKind::F64`] field.
    fn float(&mut self, value: f64) -> io::Result<()>;
    /// A [`ColumnKind::Tags`] field.
    fn tags(&mut self, tags: &[(SmallStr, SmallStr)]) -> io::Result<()>;
}

/// A record type that file sinks can write as a flat row.
///
/// Implemented for [`WindowResult`] (keyed by [`SeriesKey`]), [`Alert`],
/// [`Reject`], [`Reading`] and [`LateReading`].
///
/// ```
/// use iotflow_file::sink::FileRecord;
/// use iotflow_types::Alert;
/// assert_eq!(
///     Alert::column_names().collect::<Vec<_>>(),
///     ["device_id", "metric", "ts", "value", "score", "detector"],
/// );
/// ```
pub trait FileRecord: Send + 'static {
    /// The columns, in the order [`write_fields`](FileRecord::write_fields)
    /// writes them.
    const COLUMNS: &'static [Column];

    /// Writes the record's fields, one [`FieldWriter`] call per column of
    /// [`COLUMNS`](FileRecord::COLUMNS), in order.
    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()>;

    /// The column names, in order.
    fn column_names() -> impl Iterator<Item = &'static str> {
        Self::COLUMNS.iter().map(|c| c.name)
    }

    /// The Arrow schema of the row (see [`ColumnKind::arrow_type`]).
    fn arrow_schema() -> SchemaRef {
        let fields: Vec<ArrowField> = Self::COLUMNS
            .iter()
            .map(|c| {
                let (ty, nullable) = c.kind.arrow_type();
                ArrowField::new(c.name, ty, nullable)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

use ColumnKind::{F64, LossyUtf8, OptStr, Str, Tags, U64};

/// Windows: the columns of `py_fleet.py`'s reference CSV, then `sum`.
impl FileRecord for WindowResult<SeriesKey> {
    const COLUMNS: &'static [Column] = &[
        Column::new("device_id", Str),
        Column::new("metric", Str),
        Column::new("window_start_ms", U64),
        Column::new("window_end_ms", U64),
        Column::new("count", U64),
        Column::new("min", F64),
        Column::new("max", F64),
        Column::new("mean", F64),
        Column::new("sum", F64),
        Column::new("kind", Str),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.string(self.key.device.as_str())?;
        out.string(self.key.metric.as_str())?;
        out.uint(self.start)?;
        out.uint(self.end)?;
        out.uint(self.stats.count)?;
        out.float(self.stats.min)?;
        out.float(self.stats.max)?;
        out.float(self.stats.mean())?;
        out.float(self.stats.sum())?;
        out.string(self.kind.as_str())
    }
}

impl FileRecord for Alert {
    const COLUMNS: &'static [Column] = &[
        Column::new("device_id", Str),
        Column::new("metric", Str),
        Column::new("ts", U64),
        Column::new("value", F64),
        Column::new("score", F64),
        Column::new("detector", Str),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.string(self.device.as_str())?;
        out.string(self.metric.as_str())?;
        out.uint(self.ts)?;
        out.float(self.value)?;
        out.float(self.score)?;
        out.string(self.detector.as_str())
    }
}

/// Rejects: `reason` is the stable [`RejectReason::code`](iotflow_types::RejectReason::code),
/// `field` the field the reason is about (absent when none).
impl FileRecord for Reject {
    const COLUMNS: &'static [Column] = &[
        Column::new("source", Str),
        Column::new("offset", U64),
        Column::new("reason", Str),
        Column::new("field", OptStr),
        Column::new("raw", LossyUtf8),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.string(&self.pos.source)?;
        out.uint(self.pos.offset)?;
        out.string(self.reason.code())?;
        out.optional_string(self.reason.field().map(|f| f.name()))?;
        out.lossy_utf8(&self.raw)
    }
}

impl FileRecord for Reading {
    const COLUMNS: &'static [Column] = &[
        Column::new("device_id", Str),
        Column::new("ts", U64),
        Column::new("metric", Str),
        Column::new("value", F64),
        Column::new("unit", OptStr),
        Column::new("tags", Tags),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.string(self.device.as_str())?;
        out.uint(self.ts)?;
        out.string(self.metric.as_str())?;
        out.float(self.value)?;
        out.optional_string(self.unit.as_deref())?;
        out.tags(&self.tags)
    }
}

impl FileRecord for LateReading {
    const COLUMNS: &'static [Column] = &[
        Column::new("device_id", Str),
        Column::new("ts", U64),
        Column::new("metric", Str),
        Column::new("value", F64),
        Column::new("unit", OptStr),
        Column::new("tags", Tags),
        Column::new("window_start_ms", U64),
        Column::new("window_end_ms", U64),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        self.reading.write_fields(out)?;
        out.uint(self.window_start)?;
        out.uint(self.window_end)
    }
}

/// Tracks the current column of a row and checks that each field written
/// matches the column's kind.
#[derive(Debug)]
pub(crate) struct Cursor {
    columns: &'static [Column],
    next: usize,
}

impl Cursor {
    pub(crate) fn new(columns: &'static [Column]) -> Self {
        Cursor { columns, next: 0 }
    }

    /// Advances to the next column, which must be of `kind`; returns its index.
    #[inline]
    pub(crate) fn advance(&mut self, kind: ColumnKind) -> io::Result<usize> {
        let i = self.next;
        match self.columns.get(i) {
            Some(c) if c.kind == kind => {
                self.next = i + 1;
                Ok(i)
            }
            Some(c) => Err(invalid(format!(
                "column {:?} is {:?}, but a {kind:?} field was written",
                c.name, c.kind
            ))),
            None => Err(invalid(format!(
                "more fields written than the {} columns",
                self.columns.len()
            ))),
        }
    }

    /// Ends a row: every column must have been written.
    #[inline]
    pub(crate) fn finish_row(&mut self) -> io::Result<()> {
        let written = std::mem::take(&mut self.next);
        if written == self.columns.len() {
            Ok(())
        } else {
            Err(invalid(format!(
                "{written} fields written for {} columns",
                self.columns.len()
            )))
        }
    }

    /// Forgets a partly written row.
    pub(crate) fn reset(&mut self) {
        self.next = 0;
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
