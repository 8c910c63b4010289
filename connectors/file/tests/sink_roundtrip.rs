//! Every file format × every record type: write with the sink, read back with
//! an independent reader (serde_json, the csv crate, parquet's Arrow reader)
//! and compare every field.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::DataType;
use iotflow_core::Error;
use iotflow_core::sink::Sink;
use iotflow_file::sink::{
    BATCH_ROWS, Column, ColumnKind, CsvSink, FieldWriter, FileRecord, Format, NdjsonSink,
    ParquetSink, open_sink,
};
use iotflow_types::{
    Alert, Field, Reading, Reject, RejectReason, ResultKind, SeriesKey, SourcePos, Stats,
    WindowResult,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One field as read back, independent of the format.
#[derive(Clone)]
enum Cell {
    Str(String),
    Null,
    U64(u64),
    I64(i64),
    F64(f64),
    Tags(BTreeMap<String, String>),
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Str(a), Cell::Str(b)) => a == b,
            (Cell::Null, Cell::Null) => true,
            (Cell::U64(a), Cell::U64(b)) => a == b,
            (Cell::I64(a), Cell::I64(b)) => a == b,
            // Bit-exact (so -0.0 ≠ 0.0), but any NaN equals any NaN.
            (Cell::F64(a), Cell::F64(b)) => {
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
            }
            (Cell::Tags(a), Cell::Tags(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Str(s) => write!(f, "{s:?}"),
            Cell::Null => f.write_str("null"),
            Cell::U64(v) => write!(f, "{v}u"),
            Cell::I64(v) => write!(f, "{v}i"),
            Cell::F64(v) => write!(f, "{v:?}f"),
            Cell::Tags(t) => write!(f, "{t:?}"),
        }
    }
}

fn s(v: &str) -> Cell {
    Cell::Str(v.to_owned())
}

/// The cells a record should read back as, computed from the record itself
/// (not through the sink's `FieldWriter`).
trait Expected: FileRecord + Clone {
    fn expected(&self) -> Vec<Cell>;
}

impl Expected for WindowResult<SeriesKey> {
    fn expected(&self) -> Vec<Cell> {
        vec![
            s(self.key.device.as_str()),
            s(self.key.metric.as_str()),
            Cell::U64(self.start),
            Cell::U64(self.end),
            Cell::U64(self.stats.count),
            Cell::F64(self.stats.min),
            Cell::F64(self.stats.max),
            Cell::F64(self.stats.mean()),
            Cell::F64(self.stats.sum()),
            s(self.kind.as_str()),
        ]
    }
}

impl Expected for Alert {
    fn expected(&self) -> Vec<Cell> {
        vec![
            s(self.device.as_str()),
            s(self.metric.as_str()),
            Cell::U64(self.ts),
            Cell::F64(self.value),
            Cell::F64(self.score),
            s(&self.detector),
        ]
    }
}

impl Expected for Reject {
    fn expected(&self) -> Vec<Cell> {
        vec![
            s(&self.pos.source),
            Cell::U64(self.pos.offset),
            s(self.reason.code()),
            self.reason.field().map_or(Cell::Null, |f| s(f.name())),
            Cell::Str(String::from_utf8_lossy(&self.raw).into_owned()),
        ]
    }
}

impl Expected for Reading {
    fn expected(&self) -> Vec<Cell> {
        vec![
            s(self.device.as_str()),
            Cell::U64(self.ts),
            s(self.metric.as_str()),
            Cell::F64(self.value),
            self.unit.as_deref().map_or(Cell::Null, s),
            Cell::Tags(
                self.tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        ]
    }
}

// ---------------------------------------------------------------- readers

/// Reads a file written by `NdjsonSink<D>`: keys must be the columns in order.
fn read_ndjson<D: FileRecord>(path: &Path) -> Result<Vec<Vec<Cell>>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "NDJSON must end with a newline"
    );
    let mut rows = Vec::new();
    for line in text.lines() {
        let fields: OrderedObject = serde_json::from_str(line)?;
        let keys: Vec<&str> = fields.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            D::column_names().collect::<Vec<_>>(),
            "keys of {line}"
        );
        let mut row = Vec::new();
        for (col, (_, raw)) in D::COLUMNS.iter().zip(&fields.0) {
            let raw = raw.get();
            row.push(match col.kind {
                ColumnKind::Str | ColumnKind::LossyUtf8 => Cell::Str(serde_json::from_str(raw)?),
                ColumnKind::OptStr => {
                    serde_json::from_str::<Option<String>>(raw)?.map_or(Cell::Null, Cell::Str)
                }
                ColumnKind::U64 => Cell::U64(raw.parse()?),
                ColumnKind::OptU64 if raw == "null" => Cell::Null,
                ColumnKind::OptU64 => Cell::U64(raw.parse()?),
                ColumnKind::I64 => Cell::I64(raw.parse()?),
                // Rust's own float parsing is exact; the text must be a JSON
                // number or null.
                ColumnKind::F64 if raw == "null" => Cell::Null,
                ColumnKind::F64 => {
                    assert!(
                        serde_json::from_str::<serde_json::Number>(raw).is_ok(),
                        "{raw}"
                    );
                    Cell::F64(raw.parse()?)
                }
                ColumnKind::Tags => Cell::Tags(serde_json::from_str(raw)?),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A JSON object with its keys in file order.
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<De: serde::Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(OrderedObject(fields))
            }
        }
        d.deserialize_map(V)
    }
}

fn tags_from_text(text: &str) -> Result<Cell, serde_json::Error> {
    if text.is_empty() {
        Ok(Cell::Tags(BTreeMap::new()))
    } else {
        serde_json::from_str(text).map(Cell::Tags)
    }
}

/// Reads a file written by `CsvSink<D>` with the csv crate.
fn read_csv<D: FileRecord>(path: &Path) -> Result<Vec<Vec<Cell>>, Box<dyn std::error::Error>> {
    let mut reader = csv::Reader::from_path(path)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    assert_eq!(header, D::column_names().collect::<Vec<_>>());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        assert_eq!(record.len(), D::COLUMNS.len());
        let mut row = Vec::new();
        for (col, field) in D::COLUMNS.iter().zip(record.iter()) {
            row.push(match col.kind {
                ColumnKind::Str | ColumnKind::LossyUtf8 => s(field),
                ColumnKind::OptStr if field.is_empty() => Cell::Null,
                ColumnKind::OptStr => s(field),
                ColumnKind::U64 => Cell::U64(field.parse()?),
                ColumnKind::OptU64 if field.is_empty() => Cell::Null,
                ColumnKind::OptU64 => Cell::U64(field.parse()?),
                ColumnKind::I64 => Cell::I64(field.parse()?),
                ColumnKind::F64 => Cell::F64(field.parse()?),
                ColumnKind::Tags => tags_from_text(field)?,
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Reads a file written by `ParquetSink<D>` with parquet's Arrow reader.
fn read_parquet<D: FileRecord>(path: &Path) -> Result<Vec<Vec<Cell>>, Box<dyn std::error::Error>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let schema = builder.schema().clone();
    assert_eq!(schema.fields().len(), D::COLUMNS.len());
    for (field, col) in schema.fields().iter().zip(D::COLUMNS) {
        let (ty, nullable) = col.kind.arrow_type();
        assert_eq!(
            (
                field.name().as_str(),
                field.data_type(),
                field.is_nullable()
            ),
            (col.name, &ty, nullable)
        );
    }
    let mut rows = Vec::new();
    for batch in builder.build()? {
        let batch = batch?;
        for i in 0..batch.num_rows() {
            let mut row = Vec::new();
            for (col, array) in D::COLUMNS.iter().zip(batch.columns()) {
                row.push(match array.data_type() {
                    DataType::Utf8 => {
                        let a = array
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .ok_or("not Utf8")?;
                        if a.is_null(i) {
                            Cell::Null
                        } else if col.kind == ColumnKind::Tags {
                            tags_from_text(a.value(i))?
                        } else {
                            s(a.value(i))
                        }
                    }
                    DataType::UInt64 => {
                        let a = array
                            .as_any()
                            .downcast_ref::<UInt64Array>()
                            .ok_or("not UInt64")?;
                        if a.is_null(i) {
                            Cell::Null
                        } else {
                            Cell::U64(a.value(i))
                        }
                    }
                    DataType::Int64 => Cell::I64(
                        array
                            .as_any()
                            .downcast_ref::<Int64Array>()
                            .ok_or("not Int64")?
                            .value(i),
                    ),
                    DataType::Float64 => Cell::F64(
                        array
                            .as_any()
                            .downcast_ref::<Float64Array>()
                            .ok_or("not Float64")?
                            .value(i),
                    ),
                    other => return Err(format!("unexpected type {other}").into()),
                });
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------- harness

fn read_back<D: FileRecord>(
    format: Format,
    path: &Path,
) -> Result<Vec<Vec<Cell>>, Box<dyn std::error::Error>> {
    match format {
        Format::Ndjson => read_ndjson::<D>(path),
        Format::Csv => read_csv::<D>(path),
        Format::Parquet => read_parquet::<D>(path),
    }
}

/// What `format` can represent of `cell`: NDJSON has no non-finite numbers.
fn as_written(format: Format, cell: Cell) -> Cell {
    match (format, cell) {
        (Format::Ndjson, Cell::F64(v)) if !v.is_finite() => Cell::Null,
        (_, c) => c,
    }
}

/// Writes `records` in every format (in two batches, through `open_sink`)
/// and checks that every field reads back.
fn roundtrip<D: Expected>(name: &str, records: &[D]) -> TestResult {
    let dir = tempfile::tempdir()?;
    for format in Format::ALL {
        let path = dir
            .path()
            .join("nested")
            .join(format!("{name}.{}", format.extension()));
        let mut sink = open_sink::<D>(format, &path)?;
        let (a, b) = records.split_at(records.len() / 2);
        sink.write(a)?;
        sink.write(&[])?;
        sink.write(b)?;
        sink.close()?;
        let got = read_back::<D>(format, &path)?;
        let want: Vec<Vec<Cell>> = records
            .iter()
            .map(|r| {
                r.expected()
                    .into_iter()
                    .map(|c| as_written(format, c))
                    .collect()
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{format} {name}: row count");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{format} {name}: row {i}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- data

/// Device ids a CSV writer must quote, and other awkward strings.
const AWKWARD: [&str; 8] = [
    "d-00042",
    "dev,with,commas",
    "say \"hi\"",
    "two\nlines",
    "crlf\r\nend",
    "\"",
    "é✓😀 tab\tand \\ backslash",
    " padded ",
];

/// Floats that do not survive a careless formatter.
const FLOATS: [f64; 10] = [
    21.37,
    0.1 + 0.2,
    1.0 / 3.0,
    -0.0,
    5e-324,
    f64::MAX,
    -1.234_567_890_123_456_7e-300,
    1e16,
    123_456_789.0,
    2.5,
];

fn windows() -> Vec<WindowResult<SeriesKey>> {
    let mut out = Vec::new();
    for (i, dev) in AWKWARD.iter().enumerate() {
        let v = FLOATS[i % FLOATS.len()];
        let mut stats = Stats::default();
        stats.add(v);
        stats.add(FLOATS[(i + 3) % FLOATS.len()]);
        out.push(WindowResult {
            key: SeriesKey {
                device: (*dev).into(),
                metric: AWKWARD[(i + 1) % AWKWARD.len()].into(),
            },
            start: 1_700_000_000_000 + 10_000 * i as u64,
            end: 1_700_000_010_000 + 10_000 * i as u64,
            stats,
            kind: [ResultKind::Final, ResultKind::Update, ResultKind::Partial][i % 3],
        });
    }
    // An empty window: min +inf, max -inf, mean NaN.
    out.push(WindowResult {
        key: SeriesKey {
            device: "d-empty".into(),
            metric: "temp".into(),
        },
        start: 0,
        end: u64::MAX,
        stats: Stats::default(),
        kind: ResultKind::Final,
    });
    out
}

fn alerts() -> Vec<Alert> {
    FLOATS
        .iter()
        .enumerate()
        .map(|(i, &v)| Alert {
            device: AWKWARD[i % AWKWARD.len()].into(),
            metric: "vibration".into(),
            ts: if i == 0 {
                u64::MAX
            } else {
                1_700_000_000_000 + i as u64
            },
            value: v,
            score: -v * 7.0,
            detector: AWKWARD[(i + 2) % AWKWARD.len()].into(),
        })
        .chain([Alert {
            device: "d-nan".into(),
            metric: "temp".into(),
            ts: 0,
            value: f64::NAN,
            score: f64::NEG_INFINITY,
            detector: "zscore".into(),
        }])
        .collect()
}

fn rejects() -> Vec<Reject> {
    let reasons = [
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::MissingField(Field::DeviceId),
        RejectReason::WrongType(Field::Ts),
        RejectReason::NanLiteral,
        RejectReason::NanString,
        RejectReason::NonFinite,
        RejectReason::OutOfRange,
        RejectReason::UnknownMetric,
        RejectReason::BadTimestamp,
        RejectReason::TooLong,
        RejectReason::BadCsv,
        RejectReason::FutureTimestamp,
        RejectReason::UnknownDevice,
    ];
    let raws: [&[u8]; 9] = [
        b"{\"device_id\":\"d-1\",\"ts\":1,\"metric\":\"temp\",\"value\":NaN}",
        b"",
        b"\xff\xfe not utf-8 \xc3\x28 \xe2\x82",
        b"a,b,\"c\"\r\nd",
        b"\xff,\"\n",
        b"{\"value\":\"n/a\"}",
        b"\x00\x01\x1f control",
        "unicode é✓😀".as_bytes(),
        b"trailing \xf0\x9f\x98",
    ];
    reasons
        .iter()
        .enumerate()
        .map(|(i, &reason)| Reject {
            pos: SourcePos {
                source: Arc::from(if i % 2 == 0 {
                    "data/fleet.ndjson"
                } else {
                    "odd,name \"x\".csv"
                }),
                offset: if i == 0 { u64::MAX } else { 97 * i as u64 },
            },
            reason,
            raw: raws[i % raws.len()].to_vec(),
        })
        .collect()
}

fn readings() -> Vec<Reading> {
    vec![
        Reading::new("d-00042", 1_700_000_000_123, "temp", 21.37).with_unit("C"),
        Reading::new("dev,\"q\"\nx", 1_700_000_000_124, "humidity", 0.1 + 0.2),
        Reading::new("d-1", 0, "pressure", 1013.25)
            .with_unit("hPa")
            .with_tag("site", "berlin,mitte")
            .with_tag("fw", "1.2.\"3\"\n"),
        Reading::new("d-2", u64::MAX, "vibration", -0.0).with_tag("k", ""),
        Reading::new("d-3", 7, "temp", 5e-324).with_unit("°C,\"x\""),
    ]
}

// ---------------------------------------------------------------- tests

#[test]
fn windows_roundtrip() -> TestResult {
    roundtrip("windows", &windows())
}

#[test]
fn alerts_roundtrip() -> TestResult {
    roundtrip("alerts", &alerts())
}

#[test]
fn rejects_roundtrip() -> TestResult {
    roundtrip("rejects", &rejects())
}

#[test]
fn readings_roundtrip() -> TestResult {
    roundtrip("readings", &readings())
}

/// A record with an optional integer column, as device outputs have.
#[derive(Clone, Debug)]
struct Seen {
    device: String,
    last_seen: Option<u64>,
    delta: i64,
}

impl FileRecord for Seen {
    const COLUMNS: &'static [Column] = &[
        Column::new("device_id", ColumnKind::Str),
        Column::new("last_seen", ColumnKind::OptU64),
        Column::new("delta", ColumnKind::I64),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> std::io::Result<()> {
        out.string(&self.device)?;
        out.optional_uint(self.last_seen)?;
        out.int(self.delta)
    }
}

impl Expected for Seen {
    fn expected(&self) -> Vec<Cell> {
        vec![
            s(&self.device),
            self.last_seen.map_or(Cell::Null, Cell::U64),
            Cell::I64(self.delta),
        ]
    }
}

#[test]
fn optional_and_signed_integers_roundtrip() -> TestResult {
    let rows: Vec<Seen> = [None, Some(0), Some(u64::MAX), None, Some(1_700_000_000_123)]
        .into_iter()
        .enumerate()
        .map(|(i, last_seen)| Seen {
            device: format!("d-{i}"),
            last_seen,
            delta: [i64::MIN, -1, 0, 1, i64::MAX][i],
        })
        .collect();
    roundtrip("seen", &rows)
}

#[test]
fn empty_sinks_roundtrip() -> TestResult {
    roundtrip::<WindowResult<SeriesKey>>("windows", &[])?;
    roundtrip::<Alert>("alerts", &[])?;
    roundtrip::<Reject>("rejects", &[])?;
    roundtrip::<Reading>("readings", &[])
}

#[test]
fn empty_csv_is_header_only_and_empty_ndjson_is_empty() -> TestResult {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("w.csv");
    let mut sink = CsvSink::<WindowResult<SeriesKey>>::create(&csv)?;
    sink.close()?;
    assert_eq!(
        std::fs::read_to_string(&csv)?,
        "device_id,metric,window_start_ms,window_end_ms,count,min,max,mean,sum,kind\n"
    );
    let ndjson = dir.path().join("r.ndjson");
    let mut sink = NdjsonSink::<Reject>::create(&ndjson)?;
    sink.close()?;
    assert_eq!(std::fs::read(&ndjson)?, b"");
    Ok(())
}

#[test]
fn empty_parquet_has_schema_and_no_rows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.parquet");
    let mut sink = ParquetSink::<Alert>::create(&path)?;
    sink.close()?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?;
    assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
    let names: Vec<&str> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        ["device_id", "metric", "ts", "value", "score", "detector"]
    );
    assert_eq!(
        builder
            .build()?
            .map(|b| b.map(|b| b.num_rows()))
            .sum::<Result<usize, _>>()?,
        0
    );
    Ok(())
}

#[test]
fn csv_matches_the_reference_layout() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("w.csv");
    let mut stats = Stats::default();
    stats.add(21.0);
    stats.add(22.5);
    let mut sink = CsvSink::<WindowResult<SeriesKey>>::create(&path)?;
    sink.write(&[WindowResult {
        key: SeriesKey {
            device: "d-00042".into(),
            metric: "temp".into(),
        },
        start: 1_700_000_000_000,
        end: 1_700_000_010_000,
        stats,
        kind: ResultKind::Final,
    }])?;
    sink.close()?;
    // py_fleet.py: f"{d},{m},{ws},{we},{c},{mn!r},{mx!r},{(s / c)!r}", then
    // sum and kind.
    assert_eq!(
        std::fs::read_to_string(&path)?,
        "device_id,metric,window_start_ms,window_end_ms,count,min,max,mean,sum,kind\n\
         d-00042,temp,1700000000000,1700000010000,2,21.0,22.5,21.75,43.5,final\n"
    );
    Ok(())
}

#[test]
fn csv_quotes_strings_and_raw_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("r.csv");
    let mut sink = CsvSink::<Reject>::create(&path)?;
    sink.write(&[Reject {
        pos: SourcePos {
            source: Arc::from("a,b"),
            offset: 3,
        },
        reason: RejectReason::WrongType(Field::Value),
        raw: b"x\xff,\"y\"\r\nz".to_vec(),
    }])?;
    sink.close()?;
    assert_eq!(
        std::fs::read_to_string(&path)?,
        "source,offset,reason,field,raw\n\"a,b\",3,wrong_type,value,\"x\u{FFFD},\"\"y\"\"\r\nz\"\n"
    );
    Ok(())
}

#[test]
fn ndjson_writes_non_finite_as_null_and_tags_as_object() -> TestResult {
    let mut sink = NdjsonSink::<Reading, Vec<u8>>::from_writer(Vec::new(), "-");
    sink.write(&[
        Reading::new("d", 1, "temp", f64::NAN),
        Reading::new("d", 2, "temp", 1.5)
            .with_unit("C")
            .with_tag("site", "a\"b"),
    ])?;
    sink.close()?;
    assert_eq!(
        String::from_utf8(sink.get_ref().clone())?,
        "{\"device_id\":\"d\",\"ts\":1,\"metric\":\"temp\",\"value\":null,\"unit\":null,\"tags\":{}}\n\
         {\"device_id\":\"d\",\"ts\":2,\"metric\":\"temp\",\"value\":1.5,\"unit\":\"C\",\"tags\":{\"site\":\"a\\\"b\"}}\n"
    );
    Ok(())
}

#[test]
fn parquet_splits_large_outputs_into_batches() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("many.parquet");
    let n = 2 * BATCH_ROWS + 123;
    let records: Vec<Alert> = (0..n)
        .map(|i| Alert {
            device: format!("d-{:05}", i % 10_000).into(),
            metric: "temp".into(),
            ts: i as u64,
            value: i as f64 * 0.5,
            score: 6.5,
            detector: "zscore".into(),
        })
        .collect();
    let mut sink = ParquetSink::<Alert>::create(&path)?;
    for chunk in records.chunks(10_000) {
        sink.write(chunk)?;
    }
    sink.close()?;
    let rows = read_parquet::<Alert>(&path)?;
    assert_eq!(rows.len(), n);
    for (row, record) in rows.iter().zip(&records) {
        assert_eq!(*row, record.expected());
    }
    Ok(())
}

/// A path below a regular file cannot be created.
fn uncreatable(dir: &Path) -> Result<(PathBuf, PathBuf), std::io::Error> {
    let file = dir.join("a-file");
    std::fs::write(&file, b"")?;
    Ok((file.join("out.csv"), file))
}

#[test]
fn uncreatable_path_is_an_io_error_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (path, blocker) = uncreatable(dir.path())?;
    let errors = [
        CsvSink::<Alert>::create(&path).err(),
        NdjsonSink::<Alert>::create(&path).err(),
        ParquetSink::<Alert>::create(&path).err(),
    ];
    for err in errors {
        match err {
            Some(Error::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected an Io error, got {other:?}"),
        }
    }
    // open_sink fails creating the parent directory and names it.
    for format in Format::ALL {
        match open_sink::<Reject>(format, &path) {
            Err(err @ Error::Io { .. }) => {
                assert!(
                    err.to_string().starts_with(&*blocker.to_string_lossy()),
                    "{err}"
                );
                assert!(err.is_retryable());
            }
            Err(other) => panic!("expected an Io error, got {other:?}"),
            Ok(_) => panic!("{} opened below a file", path.display()),
        }
    }
    Ok(())
}

#[test]
fn write_after_close_is_a_sink_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    for format in Format::ALL {
        let path = dir.path().join(format!("a.{format}"));
        let mut sink = open_sink::<Alert>(format, &path)?;
        sink.close()?;
        assert!(
            matches!(sink.write(&alerts()), Err(Error::Sink { .. })),
            "{format}"
        );
    }
    Ok(())
}

/// A record whose `write_fields` disagrees with its columns.
#[derive(Clone)]
struct Broken;

impl FileRecord for Broken {
    const COLUMNS: &'static [Column] = &[
        Column::new("a", ColumnKind::Str),
        Column::new("b", ColumnKind::U64),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> std::io::Result<()> {
        out.string("x")?;
        out.float(1.0)
    }
}

#[test]
fn a_record_that_breaks_its_columns_is_an_error_not_a_panic() -> TestResult {
    let dir = tempfile::tempdir()?;
    for format in Format::ALL {
        let path = dir.path().join(format!("broken.{format}"));
        let mut sink = open_sink::<Broken>(format, &path)?;
        match sink.write(&[Broken]) {
            Err(Error::Sink { message, .. }) => assert!(message.contains("\"b\""), "{message}"),
            other => panic!("{format}: expected a Sink error, got {other:?}"),
        }
        // The output may hold part of a row: the sink refuses to go on.
        assert!(matches!(sink.write(&[Broken]), Err(Error::Sink { .. })));
    }
    Ok(())
}

#[test]
fn format_names() -> TestResult {
    for format in Format::ALL {
        assert_eq!(format.to_string().parse::<Format>()?, format);
        assert_eq!(format.extension(), format.to_string());
    }
    assert_eq!("CSV".parse::<Format>()?, Format::Csv);
    assert!(matches!("json".parse::<Format>(), Err(Error::Config(_))));
    Ok(())
}
