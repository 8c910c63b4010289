//! The output formats a file sink can write.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use iotflow_core::Error;
use serde::{Deserialize, Serialize};

/// A file format of a sink. Parses from and displays as `ndjson`, `csv` or
/// `parquet`.
///
/// ```
/// use iotflow_file::sink::Format;
/// let f: Format = "parquet".parse()?;
/// assert_eq!(f, Format::Parquet);
/// assert_eq!(f.to_string(), "parquet");
/// assert_eq!(Format::Ndjson.extension(), "ndjson");
/// assert!("xml".parse::<Format>().is_err());
/// # Ok::<(), iotflow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Newline-delimited JSON, one object per line.
    Ndjson,
    /// CSV with a header row (RFC 4180 quoting).
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Ndjson, Format::Csv, Format::Parquet];

    /// The format's name, as parsed and displayed.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        // The names are the extensions.
        self.name()
    }

    /// The format a path's extension suggests (`ndjson`, `jsonl`, `csv`,
    /// `parquet`, `pq`; any case), if any.
    ///
    /// ```
    /// use iotflow_file::sink::Format;
    /// use std::path::Path;
    /// assert_eq!(Format::from_path(Path::new("out/w.CSV")), Some(Format::Csv));
    /// assert_eq!(Format::from_path(Path::new("late.jsonl")), Some(Format::Ndjson));
    /// assert_eq!(Format::from_path(Path::new("README")), None);
    /// ```
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;

    /// Parses `ndjson`, `csv` or `parquet` (any case); anything else is an
    /// [`Error::Config`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown file format {s:?}: expected ndjson, csv or parquet"
                ))
            })
    }
}
