use std::path::PathBuf;

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The user's input or configuration; fix it and run again.
    User,
    /// An external system (disk, network, server); a retry may help.
    External,
    /// A bug in iotflow.
    Internal,
}

/// Errors of iotflow-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A sink could not write.
    #[error("sink {sink}: {message}")]
    Sink {
        /// Sink name.
        sink: String,
        /// What went wrong.
        message: String,
    },
    /// The other end of a bridge channel went away (a worker or I/O task died).
    #[error("bridge closed: {0}")]
    Disconnected(&'static str),
}

impl Error {
    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Io { .. } | Error::Sink { .. } => Fault::External,
            Error::Config(_) => Fault::User,
            Error::Disconnected(_) => Fault::Internal,
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        self.fault() == Fault::External
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for iotflow-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
