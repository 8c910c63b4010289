//! The errors of iotflow-alert.

use std::path::PathBuf;

use iotflow_core::Fault;
use iotflow_core::state::SnapshotError;

/// What went wrong in alerting, whose fault it is ([`AlertError::fault`]),
/// and whether trying again may help ([`AlertError::is_retryable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A policy or sink configuration is invalid: fix it; retrying never
    /// helps.
    #[error("invalid alert configuration: {0}")]
    Config(String),
    /// The checkpointed lifecycle state could not be restored (corrupt, or
    /// written by an incompatible version): the state store's fault;
    /// retrying the same checkpoint does not help.
    #[error("alert state does not restore: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The webhook answered 4xx (other than 408 and 429): it refuses this
    /// payload or our credentials. The alert goes to the dead letters;
    /// retrying the same request does not help.
    #[error("webhook refused the alert: HTTP {status}: {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The webhook stayed unreachable or failing (5xx, 408, 429, timeouts,
    /// connection errors) through every retry: its fault; a later retry
    /// may succeed.
    #[error("webhook unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Writing an alert file failed (disk full, permissions…); a retry may
    /// help once the cause is fixed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An alert did not encode as JSON: a bug in iotflow.
    #[error("alert does not encode: {0}")]
    Encode(String),
    /// The HTTP client or its I/O runtime could not start (no sockets, no
    /// TLS roots…): the environment's fault; a retry may help.
    #[error("cannot start the webhook client: {0}")]
    Client(String),
}

impl AlertError {
    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            AlertError::Config(_) | AlertError::Rejected { .. } => Fault::User,
            AlertError::Snapshot(_)
            | AlertError::Unavailable { .. }
            | AlertError::Io { .. }
            | AlertError::Client(_) => Fault::External,
            AlertError::Encode(_) => Fault::Internal,
        }
    }

    /// Whether trying the same thing again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AlertError::Unavailable { .. } | AlertError::Io { .. } | AlertError::Client(_)
        )
    }

    /// The error as a core sink error, for the [`Sink`](iotflow_core::sink::Sink)
    /// trait.
    pub(crate) fn into_sink(self, sink: &str) -> iotflow_core::Error {
        match self {
            AlertError::Io { path, source } => iotflow_core::Error::io(path, source),
            other => iotflow_core::Error::Sink {
                sink: sink.to_owned(),
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_and_retries() {
        let rejected = AlertError::Rejected {
            status: 400,
            body: "bad".into(),
        };
        assert_eq!(rejected.fault(), Fault::User);
        assert!(!rejected.is_retryable());
        let down = AlertError::Unavailable {
            attempts: 3,
            last: "HTTP 503".into(),
        };
        assert_eq!(down.fault(), Fault::External);
        assert!(down.is_retryable());
        assert!(!AlertError::Config("x".into()).is_retryable());
        assert_eq!(AlertError::Encode("x".into()).fault(), Fault::Internal);
    }
}
