//! File connector: NDJSON/CSV source; NDJSON, CSV and Parquet sinks.
