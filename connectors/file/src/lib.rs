//! File connector: NDJSON/CSV source; NDJSON, CSV and Parquet sinks.
#![deny(missing_docs)]
pub mod sink;
pub mod source;
pub use source::{FileSource, Split, plan};
