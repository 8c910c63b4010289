//! The counts of a CEP operator.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a CEP operator did with its input, per worker; summed over workers
/// it accounts for every event: `received = events + late + overflow +
/// buffered at the end` (the last term is 0 once the input ended).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CepTally {
    /// Events the operator received.
    pub received: u64,
    /// Events applied to the matchers, in event-time order.
    pub events: u64,
    /// Events behind the frontier when they arrived (late output).
    pub late: u64,
    /// Events refused because their key's buffer was full (overflow output).
    pub overflow: u64,
    /// Matches emitted.
    pub matches: u64,
    /// Partial matches that `within` pruned (timeout output).
    pub timeouts: u64,
    /// Partial matches discarded, by reason: `partial_cap_drop_oldest`,
    /// `partial_cap_reject_new` (the per-key cap), `unfinished_at_end`
    /// (no `within`, and the input ended).
    pub discarded: BTreeMap<String, u64>,
}

impl CepTally {
    /// Adds another tally into this one.
    pub fn merge(&mut self, o: &CepTally) {
        self.received += o.received;
        self.events += o.events;
        self.late += o.late;
        self.overflow += o.overflow;
        self.matches += o.matches;
        self.timeouts += o.timeouts;
        for (k, v) in &o.discarded {
            *self.discarded.entry(k.clone()).or_default() += v;
        }
    }

    /// Partial matches discarded, all reasons.
    pub fn discarded_total(&self) -> u64 {
        self.discarded.values().sum()
    }
}
