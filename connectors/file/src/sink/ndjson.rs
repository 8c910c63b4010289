//! Newline-delimited JSON: one object per record, keys in column order.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use iotflow_core::Result;
use iotflow_core::sink::Sink;
use iotflow_types::SmallStr;

use super::record::{ColumnKind, Cursor, FieldWriter, FileRecord};
use super::{SinkState, TextRow, close_text_rows, create_file, text, write_text_rows};

/// Writes records as newline-delimited JSON, one object per line with the
/// record's [columns](FileRecord::COLUMNS) as keys in order.
///
/// Floats are written in their shortest round-trip form, non-finite ones as
/// `null`; an absent optional string is `null`; [`ColumnKind::Tags`] is a
/// nested object.
#[derive(Debug)]
pub struct NdjsonSink<D, W: Write = BufWriter<File>> {
    out: NdjsonRow<W>,
    state: SinkState,
    _record: PhantomData<fn(&D)>,
}

impl<D: FileRecord> NdjsonSink<D> {
    /// Creates (or truncates) the file at `path`. The parent directory must
    /// exist; [`open_sink`](super::open_sink) creates it.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Ok(Self::from_writer(create_file(path)?, path))
    }
}

impl<D: FileRecord, W: Write> NdjsonSink<D, W> {
    /// Writes to `writer`; `name` names it in errors (a path, `-`, …).
    pub fn from_writer(writer: W, name: impl Into<PathBuf>) -> Self {
        let keys = D::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut key = Vec::with_capacity(c.name.len() + 4);
                key.push(if i == 0 { b'{' } else { b',' });
                // Column names are identifiers, but escape them all the same.
                let _ = text::write_json_str(&mut key, c.name);
                key.push(b':');
                key
            })
            .collect();
        NdjsonSink {
            out: NdjsonRow {
                out: writer,
                keys,
                cursor: Cursor::new(D::COLUMNS),
            },
            state: SinkState::new("ndjson", name.into()),
            _record: PhantomData,
        }
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out.out
    }
}

impl<D: FileRecord, W: Write + Send + 'static> Sink<D> for NdjsonSink<D, W> {
    fn write(&mut self, batch: &[D]) -> Result<()> {
        write_text_rows(&mut self.out, &mut self.state, batch)
    }

    fn close(&mut self) -> Result<()> {
        close_text_rows(&mut self.out, &mut self.state)
    }
}

/// The [`FieldWriter`] of one NDJSON line.
#[derive(Debug)]
struct NdjsonRow<W> {
    out: W,
    /// Per column: `{"name":` for the first, `,"name":` for the others.
    keys: Vec<Vec<u8>>,
    cursor: Cursor,
}

impl<W: Write> NdjsonRow<W> {
    #[inline]
    fn key(&mut self, kind: ColumnKind) -> io::Result<()> {
        let i = self.cursor.advance(kind)?;
        self.out.write_all(&self.keys[i])
    }
}

impl<W: Write> TextRow for NdjsonRow<W> {
    fn end_row(&mut self) -> io::Result<()> {
        self.cursor.finish_row()?;
        self.out.write_all(b"}\n")
    }

    fn reset_row(&mut self) {
        self.cursor.reset();
    }

    fn flush_rows(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> FieldWriter for NdjsonRow<W> {
    fn string(&mut self, value: &str) -> io::Result<()> {
        self.key(ColumnKind::Str)?;
        text::write_json_str(&mut self.out, value)
    }

    fn optional_string(&mut self, value: Option<&str>) -> io::Result<()> {
        self.key(ColumnKind::OptStr)?;
        match value {
            Some(v) => text::write_json_str(&mut self.out, v),
            None => self.out.write_all(b"null"),
        }
    }

    fn lossy_utf8(&mut self, value: &[u8]) -> io::Result<()> {
        self.key(ColumnKind::LossyUtf8)?;
        text::write_json_lossy(&mut self.out, value)
    }

    fn uint(&mut self, value: u64) -> io::Result<()> {
        self.key(ColumnKind::U64)?;
        text::write_u64(&mut self.out, value)
    }

    fn optional_uint(&mut self, value: Option<u64>) -> io::Result<()> {
        self.key(ColumnKind::OptU64)?;
        match value {
            Some(v) => text::write_u64(&mut self.out, v),
            None => self.out.write_all(b"null"),
        }
    }

    fn int(&mut self, value: i64) -> io::Result<()> {
        self.key(ColumnKind::I64)?;
        text::write_i64(&mut self.out, value)
    }

    fn float(&mut self, value: f64) -> io::Result<()> {
        self.key(ColumnKind::F64)?;
        text::write_json_f64(&mut self.out, value)
    }

    fn tags(&mut self, tags: &[(SmallStr, SmallStr)]) -> io::Result<()> {
        self.key(ColumnKind::Tags)?;
        text::write_json_tags(&mut self.out, tags)
    }
}
