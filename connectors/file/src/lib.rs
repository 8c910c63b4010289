//! File connector: NDJSON/CSV source; NDJSON, CSV and Parquet sinks.
#![deny(missing_docs)]
pub mod sink;
