//! Errors of iotflow-ml.

/// Errors of iotflow-ml.
///
/// Loading and configuration errors are the user's to fix (retrying does not
/// help); [`Error::Run`] is the model failing on a batch, which the
/// operators turn into rejects rather than returning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file could not be read: an outside problem (missing file,
    /// permissions); retrying may help once it is fixed.
    #[error("reading model {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model tract can load, or it cannot be
    /// optimized (an unsupported operator, inconsistent shapes): the model's
    /// fault; retrying does not help.
    #[error("loading ONNX model: {0}")]
    Load(String),
    /// The model's inputs or outputs do not match what the pipeline feeds
    /// it (feature count, rank, element type): the user's to fix.
    #[error("model shape: {0}")]
    Shape(String),
    /// A configuration value is invalid: the user's to fix.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The checkpoint being restored has no readable state for the
    /// operator (truncated, corrupt, or of another state type).
    #[error("restoring operator state: {0}")]
    Restore(#[from] iotflow_core::state::SnapshotError),
    /// The model failed on a batch (a bug in the model or in tract). The
    /// operators route the batch's records to their rejects with this
    /// message; retrying the same batch fails the same way.
    #[error("running model: {0}")]
    Run(String),
}

/// Results of iotflow-ml.
pub type Result<T, E = Error> = std::result::Result<T, E>;
