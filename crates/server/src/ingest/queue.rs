//! The bounded queue between the ingest routes and the pipeline, and its
//! counters.
//!
//! A request's readings go in together or not at all: [`IngestQueue::offer`]
//! checks the free room and appends under one lock, so two requests racing
//! for the last slots never both get in, and a refused request leaves no
//! reading behind. The queue counts readings, not requests or bytes: its
//! capacity is what the operator thinks in ("100 000 readings may wait").

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::source::IngestSource;
use super::stats::IngestStats;
use crate::config::IngestConfig;
use parking_lot::{Condvar, Mutex};

/// The readings of one request, each a compact JSON line ending in `\n`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) data: Vec<u8>,
    pub(crate) count: usize,
}

/// Why [`IngestQueue::offer`] enqueued nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not all of the request's readings fit now; `free` did.
    Full { free: usize },
    /// The request holds more readings than the queue ever can.
    TooMany { capacity: usize },
    /// The queue was closed (server stopping) or its source is gone.
    Closed,
}

/// What [`IngestQueue::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Whole lines, `count` of them.
    Data { data: Vec<u8>, count: usize },
    /// Nothing arrived within the wait.
    Empty,
    /// Closed, and everything queued was taken.
    Closed,
}

/// Who closed the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// [`IngestQueue::close`]: the source delivers what is queued, then ends.
    Handle,
    /// The source stopped (the job ended); nothing will be read again.
    Consumer,
}

#[derive(Debug, Default)]
struct State {
    batches: VecDeque<Batch>,
    /// Readings in `batches`.
    depth: usize,
    closed: Option<Closer>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted_requests: AtomicU64,
    accepted_readings: AtomicU64,
    rejected_full_requests: AtomicU64,
    rejected_full_readings: AtomicU64,
    rejected_closed_requests: AtomicU64,
    auth_failures: AtomicU64,
    forbidden: AtomicU64,
    bad_requests: AtomicU64,
    delivered: AtomicU64,
    position: AtomicU64,
    checkpointed_position: AtomicU64,
    lost: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when readings arrive or the queue closes.
    ready: Condvar,
    capacity: usize,
    counters: Counters,
}

/// The routes' end of the ingest queue: cheap to clone, shared by every
/// request. Made together with the [`IngestSource`] that drains it by
/// [`IngestQueue::new`]; hand it to the server with
/// [`Server::with_ingest`](crate::Server::with_ingest) or
/// [`AppState::with_ingest`](crate::AppState::with_ingest).
#[derive(Debug, Clone)]
pub struct IngestQueue {
    shared: Arc<Shared>,
}

impl IngestQueue {
    /// A queue holding at most `capacity` readings (at least 1), and the
    /// source that drains it into a pipeline.
    pub fn new(capacity: usize) -> (IngestQueue, IngestSource) {
        let queue = IngestQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
                capacity: capacity.max(1),
                counters: Counters::default(),
            }),
        };
        let source = IngestSource::new(queue.clone());
        (queue, source)
    }

    /// [`new`](Self::new) with [`IngestConfig::queue_capacity`].
    pub fn from_config(config: &IngestConfig) -> (IngestQueue, IngestSource) {
        Self::new(config.queue_capacity)
    }

    /// Most readings the queue holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Readings accepted and not yet taken by the source.
    pub fn depth(&self) -> usize {
        self.shared.state.lock().depth
    }

    /// Stops accepting readings: requests get `503`, the source delivers
    /// what is queued and then ends (its pipeline's input is complete). The
    /// server closes its queue when it stops serving. Closing twice is a
    /// no-op.
    pub fn close(&self) {
        let mut state = self.shared.state.lock();
        if state.closed.is_none() {
            state.closed = Some(Closer::Handle);
            tracing::info!(queued = state.depth, "ingest queue closed");
        }
        drop(state);
        self.shared.ready.notify_all();
    }

    /// Whether new readings are refused (closed, or the source is gone).
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().closed.is_some()
    }

    /// The counters and gauges, as of now.
    pub fn stats(&self) -> IngestStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (depth, closed) = {
            let state = self.shared.state.lock();
            (state.depth, state.closed.is_some())
        };
        IngestStats {
            queue_depth: depth as u64,
            queue_capacity: self.shared.capacity as u64,
            closed,
            accepted_requests: get(&c.accepted_requests),
            accepted_readings: get(&c.accepted_readings),
            rejected_full_requests: get(&c.rejected_full_requests),
            rejected_full_readings: get(&c.rejected_full_readings),
            rejected_closed_requests: get(&c.rejected_closed_requests),
            auth_failures: get(&c.auth_failures),
            forbidden: get(&c.forbidden),
            bad_requests: get(&c.bad_requests),
            delivered_readings: get(&c.delivered),
            position: get(&c.position),
            checkpointed_position: get(&c.checkpointed_position),
            lost_readings: get(&c.lost),
        }
    }

    /// Enqueues all of `batch`, or nothing: the check for room and the
    /// append happen under one lock. Returns the number of readings queued.
    pub(crate) fn offer(&self, batch: Batch) -> Result<usize, Refusal> {
        let c = &self.shared.counters;
        let n = batch.count;
        let mut state = self.shared.state.lock();
        if state.closed.is_some() {
            drop(state);
            self.count_closed();
            return Err(Refusal::Closed);
        }
        if n > self.shared.capacity {
            return Err(Refusal::TooMany {
                capacity: self.shared.capacity,
            });
        }
        let free = self.shared.capacity - state.depth;
        if n > free {
            drop(state);
            c.rejected_full_requests.fetch_add(1, Ordering::Relaxed);
            c.rejected_full_readings
                .fetch_add(n as u64, Ordering::Relaxed);
            return Err(Refusal::Full { free });
        }
        if n > 0 {
            state.depth += n;
            state.batches.push_back(batch);
        }
        drop(state);
        c.accepted_requests.fetch_add(1, Ordering::Relaxed);
        c.accepted_readings.fetch_add(n as u64, Ordering::Relaxed);
        if n > 0 {
            self.shared.ready.notify_one();
        }
        Ok(n)
    }

    /// Takes whole batches, at least one and then more while the data
    /// stays under `max_bytes`; waits up to `wait` for the first.
    pub(crate) fn take(&self, max_bytes: usize, wait: Duration) -> Taken {
        let mut state = self.shared.state.lock();
        if state.batches.is_empty() && state.closed.is_none() {
            // One wait: the caller loops, checking whether its job stopped.
            let _ = self.shared.ready.wait_for(&mut state, wait);
        }
        let Some(first) = state.batches.pop_front() else {
            return match state.closed {
                Some(_) => Taken::Closed,
                None => Taken::Empty,
            };
        };
        let mut count = first.count;
        let mut data = first.data;
        while let Some(next) = state.batches.front() {
            if data.len() + next.data.len() > max_bytes {
                break;
            }
            let Some(next) = state.batches.pop_front() else {
                break;
            };
            data.extend_from_slice(&next.data);
            count += next.count;
        }
        state.depth -= count;
        Taken::Data { data, count }
    }

    /// The source is gone: refuse readings from now on and drop what is
    /// still queued (accepted, never to be delivered). Returns how many.
    pub(crate) fn consumer_gone(&self) -> usize {
        let mut state = self.shared.state.lock();
        state.closed = Some(Closer::Consumer);
        let left = state.depth;
        state.batches.clear();
        state.depth = 0;
        drop(state);
        self.shared.ready.notify_all();
        if left > 0 {
            self.count_lost(left);
        }
        left
    }

    /// A request refused because the queue is closed.
    pub(crate) fn count_closed(&self) {
        self.shared
            .counters
            .rejected_closed_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_auth_failure(&self) {
        self.shared
            .counters
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_forbidden(&self) {
        self.shared
            .counters
            .forbidden
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_bad_request(&self) {
        self.shared
            .counters
            .bad_requests
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_delivered(&self, readings: usize, position: u64) {
        let c = &self.shared.counters;
        c.delivered.fetch_add(readings as u64, Ordering::Relaxed);
        c.position.store(position, Ordering::Relaxed);
    }

    pub(crate) fn set_position(&self, position: u64) {
        self.shared
            .counters
            .position
            .store(position, Ordering::Relaxed);
    }

    pub(crate) fn set_checkpointed(&self, position: u64) {
        self.shared
            .counters
            .checkpointed_position
            .store(position, Ordering::Relaxed);
    }

    pub(crate) fn count_lost(&self, readings: usize) {
        self.shared
            .counters
            .lost
            .fetch_add(readings as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(count: usize) -> Batch {
        let mut data = Vec::new();
        for i in 0..count {
            data.extend_from_slice(format!("{{\"n\":{i}}}\n").as_bytes());
        }
        Batch { data, count }
    }

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn a_request_goes_in_whole_or_not_at_all() {
        let (q, _source) = IngestQueue::new(10);
        assert_eq!(q.offer(batch(6)), Ok(6));
        assert_eq!(q.offer(batch(5)), Err(Refusal::Full { free: 4 }));
        assert_eq!(q.depth(), 6, "a refused request leaves nothing behind");
        assert_eq!(q.offer(batch(4)), Ok(4));
        assert_eq!(q.offer(batch(1)), Err(Refusal::Full { free: 0 }));
        assert_eq!(q.offer(batch(0)), Ok(0), "an empty request always fits");
        assert_eq!(q.offer(batch(11)), Err(Refusal::TooMany { capacity: 10 }));
        let s = q.stats();
        assert_eq!(
            (s.accepted_requests, s.accepted_readings, s.queue_depth),
            (3, 10, 10)
        );
        assert_eq!((s.rejected_full_requests, s.rejected_full_readings), (2, 6));
    }

    #[test]
    fn taking_frees_room_and_keeps_order() {
        let (q, _source) = IngestQueue::new(5);
        assert_eq!(q.offer(batch(3)), Ok(3));
        assert_eq!(q.offer(batch(2)), Ok(2));
        let Taken::Data { data, count } = q.take(usize::MAX, NOW) else {
            panic!("expected data");
        };
        assert_eq!(count, 5);
        let mut expected = batch(3).data;
        expected.extend_from_slice(&batch(2).data);
        assert_eq!(data, expected);
        assert_eq!(q.depth(), 0);
        assert_eq!(q.offer(batch(5)), Ok(5));
    }

    #[test]
    fn take_stops_at_the_byte_limit_but_always_takes_one_batch() {
        let (q, _source) = IngestQueue::new(100);
        for _ in 0..3 {
            assert_eq!(q.offer(batch(4)), Ok(4));
        }
        let one = batch(4).data.len();
        // Limit below one batch: one batch anyway.
        assert_eq!(
            q.take(1, NOW),
            Taken::Data {
                data: batch(4).data,
                count: 4
            }
        );
        // Room for exactly two batches.
        match q.take(2 * one, NOW) {
            Taken::Data { count, .. } => assert_eq!(count, 8),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.take(usize::MAX, NOW), Taken::Empty);
    }

    #[test]
    fn closing_drains_then_ends_and_refuses_new_readings() {
        let (q, _source) = IngestQueue::new(10);
        assert_eq!(q.offer(batch(2)), Ok(2));
        q.close();
        assert!(q.is_closed());
        assert_eq!(q.offer(batch(1)), Err(Refusal::Closed));
        assert!(matches!(
            q.take(usize::MAX, NOW),
            Taken::Data { count: 2, .. }
        ));
        assert_eq!(q.take(usize::MAX, Duration::from_secs(5)), Taken::Closed);
        assert_eq!(q.stats().rejected_closed_requests, 1);
    }

    #[test]
    fn a_gone_consumer_refuses_and_counts_what_it_never_read() {
        let (q, _source) = IngestQueue::new(10);
        assert_eq!(q.offer(batch(3)), Ok(3));
        assert_eq!(q.consumer_gone(), 3);
        assert_eq!(q.offer(batch(1)), Err(Refusal::Closed));
        let s = q.stats();
        assert_eq!((s.lost_readings, s.queue_depth, s.closed), (3, 0, true));
    }

    #[test]
    fn a_waiting_taker_wakes_when_readings_arrive() {
        let (q, _source) = IngestQueue::new(10);
        let taker = {
            let q = q.clone();
            std::thread::spawn(move || q.take(usize::MAX, Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(q.offer(batch(1)), Ok(1));
        let got = taker.join().expect("taker thread");
        assert!(matches!(got, Taken::Data { count: 1, .. }), "{got:?}");
    }

    #[test]
    fn racing_requests_never_overfill() {
        let (q, _source) = IngestQueue::new(1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut accepted = 0;
                    for _ in 0..100 {
                        if let Ok(n) = q.offer(batch(7)) {
                            accepted += n;
                        }
                    }
                    accepted
                })
            })
            .collect();
        let accepted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        // 1000 / 7 = 142 requests fit; the rest were refused whole.
        assert_eq!(accepted, 142 * 7);
        assert_eq!(q.depth(), accepted);
        let s = q.stats();
        assert_eq!(s.accepted_readings + s.rejected_full_readings, 800 * 7);
    }
}
