//! Parquet: rows collected into Arrow record batches, written by parquet's
//! `ArrowWriter`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use iotflow_core::Result;
use iotflow_core::sink::Sink;
use iotflow_types::SmallStr;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::record::{Column, ColumnKind, Cursor, FieldWriter, FileRecord};
use super::{SinkState, create_file, text};

/// Rows per Arrow record batch handed to the Parquet writer.
pub const BATCH_ROWS: usize = 64 * 1024;

/// Initial row capacity of the builders: small, so that a sink of a few rows
/// (rejects, alerts) costs little; the builders grow to [`BATCH_ROWS`].
const INITIAL_ROWS: usize = 1024;

/// Writes records to a Parquet file with the record's
/// [Arrow schema](FileRecord::arrow_schema), zstd-compressed (level 1).
///
/// Rows are collected into record batches of [`BATCH_ROWS`] rows; the Parquet
/// writer groups batches into row groups (up to about a million rows each).
/// [`close`](Sink::close) writes the last batch and the footer: a file not
/// closed is not readable.
pub struct ParquetSink<D, W: Write + Send = BufWriter<File>> {
    writer: Option<ArrowWriter<W>>,
    schema: SchemaRef,
    rows: ArrowRows,
    state: SinkState,
    _record: PhantomData<fn(&D)>,
}

impl<D, W: Write + Send> std::fmt::Debug for ParquetSink<D, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("state", &self.state)
            .field("buffered_rows", &self.rows.len)
            .finish_non_exhaustive()
    }
}

impl<D: FileRecord> ParquetSink<D> {
    /// Creates (or truncates) the file at `path`. The parent directory must
    /// exist; [`open_sink`](super::open_sink) creates it.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_writer(create_file(path)?, path)
    }
}

impl<D: FileRecord, W: Write + Send> ParquetSink<D, W> {
    /// Writes to `writer`; `name` names it in errors.
    pub fn from_writer(writer: W, name: impl Into<PathBuf>) -> Result<Self> {
        let state = SinkState::new("parquet", name.into());
        let level = ZstdLevel::try_new(1).map_err(|e| state.error(e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .build();
        let schema = D::arrow_schema();
        let writer = ArrowWriter::try_new(writer, schema.clone(), Some(props))
            .map_err(|e| state.error(e))?;
        Ok(ParquetSink {
            writer: Some(writer),
            schema,
            rows: ArrowRows::new(D::COLUMNS, INITIAL_ROWS),
            state,
            _record: PhantomData,
        })
    }

    /// Hands the collected rows to the Parquet writer as one record batch.
    fn write_batch(&mut self) -> Result<()> {
        if self.rows.len == 0 {
            return Ok(());
        }
        let columns = self.rows.finish();
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| self.state.fail(e))?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| self.state.closed_error())?;
        writer.write(&batch).map_err(|e| self.state.fail(e))
    }
}

impl<D: FileRecord, W: Write + Send + 'static> Sink<D> for ParquetSink<D, W> {
    fn write(&mut self, batch: &[D]) -> Result<()> {
        self.state.check_open()?;
        for record in batch {
            if let Err(e) = self.rows.append(record) {
                return Err(self.state.fail(e));
            }
            if self.rows.len >= BATCH_ROWS {
                self.write_batch()?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if self.writer.is_none() {
            return Ok(());
        }
        // A failed write may have left part of a row in the builders: the
        // file cannot be completed.
        self.state.check_open()?;
        let result = self.write_batch();
        self.state.closed = true;
        result?;
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        writer.finish().map_err(|e| self.state.fail(e))?;
        writer.sync().map_err(|e| self.state.fail(e))
    }
}

/// One Arrow array builder per column.
enum ColumnBuilder {
    Utf8(StringBuilder),
    UInt64(UInt64Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
}

/// Collects rows into Arrow arrays; the [`FieldWriter`] of the Parquet sink.
struct ArrowRows {
    columns: Vec<ColumnBuilder>,
    cursor: Cursor,
    /// Rows appended since the last [`finish`](ArrowRows::finish).
    len: usize,
    /// Reused buffer for strings that are built, not borrowed.
    scratch: Vec<u8>,
}

impl ArrowRows {
    fn new(columns: &'static [Column], capacity: usize) -> Self {
        let builders = columns
            .iter()
            .map(|c| match c.kind {
                ColumnKind::Str | ColumnKind::OptStr | ColumnKind::LossyUtf8 | ColumnKind::Tags => {
                    ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 8))
                }
                ColumnKind::U64 | ColumnKind::OptU64 => {
                    ColumnBuilder::UInt64(UInt64Builder::with_capacity(capacity))
                }
                ColumnKind::I64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
                ColumnKind::F64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            })
            .collect();
        ArrowRows {
            columns: builders,
            cursor: Cursor::new(columns),
            len: 0,
            scratch: Vec::new(),
        }
    }

    /// Appends one record. On error the builders may hold part of the row, so
    /// the sink stops accepting writes (see `SinkState::fail`).
    fn append<D: FileRecord>(&mut self, record: &D) -> io::Result<()> {
        let result = record
            .write_fields(self)
            .and_then(|()| self.cursor.finish_row());
        if result.is_err() {
            self.cursor.reset();
        } else {
            self.len += 1;
        }
        result
    }

    /// The collected arrays; the builders start over empty.
    fn finish(&mut self) -> Vec<ArrayRef> {
        self.len = 0;
        self.columns
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
                    ColumnBuilder::UInt64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Int64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Float64(b) => Arc::new(b.finish()),
                }
            })
            .collect()
    }

    #[inline]
    fn utf8(&mut self, kind: ColumnKind) -> io::Result<&mut StringBuilder> {
        let i = self.cursor.advance(kind)?;
        match self.columns.get_mut(i) {
            Some(ColumnBuilder::Utf8(b)) => Ok(b),
            _ => Err(mismatch()),
        }
    }

    /// Appends the scratch buffer (valid UTF-8 by construction) to column `kind`.
    fn utf8_from_scratch(&mut self, kind: ColumnKind) -> io::Result<()> {
        let i = self.cursor.advance(kind)?;
        let s = std::str::from_utf8(&self.scratch)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match self.columns.get_mut(i) {
            Some(ColumnBuilder::Utf8(b)) => {
                b.append_value(s);
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }
}

fn mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "column builder does not match the column kind",
    )
}

impl FieldWriter for ArrowRows {
    fn string(&mut self, value: &str) -> io::Result<()> {
        self.utf8(ColumnKind::Str)?.append_value(value);
        Ok(())
    }

    fn optional_string(&mut self, value: Option<&str>) -> io::Result<()> {
        self.utf8(ColumnKind::OptStr)?.append_option(value);
        Ok(())
    }

    fn lossy_utf8(&mut self, value: &[u8]) -> io::Result<()> {
        match std::str::from_utf8(value) {
            Ok(s) => {
                self.utf8(ColumnKind::LossyUtf8)?.append_value(s);
                Ok(())
            }
            Err(_) => {
                self.scratch.clear();
                for chunk in value.utf8_chunks() {
                    self.scratch.extend_from_slice(chunk.valid().as_bytes());
                    if !chunk.invalid().is_empty() {
                        self.scratch.extend_from_slice("\u{FFFD}".as_bytes());
                    }
                }
                self.utf8_from_scratch(ColumnKind::LossyUtf8)
            }
        }
    }

    fn uint(&mut self, value: u64) -> io::Result<()> {
        let i = self.cursor.advance(ColumnKind::U64)?;
        match self.columns.get_mut(i) {
            Some(ColumnBuilder::UInt64(b)) => {
                b.append_value(value);
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }

    fn optional_uint(&mut self, value: Option<u64>) -> io::Result<()> {
        let i = self.cursor.advance(ColumnKind::OptU64)?;
        match self.columns.get_mut(i) {
            Some(ColumnBuilder::UInt64(b)) => {
                b.append_option(value);
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }

    fn int(&mut self, value: i64) -> io::Result<()> {
        let i = self.cursor.advance(ColumnKind::I64)?;
        match self.columns.get_mut(i) {
            Some(ColumnBuilder::Int64(b)) => {
                b.append_value(value);
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }

    fn float(&mut self, value: f64) -> io::Result<()> {
        let i = self.cursor.advance(ColumnKind::F64)?;
        match self.columns.get_mut(i) {
            Some(ColumnBuilder::Float64(b)) => {
                b.append_value(value);
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }

    fn tags(&mut self, tags: &[(SmallStr, SmallStr)]) -> io::Result<()> {
        self.scratch.clear();
        if !tags.is_empty() {
            text::write_json_tags(&mut self.scratch, tags)?;
        }
        self.utf8_from_scratch(ColumnKind::Tags)
    }
}
