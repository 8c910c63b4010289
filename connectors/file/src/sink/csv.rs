//! CSV (RFC 4180): a header row, then one row per record.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use iotflow_core::Result;
use iotflow_core::sink::Sink;
use iotflow_types::SmallStr;

use super::record::{ColumnKind, Cursor, FieldWriter, FileRecord};
use super::{SinkState, TextRow, close_text_rows, create_file, text, write_text_rows};

/// Writes records as CSV: a header row of the record's
/// [column names](FileRecord::COLUMNS), then one row per record, lines ended
/// by `\n`.
///
/// A field is quoted (RFC 4180, quotes doubled) only when it holds a comma, a
/// quote or a line break. Floats are written in their shortest round-trip
/// form (`NaN`, `inf`, `-inf` when not finite); an absent optional string is
/// an empty field; [`ColumnKind::Tags`] is the JSON text of the tags, empty
/// when there are none.
#[derive(Debug)]
pub struct CsvSink<D, W: Write = BufWriter<File>> {
    out: CsvRow<W>,
    state: SinkState,
    _record: PhantomData<fn(&D)>,
}

impl<D: FileRecord> CsvSink<D> {
    /// Creates (or truncates) the file at `path` and writes the header row.
    /// The parent directory must exist; [`open_sink`](super::open_sink)
    /// creates it.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_writer(create_file(path)?, path)
    }
}

impl<D: FileRecord, W: Write> CsvSink<D, W> {
    /// Writes to `writer`, starting with the header row; `name` names it in
    /// errors (a path, `-`, …).
    pub fn from_writer(writer: W, name: impl Into<PathBuf>) -> Result<Self> {
        let mut state = SinkState::new("csv", name.into());
        let mut out = CsvRow {
            out: writer,
            cursor: Cursor::new(D::COLUMNS),
            scratch: Vec::new(),
        };
        out.header(D::column_names()).map_err(|e| state.fail(e))?;
        Ok(CsvSink {
            out,
            state,
            _record: PhantomData,
        })
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out.out
    }
}

impl<D: FileRecord, W: Write + Send + 'static> Sink<D> for CsvSink<D, W> {
    fn write(&mut self, batch: &[D]) -> Result<()> {
        write_text_rows(&mut self.out, &mut self.state, batch)
    }

    fn close(&mut self) -> Result<()> {
        close_text_rows(&mut self.out, &mut self.state)
    }
}

/// The [`FieldWriter`] of one CSV row.
#[derive(Debug)]
struct CsvRow<W> {
    out: W,
    cursor: Cursor,
    /// Reused buffer for the JSON text of tags.
    scratch: Vec<u8>,
}

impl<W: Write> CsvRow<W> {
    fn header<'a>(&mut self, names: impl Iterator<Item = &'a str>) -> io::Result<()> {
        for (i, name) in names.enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            text::write_csv_str(&mut self.out, name.as_bytes())?;
        }
        self.out.write_all(b"\n")
    }

    /// Starts a field of `kind`: the separator unless it is the first.
    #[inline]
    fn field(&mut self, kind: ColumnKind) -> io::Result<()> {
        if self.cursor.advance(kind)? > 0 {
            self.out.write_all(b",")?;
        }
        Ok(())
    }
}

impl<W: Write> TextRow for CsvRow<W> {
    fn end_row(&mut self) -> io::Result<()> {
        self.cursor.finish_row()?;
        self.out.write_all(b"\n")
    }

    fn reset_row(&mut self) {
        self.cursor.reset();
    }

    fn flush_rows(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> FieldWriter for CsvRow<W> {
    fn string(&mut self, value: &str) -> io::Result<()> {
        self.field(ColumnKind::Str)?;
        text::write_csv_str(&mut self.out, value.as_bytes())
    }

    fn optional_string(&mut self, value: Option<&str>) -> io::Result<()> {
        self.field(ColumnKind::OptStr)?;
        match value {
            Some(v) => text::write_csv_str(&mut self.out, v.as_bytes()),
            None => Ok(()),
        }
    }

    fn lossy_utf8(&mut self, value: &[u8]) -> io::Result<()> {
        self.field(ColumnKind::LossyUtf8)?;
        text::write_csv_lossy(&mut self.out, value)
    }

    fn uint(&mut self, value: u64) -> io::Result<()> {
        self.field(ColumnKind::U64)?;
        text::write_u64(&mut self.out, value)
    }

    fn optional_uint(&mut self, value: Option<u64>) -> io::Result<()> {
        self.field(ColumnKind::OptU64)?;
        match value {
            Some(v) => text::write_u64(&mut self.out, v),
            None => Ok(()),
        }
    }

    fn int(&mut self, value: i64) -> io::Result<()> {
        self.field(ColumnKind::I64)?;
        text::write_i64(&mut self.out, value)
    }

    fn float(&mut self, value: f64) -> io::Result<()> {
        self.field(ColumnKind::F64)?;
        text::write_f64(&mut self.out, value)
    }

    fn tags(&mut self, tags: &[(SmallStr, SmallStr)]) -> io::Result<()> {
        self.field(ColumnKind::Tags)?;
        if tags.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        text::write_json_tags(&mut self.scratch, tags)?;
        text::write_csv_str(&mut self.out, &self.scratch)
    }
}
