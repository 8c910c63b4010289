//! The errors of iotflow-fleet.

use iotflow_core::Fault;
use iotflow_core::state::SnapshotError;

/// What went wrong, whose fault it is ([`FleetError::fault`]) and whether
/// trying again may help ([`FleetError::is_retryable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A [`PresenceConfig`](crate::PresenceConfig) is invalid: fix it;
    /// retrying never helps.
    #[error("invalid presence configuration: {0}")]
    Config(String),
    /// The checkpointed presence state could not be restored (corrupt, or
    /// written by an incompatible version): the state store's fault;
    /// retrying the same checkpoint does not help.
    #[error("presence state does not restore: {0}")]
    Snapshot(#[from] SnapshotError),
}

impl FleetError {
    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            FleetError::Config(_) => Fault::User,
            FleetError::Snapshot(_) => Fault::External,
        }
    }

    /// Whether trying the same thing again may succeed: never.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults() {
        let config = FleetError::Config("x".into());
        assert_eq!(config.fault(), Fault::User);
        assert!(!config.is_retryable());
        let snap = FleetError::from(SnapshotError::Checksum);
        assert_eq!(snap.fault(), Fault::External);
        assert!(snap.to_string().contains("checksum"), "{snap}");
    }
}
