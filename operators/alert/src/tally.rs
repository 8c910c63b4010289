//! The counts of an alert lifecycle operator.

use serde::{Deserialize, Serialize};

/// What a lifecycle operator did with its signals, per worker. Summed over
/// workers it accounts for every signal:
/// `received = opened + repeats + suppressed + pending`, where `pending`
/// (signals waiting for the watermark) is 0 once the input has ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTally {
    /// Signals received.
    pub received: u64,
    /// Signals that opened an alert (one `opened` event each).
    pub opened: u64,
    /// Signals taken into an open alert: deduplicated, or escalating it.
    pub repeats: u64,
    /// Signals in a cool-down: they opened nothing.
    pub suppressed: u64,
    /// `escalated` events.
    pub escalated: u64,
    /// `resolved` events.
    pub resolved: u64,
}

impl AlertTally {
    /// Adds another tally into this one.
    pub fn merge(&mut self, o: &AlertTally) {
        self.received += o.received;
        self.opened += o.opened;
        self.repeats += o.repeats;
        self.suppressed += o.suppressed;
        self.escalated += o.escalated;
        self.resolved += o.resolved;
    }

    /// Checks `received = opened + repeats + suppressed` (after the end of
    /// input) and that every opened alert resolved.
    pub fn check_conservation(&self) -> Result<(), String> {
        let applied = self.opened + self.repeats + self.suppressed;
        if self.received != applied {
            return Err(format!(
                "received {} != opened {} + repeats {} + suppressed {}",
                self.received, self.opened, self.repeats, self.suppressed
            ));
        }
        if self.opened != self.resolved {
            return Err(format!(
                "opened {} != resolved {}",
                self.opened, self.resolved
            ));
        }
        Ok(())
    }
}
