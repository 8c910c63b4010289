//! Which delivered messages may be acknowledged, and when.
//!
//! Pure bookkeeping, apart from the MQTT client: the reader tells it what
//! was delivered, handed on, checkpointed, and when the connection changed;
//! it answers with the messages to acknowledge now.

use std::collections::HashMap;

/// A message delivered but not yet acknowledged.
#[derive(Debug)]
struct Held<M> {
    /// Its delivery number (1-based: the position after it).
    seq: u64,
    pkid: u16,
    msg: M,
}

/// What an incoming QoS 1 message is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    /// New (or a redelivery this run cannot recognise): hand it on.
    New,
    /// The broker's resend of a message already handed on in this run
    /// (same packet id, DUP set, after a resumed session): do not hand it
    /// on again; it is held under its first delivery number.
    Redelivery,
}

/// Unacknowledged messages of one MQTT session.
#[derive(Debug)]
pub(super) struct AckBook<M> {
    /// Acks wait for checkpoints (else for the hand-off to the pipeline).
    checkpointed: bool,
    /// Position of the last chunk handed to the pipeline.
    handed: u64,
    /// Position of the newest completed checkpoint.
    committed: u64,
    /// Unacknowledged messages of the current connection, in arrival order.
    held: Vec<Held<M>>,
    /// Unacknowledged messages of the previous connection of a resumed
    /// session, by packet id → delivery number.
    stale: HashMap<u16, u64>,
}

impl<M> AckBook<M> {
    /// A book starting at position `start` (restored from a checkpoint).
    pub(super) fn new(checkpointed: bool, start: u64) -> Self {
        AckBook {
            checkpointed,
            handed: start,
            committed: start,
            held: Vec::new(),
            stale: HashMap::new(),
        }
    }

    /// Messages held (delivered, not acknowledged).
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }

    /// A QoS 1 message arrived; `seq` is the number it gets if it is new.
    pub(super) fn arrive(&mut self, seq: u64, pkid: u16, dup: bool, msg: M) -> Arrival {
        if dup && let Some(first) = self.stale.remove(&pkid) {
            self.held.push(Held {
                seq: first,
                pkid,
                msg,
            });
            return Arrival::Redelivery;
        }
        self.held.push(Held { seq, pkid, msg });
        Arrival::New
    }

    /// A new connection is up. A resumed session gets the messages held on
    /// the previous one again (same packet ids); their resends are
    /// acknowledged, never the old copies (on this connection an old packet
    /// id may already name another message). Returns how many held
    /// messages the broker will not redeliver (session not resumed).
    pub(super) fn reconnected(&mut self, session_present: bool) -> usize {
        let held = std::mem::take(&mut self.held);
        if session_present {
            // Only the last connection's: an older entry not resent since
            // may have expired at the broker and its id been reused, and a
            // wrong match would drop a new message (a missed one only
            // duplicates it).
            self.stale = held.into_iter().map(|h| (h.pkid, h.seq)).collect();
            0
        } else {
            let lost = held.len() + self.stale.len();
            self.stale.clear();
            lost
        }
    }

    /// Everything up to `position` was handed to the pipeline.
    pub(super) fn handed(&mut self, position: u64) {
        self.handed = self.handed.max(position);
    }

    /// A checkpoint covering everything up to `position` completed.
    pub(super) fn committed(&mut self, position: u64) {
        self.committed = self.committed.max(position);
    }

    /// Removes and returns the messages that may be acknowledged now, in
    /// arrival order.
    pub(super) fn due(&mut self) -> Vec<M> {
        let upto = if self.checkpointed {
            self.committed
        } else {
            self.handed
        };
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.seq <= upto);
        self.held = keep;
        due.into_iter().map(|h| h.msg).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpointed_acks_wait_for_the_commit_position() {
        let mut b = AckBook::new(true, 0);
        for seq in 1..=5 {
            assert_eq!(b.arrive(seq, seq as u16, false, seq), Arrival::New);
        }
        b.handed(5);
        assert!(b.due().is_empty(), "handing on is not enough");
        b.committed(3);
        assert_eq!(b.due(), vec![1, 2, 3]);
        assert!(b.due().is_empty());
        b.committed(2); // positions only move forward
        b.committed(5);
        assert_eq!(b.due(), vec![4, 5]);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn without_checkpoints_acks_follow_the_hand_off() {
        let mut b = AckBook::new(false, 10);
        b.arrive(11, 1, false, "a");
        b.arrive(12, 2, false, "b");
        b.handed(11);
        assert_eq!(b.due(), vec!["a"]);
        b.handed(12);
        assert_eq!(b.due(), vec!["b"]);
    }

    #[test]
    fn resends_after_a_resumed_session_are_recognised_by_packet_id() {
        let mut b = AckBook::new(true, 0);
        b.arrive(1, 7, false, "a");
        b.arrive(2, 8, false, "b");
        assert_eq!(b.reconnected(true), 0);
        assert_eq!(b.held(), 0, "old copies are never acked");
        // The broker resends both with DUP; a new message reuses no held id.
        assert_eq!(b.arrive(3, 7, true, "a'"), Arrival::Redelivery);
        assert_eq!(b.arrive(3, 9, false, "c"), Arrival::New);
        assert_eq!(b.arrive(4, 8, true, "b'"), Arrival::Redelivery);
        b.committed(2);
        assert_eq!(b.due(), vec!["a'", "b'"], "held under their first numbers");
        b.committed(3);
        assert_eq!(b.due(), vec!["c"]);
    }

    #[test]
    fn unmatched_or_fresh_messages_are_new() {
        let mut b = AckBook::new(true, 0);
        b.arrive(1, 7, false, 1);
        b.reconnected(true);
        // Same id without DUP: a new message (the old one was acked).
        assert_eq!(b.arrive(2, 7, false, 2), Arrival::New);
        // DUP for an id not held: a redelivery we cannot place: new.
        assert_eq!(b.arrive(3, 5, true, 3), Arrival::New);
    }

    #[test]
    fn only_the_last_connection_is_matched_and_lost_sessions_forget() {
        let mut b = AckBook::new(true, 0);
        b.arrive(1, 7, false, 1);
        b.reconnected(true);
        b.reconnected(true); // dropped again before the resend arrived
        assert_eq!(b.arrive(2, 7, true, 2), Arrival::New);
        b.arrive(3, 8, false, 3);
        assert_eq!(b.reconnected(false), 2, "held 2 and 3 will not be resent");
        assert_eq!(b.arrive(4, 8, true, 4), Arrival::New);
    }
}
