//! Errors of the MQTT connector.

use std::path::PathBuf;

/// What went wrong talking to an MQTT broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// A configuration value is invalid (the user's fault; retrying does not help).
    #[error("invalid MQTT configuration: {0}")]
    Config(String),
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {message}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The broker refused the connection or a subscription for a reason a
    /// retry cannot fix (bad credentials, missing client certificate,
    /// unknown CA, a topic filter it rejects, …).
    #[error("broker {url}: {message}")]
    Refused {
        /// The broker.
        url: String,
        /// Why.
        message: String,
    },
    /// The connection failed or dropped; the connector retries these itself
    /// and reports them only when it gives up (a retry may help).
    #[error("broker {url}: {message}")]
    Connection {
        /// The broker.
        url: String,
        /// What failed.
        message: String,
    },
    /// A record could not be turned into an MQTT message (bad input).
    #[error("record {index}: {message}")]
    Record {
        /// Index of the record in its batch.
        index: usize,
        /// Why.
        message: String,
    },
    /// A background task of the connector stopped unexpectedly (a bug).
    #[error("internal: {0}")]
    Internal(String),
}

impl MqttError {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MqttError::Connection { .. })
    }

    /// Converts to the pipeline's error type for a source named `source`.
    pub(crate) fn into_source_error(self, source: &str) -> iotflow_core::Error {
        match self {
            MqttError::Config(m) => iotflow_core::Error::Config(m),
            MqttError::Tls { path, message } => iotflow_core::Error::Config(format!(
                "source {source}: {}: {message}",
                path.display()
            )),
            // iotflow-core has no source variant yet: an I/O error names the
            // broker and keeps the fault external (retryable).
            MqttError::Refused { .. } => {
                iotflow_core::Error::Config(format!("source {source}: {self}"))
            }
            MqttError::Connection { ref url, .. } => iotflow_core::Error::io(
                url.clone(),
                std::io::Error::other(format!("source {source}: {self}")),
            ),
            MqttError::Record { .. } | MqttError::Internal(_) => {
                iotflow_core::Error::io(source.to_owned(), std::io::Error::other(self.to_string()))
            }
        }
    }

    /// Converts to the pipeline's error type for a sink named `sink`.
    pub(crate) fn into_sink_error(self, sink: &str) -> iotflow_core::Error {
        match self {
            MqttError::Config(m) => iotflow_core::Error::Config(m),
            MqttError::Tls { path, message } => {
                iotflow_core::Error::Config(format!("sink {sink}: {}: {message}", path.display()))
            }
            other => iotflow_core::Error::Sink {
                sink: sink.to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// Result alias for the MQTT connector.
pub type Result<T, E = MqttError> = std::result::Result<T, E>;
