use std::path::PathBuf;

/// Errors of iotflow-sim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating or writing one of the output files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A [`FleetConfig`](crate::FleetConfig) value is invalid.
    #[error("invalid fleet configuration: {0}")]
    Config(String),
    /// The metadata could not be serialized (a bug: it is plain data).
    #[error("cannot serialize fleet metadata: {0}")]
    Meta(#[from] serde_json::Error),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
