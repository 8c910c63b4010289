//! Errors of iotflow-anomaly.

use iotflow_core::state::SnapshotError;

/// Errors of iotflow-anomaly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A detector's parameters are invalid: the user's to fix; retrying
    /// does not help.
    #[error("invalid detector configuration: {0}")]
    Config(String),
    /// The checkpoint being restored has no readable state for the
    /// detector (truncated, corrupt, or of another state type).
    #[error("restoring detector state: {0}")]
    Restore(#[from] SnapshotError),
}
