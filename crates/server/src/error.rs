//! The crate's error: what can stop the server from starting or running.
//!
//! Errors of single requests never end up here: they become JSON error
//! responses (see [`crate::api_error`]).

use std::net::SocketAddr;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not valid (the operator's fault; fix and restart).
    #[error("server configuration: {0}")]
    Config(String),
    /// The listening socket could not be opened (address in use, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Serving failed after start (the listener broke).
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
