//! The counts of an enrichment.

use serde::{Deserialize, Serialize};

/// What an enrichment did, per worker. Summed over workers it accounts for
/// every reading: `received = enriched + rejected + passed_through +
/// waiting`, where `waiting` (readings held for the registry) is 0 once the
/// input has ended ([`EnrichTally::check_conservation`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichTally {
    /// Readings received.
    pub received: u64,
    /// Readings emitted with their device's description.
    pub enriched: u64,
    /// Readings of unknown devices, rejected (`unknown_device`).
    pub rejected: u64,
    /// Readings of unknown devices, emitted without a description.
    pub passed_through: u64,
    /// Of `enriched`: readings of a device that was not `Active` then.
    pub inactive: u64,
    /// Readings whose event time was behind the time they were stamped at
    /// (only an upstream operator that re-stamps can cause it): joined as
    /// of their stamp, the earliest time the registry's history still
    /// covers.
    pub late: u64,
    /// Readings that had to wait for the registry's frontier to pass their
    /// event time. Depends on how the two inputs interleave in processing
    /// time (not on the data alone): an operational measure of registry lag.
    pub waited: u64,
    /// Registry updates received.
    pub updates: u64,
    /// Of `updates`: updates stamped later than their `at`, which hold only
    /// from their stamp on.
    pub late_updates: u64,
}

impl EnrichTally {
    /// Adds another tally into this one.
    pub fn merge(&mut self, o: &EnrichTally) {
        self.received += o.received;
        self.enriched += o.enriched;
        self.rejected += o.rejected;
        self.passed_through += o.passed_through;
        self.inactive += o.inactive;
        self.late += o.late;
        self.waited += o.waited;
        self.updates += o.updates;
        self.late_updates += o.late_updates;
    }

    /// Readings of devices the registry did not know: rejected or passed
    /// through.
    pub fn unknown(&self) -> u64 {
        self.rejected + self.passed_through
    }

    /// Checks `received = enriched + rejected + passed_through` (after the
    /// end of input, when no reading waits any more).
    pub fn check_conservation(&self) -> Result<(), String> {
        let out = self.enriched + self.rejected + self.passed_through;
        if self.received != out {
            return Err(format!(
                "received {} != enriched {} + rejected {} + passed through {}",
                self.received, self.enriched, self.rejected, self.passed_through
            ));
        }
        if self.inactive > self.enriched {
            return Err(format!(
                "inactive {} > enriched {}",
                self.inactive, self.enriched
            ));
        }
        Ok(())
    }
}
