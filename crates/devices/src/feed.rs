//! The registry as a timely stream of [`DeviceUpdate`]s.
//!
//! [`registry_updates`] reads a [`Snapshot`](crate::Snapshot) of every device
//! and emits it at event time [`FeedConfig::snapshot_at`] (0 by default: the
//! registry as it is when the job starts describes every reading before
//! it). With [`FeedConfig::follow`], it then polls the change log and emits
//! each change at its change time, so the stream's frontier follows the wall
//! clock, [`FeedConfig::grace`] behind it: a change becomes visible to
//! event-time operators (enrichment, fleet views) once the readings'
//! watermark reaches the moment it was made.
//!
//! Without `follow` the stream ends after the snapshot (static metadata,
//! the right choice for replaying history); with it the stream ends when the
//! [`FeedHandle`] is stopped (or dropped).
//!
//! A change whose time is already behind the stream's frontier when it is
//! read (its transaction committed more than `grace` after it began) is
//! emitted at the frontier, with its `at` moved there, and counted in
//! [`FeedHandle::late_changes`]: it holds from the moment the pipeline
//! learned of it.
//!
//! Only worker 0 reads the registry; updates are exchanged by device by the
//! operators that consume them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use iotflow_core::bridge::{self, Recv};
use iotflow_types::{DeviceUpdate, Timestamp};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

use crate::registry::Registry;

/// How [`registry_updates`] reads the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    /// Event time at which the initial snapshot holds. Default 0.
    pub snapshot_at: Timestamp,
    /// Keep polling the change log after the snapshot. Default `false`.
    pub follow: bool,
    /// Pause between polls of the change log. Default 1 s.
    pub poll: Duration,
    /// How far behind the wall clock the frontier stays, for transactions in
    /// flight. Default 2 s.
    pub grace: Duration,
    /// Changes read per query. Default 1000.
    pub batch: u32,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            snapshot_at: 0,
            follow: false,
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(2),
            batch: 1000,
        }
    }
}

/// Controls a running feed. The feed also ends when its dataflow is dropped.
#[derive(Debug, Clone)]
pub struct FeedHandle {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    late: AtomicU64,
    errors: AtomicU64,
    last_seq: AtomicU64,
}

impl FeedHandle {
    /// Ends the stream after the poll in progress.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// Changes emitted later than their change time (see the module docs).
    pub fn late_changes(&self) -> u64 {
        self.shared.late.load(Ordering::Relaxed)
    }

    /// Failed reads of the registry so far (each retried with backoff).
    pub fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// The last change sequence number emitted.
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }
}

enum Msg {
    Updates(Vec<DeviceUpdate>),
    /// Nothing at an earlier time will follow.
    Frontier(Timestamp),
}

/// The registry's devices and their changes as a stream whose timely time
/// is each update's `at`.
///
/// Emits every device's description at [`FeedConfig::snapshot_at`], then,
/// with [`FeedConfig::follow`], each change of the log at its change time,
/// the frontier trailing the registry's clock by [`FeedConfig::grace`]. A
/// change already behind the frontier when read is emitted at the frontier
/// and counted in [`FeedHandle::late_changes`]. Only worker 0 reads the
/// registry. The stream ends after the snapshot without `follow`, otherwise
/// when [`FeedHandle::stop`] is called.
pub fn registry_updates<'scope>(
    scope: Scope<'scope, Timestamp>,
    name: &str,
    registry: Registry,
    config: FeedConfig,
) -> (StreamVec<'scope, Timestamp, DeviceUpdate>, FeedHandle) {
    let shared = Arc::new(Shared::default());
    let handle = FeedHandle {
        shared: Arc::clone(&shared),
    };
    let worker = scope.index();
    let name_owned = name.to_owned();
    let stream = source(scope, name, move |cap, info| {
        let mut cap = (worker == 0).then_some(cap);
        let activator = scope.worker().sync_activator_for(info.address.to_vec());
        let (tx, mut rx) = bridge::bridge::<Msg>(16, Some(activator));
        if cap.is_some() {
            let io_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("{name_owned}-registry"))
                .spawn(move || poll_loop(registry, config, io_shared, tx));
            if let Err(e) = spawned {
                tracing::error!(feed = %name_owned, "cannot start the registry thread: {e}");
                cap = None;
            }
        }
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            loop {
                match rx.try_recv() {
                    Recv::Item(Msg::Updates(mut updates)) => {
                        let floor = *c.time();
                        for u in &mut updates {
                            if u.at < floor {
                                u.at = floor;
                                shared.late.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        updates.sort_by_key(|u| u.at);
                        let mut rest = &mut updates[..];
                        while let Some(first) = rest.first() {
                            let t = first.at;
                            let n = rest.partition_point(|u| u.at == t);
                            let (now, later) = rest.split_at_mut(n);
                            let at = c.delayed(&t);
                            output.session(&at).give_iterator(now.iter().cloned());
                            rest = later;
                        }
                    }
                    Recv::Item(Msg::Frontier(f)) => {
                        if f > *c.time() {
                            c.downgrade(&f);
                        }
                    }
                    Recv::Empty => break,
                    Recv::Closed => {
                        cap = None;
                        break;
                    }
                }
            }
        }
    });
    (stream, handle)
}

fn poll_loop(
    registry: Registry,
    config: FeedConfig,
    shared: Arc<Shared>,
    tx: bridge::BridgeSender<Msg>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("registry feed: cannot start a runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let mut backoff = Backoff::new();
        // The snapshot, retried until the registry answers or the feed stops.
        let snapshot = loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            match registry.snapshot().await {
                Ok(s) => break s,
                Err(e) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("registry feed: snapshot failed, retrying: {e}");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        };
        let mut seq = snapshot.seq;
        shared.last_seq.store(seq, Ordering::Release);
        if tx
            .send(Msg::Updates(snapshot.into_updates(config.snapshot_at)))
            .await
            .is_err()
        {
            return;
        }
        if !config.follow {
            return;
        }
        let grace = u64::try_from(config.grace.as_millis()).unwrap_or(u64::MAX);
        loop {
            if shared.stop.load(Ordering::Acquire) || tx.is_closed() {
                return;
            }
            // The frontier is taken before the read: every change stamped
            // before it, committed by now, is in this read or an earlier one.
            let now = registry.now_ms().max(0) as u64;
            match registry.changes_since(seq, config.batch).await {
                Ok(changes) => {
                    backoff.reset();
                    let full = changes.len() as u32 >= config.batch;
                    if let Some(last) = changes.last() {
                        seq = last.seq;
                        if tx.send(Msg::Updates(changes)).await.is_err() {
                            return;
                        }
                        shared.last_seq.store(seq, Ordering::Release);
                    }
                    if full {
                        continue;
                    }
                    let frontier = now.saturating_sub(grace).max(config.snapshot_at);
                    if tx.send(Msg::Frontier(frontier)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(config.poll).await;
                }
                Err(e) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("registry feed: reading changes failed, retrying: {e}");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    });
}

/// Exponential backoff from 100 ms to 10 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
        d
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }
}
