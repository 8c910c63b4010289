//! Errors of the Kinesis connector.

/// Errors of iotflow-kinesis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid Kinesis configuration: {0}")]
    Config(String),
    /// A Kinesis API call failed and retrying does not help (or the retries
    /// ran out).
    #[error("Kinesis {op} on stream {stream}: {message}")]
    Api {
        /// The operation (`GetRecords`, `PutRecords`, …).
        op: &'static str,
        /// The stream.
        stream: String,
        /// What the service or the transport said.
        message: String,
    },
    /// A record (data plus partition key) is over Kinesis's 1 MiB limit.
    #[error(
        "Kinesis stream {stream}: record {index} of the batch is {size} bytes with its \
         partition key, over the {limit}-byte limit; nothing of the batch was sent"
    )]
    RecordTooLarge {
        /// The stream.
        stream: String,
        /// Index of the record in the batch given to `write`.
        index: usize,
        /// Its size in bytes (data and partition key).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Records could not be delivered after all retries.
    #[error(
        "Kinesis stream {stream}: {failed} record(s) not delivered after {attempts} attempts \
         (last error: {last_error})"
    )]
    Undelivered {
        /// The stream.
        stream: String,
        /// How many records were given up on.
        failed: usize,
        /// How many attempts were made.
        attempts: u32,
        /// The last error code and message.
        last_error: String,
    },
    /// A bug in this crate (a state that should not occur).
    #[error("internal error in the Kinesis connector: {0}")]
    Internal(String),
    /// The I/O runtime could not be started.
    #[error("could not start the Kinesis I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// This error as a source error of the pipeline (`iotflow_core::Error`).
    pub(crate) fn into_source_error(self, stream: &str) -> iotflow_core::Error {
        match self {
            Error::Config(m) => iotflow_core::Error::Config(m),
            // Core has no source variant: an I/O error on the stream's URL
            // carries the message and counts as an external fault.
            other => iotflow_core::Error::io(
                format!("kinesis://{stream}"),
                std::io::Error::other(other.to_string()),
            ),
        }
    }

    /// This error as a sink error of the pipeline.
    pub(crate) fn into_sink_error(self, stream: &str) -> iotflow_core::Error {
        match self {
            Error::Config(m) => iotflow_core::Error::Config(m),
            other => iotflow_core::Error::Sink {
                sink: format!("kinesis:{stream}"),
                message: other.to_string(),
            },
        }
    }
}
