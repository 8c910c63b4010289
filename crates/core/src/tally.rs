//! Counts that prove nothing was lost.
//!
//! Every operator that can drop a record from its main output reports where
//! it went in a [`Tally`]: read lines, valid readings, rejects by reason, late
//! readings, windows and the readings they hold, alerts. Tallies flow as a
//! small timely stream to worker 0, so a cluster of processes reports one
//! total, and [`Tally::check_conservation`] asserts
//! `lines = valid + rejected` and `valid = windowed + late`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Record counts of a pipeline run (or a part of it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Records read (non-blank lines).
    pub lines: u64,
    /// Records that became valid readings.
    pub valid: u64,
    /// Rejected records by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Of `rejected`, valid readings that a later stage refused (enrichment:
    /// `unknown_device`); they are counted in `valid` too.
    #[serde(default)]
    pub rejected_downstream: u64,
    /// Valid readings that arrived after their window closed.
    pub late: u64,
    /// Window results emitted: each window's final result, once.
    pub windows: u64,
    /// Window updates emitted: windows emitted again for readings within
    /// their allowed lateness.
    #[serde(default)]
    pub window_updates: u64,
    /// Partial (early) window results emitted.
    #[serde(default)]
    pub window_partials: u64,
    /// Readings counted into emitted windows.
    pub windowed: u64,
    /// Alerts raised.
    pub alerts: u64,
}

impl Tally {
    /// Total rejects.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Adds another tally into this one.
    pub fn merge(&mut self, o: &Tally) {
        self.lines += o.lines;
        self.valid += o.valid;
        for (k, v) in &o.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        self.rejected_downstream += o.rejected_downstream;
        self.late += o.late;
        self.windows += o.windows;
        self.window_updates += o.window_updates;
        self.window_partials += o.window_partials;
        self.windowed += o.windowed;
        self.alerts += o.alerts;
    }

    /// Checks `lines = valid + rejected − rejected_downstream` and, when
    /// windows ran, `valid − rejected_downstream = windowed + late`.
    pub fn check_conservation(&self, windowed_ran: bool) -> Result<(), String> {
        if self.lines + self.rejected_downstream != self.valid + self.rejected_total() {
            return Err(format!(
                "lines {} != valid {} + rejected {} - rejected downstream {}",
                self.lines,
                self.valid,
                self.rejected_total(),
                self.rejected_downstream
            ));
        }
        if windowed_ran && self.valid != self.windowed + self.late + self.rejected_downstream {
            return Err(format!(
                "valid {} != windowed {} + late {} + rejected downstream {}",
                self.valid, self.windowed, self.late, self.rejected_downstream
            ));
        }
        Ok(())
    }
}

/// Live, process-local progress counters (for progress bars and metrics).
#[derive(Debug, Default)]
pub struct Progress {
    /// Records read so far.
    pub lines: AtomicU64,
    /// Bytes read so far.
    pub bytes: AtomicU64,
    /// Rejects so far.
    pub rejected: AtomicU64,
    /// Late readings so far.
    pub late: AtomicU64,
    /// Checkpoints completed by this process's committer.
    pub checkpoints: AtomicU64,
    /// State bytes of the last completed checkpoint.
    pub checkpoint_bytes: AtomicU64,
    /// Request-to-manifest time of the last completed checkpoint (ms).
    pub checkpoint_ms: AtomicU64,
}

impl Progress {
    /// A shared, zeroed counter set.
    pub fn shared() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
