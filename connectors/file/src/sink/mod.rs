//! File sinks: what a pipeline emits, written as NDJSON, CSV or Parquet.
//!
//! A pipeline emits window results, alerts, rejects and late readings. Each of
//! those types is a [`FileRecord`]: it names its columns once and writes its
//! fields, in column order, to a [`FieldWriter`]. Every format is one
//! `FieldWriter`, so the three formats share one column layout:
//!
//! | record | columns |
//! |---|---|
//! | [`WindowResult`](iotflow_types::WindowResult) | `device_id, metric, window_start_ms, window_end_ms, count, min, max, mean, sum` |
//! | [`Alert`](iotflow_types::Alert) | `device_id, metric, ts, value, score, detector` |
//! | [`Reject`](iotflow_types::Reject) | `source, offset, reason, field, raw` |
//! | [`Reading`](iotflow_types::Reading) | `device_id, ts, metric, value, unit, tags` |
//!
//! The first eight window columns are those of the fleet-v1 reference CSV
//! (`py_fleet.py`). A reject's `reason` is its stable
//! [code](iotflow_types::RejectReason::code), `field` the field the reason is
//! about (absent when none) and `raw` the lossy UTF-8 of its raw bytes.
//!
//! The text sinks ([`NdjsonSink`], [`CsvSink`]) write each field straight
//! into a buffered writer: numbers through `itoa`/`ryu` (floats in their
//! shortest form that parses back to the same `f64`), strings escaped or
//! quoted on the fly, no allocation per row. [`ParquetSink`] collects rows
//! into Arrow record batches of [`BATCH_ROWS`] rows for parquet's
//! `ArrowWriter`.
//!
//! All sinks implement [`Sink`]; [`open_sink`] picks one by [`Format`].
//! `close` flushes (and for Parquet writes the footer); a sink dropped
//! without `close` may lose its tail. Errors: an I/O failure is
//! [`Error::Io`] naming the file, anything else [`Error::Sink`]. After a
//! failed `write` the file may end in a partial row, so the sink refuses
//! further writes.

mod csv;
mod format;
mod ndjson;
mod parquet;
mod record;
mod text;

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use iotflow_core::sink::Sink;
use iotflow_core::{Error, Result};

pub use self::csv::CsvSink;
pub use self::format::Format;
pub use self::ndjson::NdjsonSink;
pub use self::parquet::{BATCH_ROWS, ParquetSink};
pub use self::record::{Column, ColumnKind, FieldWriter, FileRecord};

/// Size of the write buffer of a file sink.
const BUFFER_BYTES: usize = 256 * 1024;

/// Opens a sink of `format` writing records of type `D` to `path`, creating
/// the parent directories as needed. An existing file is truncated.
///
/// ```
/// use iotflow_core::sink::Sink;
/// use iotflow_file::sink::{Format, open_sink};
/// use iotflow_types::Alert;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out").join("alerts.csv");
/// let mut sink = open_sink::<Alert>(Format::Csv, &path)?;
/// sink.write(&[Alert {
///     device: "d-00042".into(),
///     metric: "temp".into(),
///     ts: 1_700_000_000_123,
///     value: 99.5,
///     score: 8.25,
///     detector: "zscore".into(),
/// }])?;
/// sink.close()?;
/// assert_eq!(
///     std::fs::read_to_string(&path)?,
///     "device_id,metric,ts,value,score,detector\n\
///      d-00042,temp,1700000000123,99.5,8.25,zscore\n",
/// );
/// # Ok(())
/// # }
/// ```
pub fn open_sink<D: FileRecord>(format: Format, path: &Path) -> Result<Box<dyn Sink<D>>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(match format {
        Format::Ndjson => Box::new(NdjsonSink::<D>::create(path)?),
        Format::Csv => Box::new(CsvSink::<D>::create(path)?),
        Format::Parquet => Box::new(ParquetSink::<D>::create(path)?),
    })
}

/// Creates (or truncates) `path` behind a write buffer.
fn create_file(path: &Path) -> Result<BufWriter<File>> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    Ok(BufWriter::with_capacity(BUFFER_BYTES, file))
}

/// A row writer of a line-oriented format (CSV, NDJSON).
trait TextRow: FieldWriter {
    /// Ends the current row.
    fn end_row(&mut self) -> io::Result<()>;
    /// Forgets a half-written row's column position.
    fn reset_row(&mut self);
    /// Flushes the underlying writer.
    fn flush_rows(&mut self) -> io::Result<()>;
}

/// Writes `batch` row by row; a failed row stops the sink (the file may end
/// in a partial row, so later writes are refused).
fn write_text_rows<D: FileRecord, R: TextRow>(
    row: &mut R,
    state: &mut SinkState,
    batch: &[D],
) -> Result<()> {
    state.check_open()?;
    for record in batch {
        if let Err(e) = record.write_fields(row).and_then(|()| row.end_row()) {
            row.reset_row();
            return Err(state.fail(e));
        }
    }
    Ok(())
}

/// Closes a text sink: flushes, refuses later writes.
fn close_text_rows<R: TextRow>(row: &mut R, state: &mut SinkState) -> Result<()> {
    state.closed = true;
    row.flush_rows().map_err(|e| state.fail(e))
}

/// What every file sink tracks besides its writer: its name for errors, and
/// whether it may still write.
#[derive(Debug)]
struct SinkState {
    format: &'static str,
    path: PathBuf,
    closed: bool,
    failed: bool,
}

impl SinkState {
    fn new(format: &'static str, path: PathBuf) -> Self {
        SinkState {
            format,
            path,
            closed: false,
            failed: false,
        }
    }

    fn sink_error(&self, message: String) -> Error {
        Error::Sink {
            sink: format!("{} {}", self.format, self.path.display()),
            message,
        }
    }

    fn closed_error(&self) -> Error {
        self.sink_error("write after close".to_owned())
    }

    /// Refuses writes after `close` or after a failed write.
    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(self.closed_error())
        } else if self.failed {
            Err(self.sink_error("an earlier write failed; the output may be incomplete".to_owned()))
        } else {
            Ok(())
        }
    }

    /// The crate error for `e`, without changing the state.
    fn error(&self, e: impl Into<Failure>) -> Error {
        match e.into() {
            Failure::Io(e) if e.kind() != io::ErrorKind::InvalidData => Error::io(&self.path, e),
            Failure::Io(e) => self.sink_error(e.to_string()),
            Failure::Other(message) => self.sink_error(message),
        }
    }

    /// Marks the sink failed and returns the crate error for `e`.
    fn fail(&mut self, e: impl Into<Failure>) -> Error {
        self.failed = true;
        self.error(e)
    }
}

/// A failure inside a sink, before it becomes an [`Error`].
enum Failure {
    /// An I/O error (`InvalidData` is a record that does not match its
    /// columns, not an OS error).
    Io(io::Error),
    /// An Arrow or Parquet error.
    Other(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<::parquet::errors::ParquetError> for Failure {
    fn from(e: ::parquet::errors::ParquetError) -> Self {
        match e {
            ::parquet::errors::ParquetError::External(inner) => match inner.downcast::<io::Error>()
            {
                Ok(io) => Failure::Io(*io),
                Err(other) => Failure::Other(other.to_string()),
            },
            other => Failure::Other(other.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for Failure {
    fn from(e: arrow::error::ArrowError) -> Self {
        match e {
            arrow::error::ArrowError::IoError(_, io) => Failure::Io(io),
            other => Failure::Other(other.to_string()),
        }
    }
}
