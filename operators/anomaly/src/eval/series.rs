//! Reading a labelled series from CSV, never panicking on bad input.

use super::timestamp::parse_timestamp;
use crate::Error;

/// One series read from a CSV file, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Timestamps, ms since the Unix epoch.
    pub ts: Vec<i64>,
    /// Values.
    pub values: Vec<f64>,
    /// Labels (`None`: the file has no label column).
    pub labels: Option<Vec<bool>>,
    /// The timestamp and value fields as written, for echoing them back.
    pub raw: Vec<(String, String)>,
}

/// Why a CSV file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsvError {
    /// A row is malformed.
    #[error("line {line}: {message}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file has no data rows.
    #[error("no data rows")]
    Empty,
}

impl From<CsvError> for Error {
    fn from(e: CsvError) -> Self {
        Error::Config(e.to_string())
    }
}

/// Columns of the file.
#[derive(Debug, Clone, Copy)]
struct Columns {
    ts: usize,
    value: usize,
    label: Option<usize>,
}

fn fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .unwrap_or(f)
                .trim()
        })
        .collect()
}

fn header_columns(names: &[&str]) -> Result<Columns, String> {
    let find = |candidates: &[&str]| {
        names
            .iter()
            .position(|n| candidates.iter().any(|c| n.eq_ignore_ascii_case(c)))
    };
    let ts = find(&["timestamp", "ts", "time", "datetime", "date", "t"]);
    let value = find(&["value", "val", "reading", "y", "x"]);
    let label = find(&["label", "is_anomaly", "anomaly", "y_true", "labels"]);
    match (ts, value) {
        (Some(ts), Some(value)) => Ok(Columns { ts, value, label }),
        // Unknown names: positional, as without a header.
        _ if names.len() >= 2 => Ok(Columns {
            ts: 0,
            value: 1,
            label: (names.len() >= 3).then_some(2),
        }),
        _ => Err(format!(
            "header {:?} has fewer than two columns (timestamp, value[, label])",
            names.join(",")
        )),
    }
}

fn parse_label(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "0" | "0.0" | "false" | "f" | "no" => Some(false),
        "1" | "1.0" | "true" | "t" | "yes" => Some(true),
        _ => None,
    }
}

/// Reads `timestamp,value[,label]` rows.
///
/// * A first line whose first field is not a timestamp is a header; its
///   column names (case-insensitive) pick the columns: `timestamp`/`ts`/
///   `time`/`datetime`/`date`, `value`/`val`/`reading`, and
///   `label`/`is_anomaly`/`anomaly`. Unknown names, or no header: columns
///   in that order.
/// * Timestamps: integer epoch seconds, or ms from 10¹¹ on; fractional
///   epoch seconds; ISO-8601 (`2024-05-01T12:00:00Z`, fractions and
///   `±HH:MM` offsets allowed); `YYYY-MM-DD HH:MM:SS` (UTC).
/// * Values: finite numbers. Labels: `0`/`1` (or `true`/`false`).
/// * Blank lines are skipped; fields may be quoted (no commas inside).
///
/// Any other content is an error naming its 1-based line.
pub fn read_series(text: &str) -> Result<Series, CsvError> {
    let mut out = Series::default();
    let mut cols: Option<Columns> = None;
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |message: String| CsvError::Row {
            line: line_no,
            message,
        };
        let line = line.trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let f = fields(line);
        let c = match cols {
            Some(c) => c,
            None => {
                let first_is_ts = parse_timestamp(f[0]).is_some();
                if !first_is_ts {
                    cols = Some(header_columns(&f).map_err(err)?);
                    continue;
                }
                let c = Columns {
                    ts: 0,
                    value: 1,
                    label: (f.len() >= 3).then_some(2),
                };
                cols = Some(c);
                c
            }
        };
        let need = c.ts.max(c.value).max(c.label.unwrap_or(0)) + 1;
        if f.len() < need {
            return Err(err(format!("expected {need} fields, found {}", f.len())));
        }
        let ts = parse_timestamp(f[c.ts]).ok_or_else(|| {
            err(format!(
                "timestamp {:?} is not epoch s/ms, ISO-8601 or YYYY-MM-DD HH:MM:SS",
                f[c.ts]
            ))
        })?;
        let value: f64 = f[c.value]
            .parse()
            .map_err(|_| err(format!("value {:?} is not a number", f[c.value])))?;
        if !value.is_finite() {
            return Err(err(format!("value {:?} is not finite", f[c.value])));
        }
        if let Some(l) = c.label {
            labels.push(
                parse_label(f[l]).ok_or_else(|| err(format!("label {:?} is not 0 or 1", f[l])))?,
            );
        }
        out.ts.push(ts);
        out.values.push(value);
        out.raw.push((f[c.ts].to_owned(), f[c.value].to_owned()));
    }
    if out.values.is_empty() {
        return Err(CsvError::Empty);
    }
    if cols.is_some_and(|c| c.label.is_some()) {
        out.labels = Some(labels);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_no_header_and_missing_labels() {
        let a =
            read_series("timestamp,value,label\n1700000000,1.5,0\n1700000001,2,1\n").expect("ok");
        assert_eq!(a.ts, vec![1_700_000_000_000, 1_700_000_001_000]);
        assert_eq!(a.values, vec![1.5, 2.0]);
        assert_eq!(a.labels, Some(vec![false, true]));
        let b = read_series("1700000000,1.5,0\n\n1700000001,2,1\n").expect("ok");
        assert_eq!(
            (b.ts, b.values, b.labels),
            (a.ts.clone(), a.values.clone(), a.labels)
        );
        let c = read_series("time,value\n2023-11-14 22:13:20,3\n").expect("ok");
        assert_eq!(c.labels, None);
        assert_eq!(c.ts, vec![1_700_000_000_000]);
        // Columns by name, in any order, quoted.
        let d = read_series(
            "\"is_anomaly\",\"value\",\"timestamp\"\n1,\"4.5\",2023-11-14T22:13:20Z\r\n",
        )
        .expect("ok");
        assert_eq!(
            (d.ts[0], d.values[0], d.labels),
            (1_700_000_000_000, 4.5, Some(vec![true]))
        );
        assert_eq!(
            d.raw[0],
            ("2023-11-14T22:13:20Z".to_owned(), "4.5".to_owned())
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let cases = [
            ("timestamp,value\n1,2\nnope,3\n", 3, "timestamp"),
            ("1,2\n2,abc\n", 2, "value"),
            ("1,2\n2,NaN\n", 2, "finite"),
            ("1,2,0\n2,3\n", 2, "expected 3 fields"),
            ("1,2,0\n2,3,maybe\n", 2, "label"),
            ("x\n", 1, "fewer than two"),
        ];
        for (text, line, what) in cases {
            match read_series(text) {
                Err(CsvError::Row { line: l, message }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(message.contains(what), "{message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert_eq!(read_series(""), Err(CsvError::Empty));
        assert_eq!(read_series("timestamp,value\n"), Err(CsvError::Empty));
    }
}
