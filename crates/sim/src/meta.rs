use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::MalformedKind;

/// Line counts of a generated file, as `gen_fleet.py` writes them to
/// `FILE.meta.json` (same keys; `malformed_by_kind` is keyed by
/// [`MalformedKind::name`] and lists all eight kinds).
///
/// `valid` counts spikes too: they are physically valid readings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetMeta {
    /// Lines generated.
    pub lines: u64,
    /// The seed.
    pub seed: u64,
    /// Malformed lines among them.
    pub malformed: u64,
    /// Spike readings among them.
    pub spikes: u64,
    /// `lines - malformed`.
    pub valid: u64,
    /// Malformed lines per kind name.
    pub malformed_by_kind: BTreeMap<String, u64>,
}

impl FleetMeta {
    pub(crate) fn new(lines: u64, seed: u64, spikes: u64, by_kind: &[u64; 8]) -> Self {
        let malformed = by_kind.iter().sum::<u64>();
        FleetMeta {
            lines,
            seed,
            malformed,
            spikes,
            valid: lines - malformed,
            malformed_by_kind: MalformedKind::ALL
                .iter()
                .map(|k| (k.name().to_owned(), by_kind[k.index()]))
                .collect(),
        }
    }

    /// The malformed count of one kind.
    pub fn malformed_of(&self, kind: MalformedKind) -> u64 {
        self.malformed_by_kind
            .get(kind.name())
            .copied()
            .unwrap_or(0)
    }
}
