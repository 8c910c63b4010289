//! The bridge between I/O and timely workers.
//!
//! Timely workers run operators cooperatively on their own threads and must
//! never block on a socket or a disk. I/O runs elsewhere — a thread, or a task
//! on an async runtime — and talks to its worker through one bounded channel:
//!
//! * [`BridgeSender::send`] (async) and [`BridgeSender::send_blocking`] wait
//!   while the channel is full: a slow worker slows its source, memory stays
//!   bounded by `capacity` items;
//! * every send wakes the operator that owns the [`BridgeReceiver`] through a
//!   timely `SyncActivator`, so an idle operator costs nothing and a parked
//!   worker thread is unparked.
//!
//! The same channel runs the other way for sinks: workers hand batches to a
//! writer thread ([`crate::sink`]).

use timely::scheduling::SyncActivator;
use tokio::sync::mpsc;

use crate::Error;

/// Default number of items in flight between an I/O task and its worker.
pub const DEFAULT_CAPACITY: usize = 4;

/// The I/O side of a bridge.
pub struct BridgeSender<T> {
    /// `None` only while dropping: the channel must be closed *before* the
    /// last wake-up, or the receiver may run in between, see it empty but
    /// open, and never be woken again.
    tx: Option<mpsc::Sender<T>>,
    activator: Option<SyncActivator>,
}

/// The worker side of a bridge.
pub struct BridgeReceiver<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> std::fmt::Debug for BridgeSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeSender")
            .field("capacity", &self.tx.as_ref().map(|t| t.max_capacity()))
            .finish()
    }
}

impl<T> std::fmt::Debug for BridgeReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeReceiver").finish()
    }
}

/// A bounded bridge holding at most `capacity` items. `activator` (if any) is
/// poked after every send, and once more when the sender is dropped so the
/// receiver sees the end.
pub fn bridge<T>(
    capacity: usize,
    activator: Option<SyncActivator>,
) -> (BridgeSender<T>, BridgeReceiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        BridgeSender {
            tx: Some(tx),
            activator,
        },
        BridgeReceiver { rx },
    )
}

impl<T> BridgeSender<T> {
    /// Sends from an async task, waiting while the channel is full.
    pub async fn send(&self, item: T) -> Result<(), Error> {
        let tx = self
            .tx
            .as_ref()
            .ok_or(Error::Disconnected("sender closed"))?;
        tx.send(item)
            .await
            .map_err(|_| Error::Disconnected("receiver dropped"))?;
        self.poke();
        Ok(())
    }

    /// Sends from a plain thread, blocking while the channel is full. Must not
    /// be called from inside an async runtime.
    pub fn send_blocking(&self, item: T) -> Result<(), Error> {
        let tx = self
            .tx
            .as_ref()
            .ok_or(Error::Disconnected("sender closed"))?;
        tx.blocking_send(item)
            .map_err(|_| Error::Disconnected("receiver dropped"))?;
        self.poke();
        Ok(())
    }

    /// Whether the receiving side is gone (the job is shutting down).
    pub fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(|t| t.is_closed())
    }

    fn poke(&self) {
        if let Some(a) = &self.activator {
            // Fails only when the worker is gone; the next send reports it.
            let _ = a.activate();
        }
    }
}

impl<T> Drop for BridgeSender<T> {
    fn drop(&mut self) {
        // Close first, then wake: the receiver must find `Closed`.
        drop(self.tx.take());
        self.poke();
    }
}

/// What [`BridgeReceiver::try_recv`] found.
#[derive(Debug)]
pub enum Recv<T> {
    /// An item.
    Item(T),
    /// Nothing now; the operator will be activated when something arrives.
    Empty,
    /// The sender is gone and everything was received.
    Closed,
}

impl<T> BridgeReceiver<T> {
    /// Takes the next item without blocking.
    pub fn try_recv(&mut self) -> Recv<T> {
        match self.rx.try_recv() {
            Ok(item) => Recv::Item(item),
            Err(mpsc::error::TryRecvError::Empty) => Recv::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => Recv::Closed,
        }
    }

    /// Blocks for the next item (for sink threads); `None` when closed.
    pub fn recv_blocking(&mut self) -> Option<T> {
        self.rx.blocking_recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_ordered() {
        let (tx, mut rx) = bridge::<u32>(2, None);
        let t = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send_blocking(i).expect("open");
            }
        });
        let mut got = Vec::new();
        while let Some(i) = rx.recv_blocking() {
            got.push(i);
        }
        t.join().expect("sender thread");
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(matches!(rx.try_recv(), Recv::Closed));
    }
}
