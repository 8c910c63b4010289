//! What a running job shares with its operators: failures and progress.

use std::sync::{Arc, Mutex};

use crate::tally::Progress;

/// Shared per-process job state. Operators cannot return errors to timely,
/// so a failing source or sink records its error here, ends its stream, and
/// the runtime reports the job as failed.
#[derive(Clone, Debug, Default)]
pub struct JobContext {
    failures: Arc<Mutex<Vec<String>>>,
    /// Live counters for progress bars.
    pub progress: Arc<Progress>,
}

impl JobContext {
    /// A fresh context.
    pub fn new() -> Self {
        JobContext::default()
    }

    /// Records a failure.
    pub fn fail(&self, what: impl std::fmt::Display) {
        tracing::error!("{what}");
        if let Ok(mut f) = self.failures.lock() {
            f.push(what.to_string());
        }
    }

    /// Failures recorded so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
