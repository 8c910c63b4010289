//! The counts of a presence operator.

use serde::{Deserialize, Serialize};

/// What a presence operator did, per worker. Summed over workers it
/// accounts for every reading: `readings = applied + late` once the input
/// has ended (before, readings waiting for the watermark are in neither).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceTally {
    /// Readings received.
    pub readings: u64,
    /// Readings applied in event-time order.
    pub applied: u64,
    /// Readings whose event time was behind their batch's time (late
    /// output).
    pub late: u64,
    /// Registry updates received.
    pub updates: u64,
    /// `online` events.
    pub online: u64,
    /// `offline` events.
    pub offline: u64,
    /// Records on the `last_seen` output.
    pub last_seen: u64,
}

impl PresenceTally {
    /// Adds another tally into this one.
    pub fn merge(&mut self, o: &PresenceTally) {
        self.readings += o.readings;
        self.applied += o.applied;
        self.late += o.late;
        self.updates += o.updates;
        self.online += o.online;
        self.offline += o.offline;
        self.last_seen += o.last_seen;
    }

    /// Checks `readings = applied + late` (after the end of input).
    pub fn check_conservation(&self) -> Result<(), String> {
        if self.readings != self.applied + self.late {
            return Err(format!(
                "readings {} != applied {} + late {}",
                self.readings, self.applied, self.late
            ));
        }
        Ok(())
    }
}
