//! The errors of iotflow-enrich.

use iotflow_core::Fault;
use iotflow_core::state::SnapshotError;

/// Why an enrichment could not be built, whose fault it is
/// ([`EnrichError::fault`]) and whether trying again may help
/// ([`EnrichError::is_retryable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrichError {
    /// The checkpointed registry history could not be restored (corrupt,
    /// or written by an incompatible version): the state store's fault;
    /// retrying the same checkpoint does not help.
    #[error("enrichment state does not restore: {0}")]
    Snapshot(#[from] SnapshotError),
}

impl EnrichError {
    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            EnrichError::Snapshot(_) => Fault::External,
        }
    }

    /// Whether trying the same thing again may succeed: never, a snapshot
    /// that does not decode stays so.
    pub fn is_retryable(&self) -> bool {
        false
    }
}
