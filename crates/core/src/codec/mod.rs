//! Codecs: bytes of one record → a [`Reading`] or the reason it is not one.
//!
//! A decoder sees one record at a time (a line for NDJSON and CSV) and never
//! panics, whatever the bytes: anything it cannot turn into a reading comes
//! back as a [`RejectReason`]. Physical plausibility (ranges, known metrics)
//! is not a codec's business; see [`crate::validate`].

mod csv;
mod json;

pub use self::csv::CsvDecoder;
pub use self::json::JsonDecoder;

use iotflow_types::{Reading, RejectReason};

/// Turns one record's bytes into a reading.
pub trait Decoder: Send + 'static {
    /// Decodes one record (without its line terminator).
    fn decode(&mut self, record: &[u8]) -> Result<Reading, RejectReason>;

    /// Whether `record` is a header line to skip without counting (CSV).
    fn is_header(&mut self, _record: &[u8]) -> bool {
        false
    }
}

/// Supported input formats of line-oriented sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Newline-delimited JSON objects.
    Ndjson,
    /// CSV with a header `device_id,ts,metric,value[,unit]`.
    Csv,
}

impl InputFormat {
    /// A fresh decoder for this format.
    pub fn decoder(self) -> Box<dyn Decoder> {
        match self {
            InputFormat::Ndjson => Box::new(JsonDecoder::new()),
            InputFormat::Csv => Box::new(CsvDecoder::new()),
        }
    }

    /// Guesses the format from a file name (`.csv` → CSV, else NDJSON).
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => InputFormat::Csv,
            _ => InputFormat::Ndjson,
        }
    }
}

impl<D: Decoder + ?Sized> Decoder for Box<D> {
    fn decode(&mut self, record: &[u8]) -> Result<Reading, RejectReason> {
        (**self).decode(record)
    }
    fn is_header(&mut self, record: &[u8]) -> bool {
        (**self).is_header(record)
    }
}

/// Parses a number's text as a finite `f64`, telling non-finite from garbage.
pub(crate) fn parse_value(text: &str) -> Result<f64, RejectReason> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(if is_nan_word(text) {
            RejectReason::NanString
        } else {
            RejectReason::NonFinite
        }),
        Err(_) => Err(RejectReason::WrongType(iotflow_types::Field::Value)),
    }
}

/// `NaN`, `inf`, `Infinity` in any case, with an optional sign.
pub(crate) fn is_nan_word(text: &str) -> bool {
    let t = text.trim().trim_start_matches(['+', '-']);
    t.eq_ignore_ascii_case("nan")
        || t.eq_ignore_ascii_case("inf")
        || t.eq_ignore_ascii_case("infinity")
}
