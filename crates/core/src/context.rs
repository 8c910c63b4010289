//! What a running job shares with its operators: failures and progress.

use std::sync::atomic::{AtomicBool, Ordering};
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
    cancelled: Arc<AtomicBool>,
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

    /// Asks the job to stop early but cleanly: sources stop reading, every
    /// record already read flows through, windows fire, sinks close their
    /// files. Safe to call from a signal handler thread.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](JobContext::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Whether any failure was recorded.
    pub fn is_failed(&self) -> bool {
        self.failures.lock().map_or(true, |f| !f.is_empty())
    }

    /// Failures recorded so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
