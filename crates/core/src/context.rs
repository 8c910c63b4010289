//! What a running job shares with its operators: failures and progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    commits: Arc<CommitSignal>,
    io_threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// Which checkpoint completed last, and whether more can complete.
#[derive(Debug, Default)]
struct CommitSignal {
    /// `(last committed checkpoint id (0: none), no more will complete)`.
    state: Mutex<(u64, bool)>,
    changed: Condvar,
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

    /// Records that checkpoint `id` is complete (its manifest is written):
    /// what sources consumed before it may now be acknowledged upstream
    /// (Kafka offsets committed, MQTT messages acked). Called by the
    /// checkpoint committer; ids only move forward.
    pub fn checkpoint_committed(&self, id: u64) {
        if let Ok(mut s) = self.commits.state.lock() {
            s.0 = s.0.max(id);
        }
        self.commits.changed.notify_all();
    }

    /// The id of the last completed checkpoint of this run (0: none yet).
    pub fn last_committed(&self) -> u64 {
        self.commits.state.lock().map_or(0, |s| s.0)
    }

    /// Records that no further checkpoint will complete in this run (the
    /// job has ended and its committer has finished). Sources waiting to
    /// acknowledge their last committed input can then finish.
    pub fn end_commits(&self) {
        if let Ok(mut s) = self.commits.state.lock() {
            s.1 = true;
        }
        self.commits.changed.notify_all();
    }

    /// Whether [`end_commits`](JobContext::end_commits) was called.
    pub fn commits_ended(&self) -> bool {
        self.commits.state.lock().map_or(true, |s| s.1)
    }

    /// Waits up to `timeout` until a checkpoint after `seen` completes or
    /// commits end; returns the last committed id.
    pub fn wait_commit(&self, seen: u64, timeout: Duration) -> u64 {
        let Ok(guard) = self.commits.state.lock() else {
            return seen;
        };
        match self
            .commits
            .changed
            .wait_timeout_while(guard, timeout, |s| s.0 <= seen && !s.1)
        {
            Ok((s, _)) => s.0,
            Err(_) => seen,
        }
    }

    /// Keeps a source's I/O thread so that [`join_io`](JobContext::join_io)
    /// can wait for it at the end of the job (a source that acknowledges
    /// input upstream does so after the last checkpoint completes).
    pub fn register_io(&self, handle: JoinHandle<()>) {
        if let Ok(mut t) = self.io_threads.lock() {
            t.push(handle);
        }
    }

    /// Waits up to `timeout` in all for the registered I/O threads to
    /// finish; threads still running then are left to end with the process
    /// (and logged). Call after [`end_commits`](JobContext::end_commits).
    pub fn join_io(&self, timeout: Duration) {
        let handles = self
            .io_threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let deadline = Instant::now() + timeout;
        for h in handles {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                if h.join().is_err() {
                    self.fail("a source I/O thread panicked");
                }
            } else {
                let name = h.thread().name().unwrap_or("?").to_owned();
                tracing::warn!(thread = %name, "source I/O thread still running at job end; leaving it");
            }
        }
    }

    /// Failures recorded so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
