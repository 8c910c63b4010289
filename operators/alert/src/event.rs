//! What comes out of the lifecycle operator: one record per transition.

use iotflow_types::{DeviceId, SmallStr, Timestamp, stable_hash};
use serde::{Deserialize, Serialize};

use crate::signal::{Evidence, Severity};

/// A transition of an alert's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The condition started firing (outside any cool-down).
    Opened,
    /// The condition kept firing long enough, or a signal came in worse:
    /// the severity went up.
    Escalated,
    /// No signal for `resolve_after_ms`: the condition cleared.
    Resolved,
}

impl Transition {
    /// `opened`, `escalated` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Escalated => "escalated",
            Transition::Resolved => "resolved",
        }
    }
}

/// One lifecycle event of an alert: what a pager, a dashboard or a ticket
/// system consumes. Every field is a function of the input signals alone,
/// so the same input gives the same events on any number of workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The device.
    pub device: DeviceId,
    /// The rule.
    pub rule: SmallStr,
    /// What happened.
    pub transition: Transition,
    /// Event time of the transition: the opening or escalating signal's
    /// time, or for `resolved` the last signal's time + `resolve_after_ms`.
    pub at: Timestamp,
    /// The severity after the transition.
    pub severity: Severity,
    /// Identifies the alert across its events (a stable hash of device,
    /// rule and opening time): the idempotency key a receiver dedups on.
    pub incident: u64,
    /// When the alert opened.
    pub opened_at: Timestamp,
    /// Time of the last signal taken into the alert.
    pub last_signal_at: Timestamp,
    /// Signals taken into the alert so far, the opening one included.
    pub signals: u64,
    /// Repeats deduplicated since this alert's previous event: signals
    /// that changed nothing worth telling.
    pub deduplicated: u64,
    /// Escalations so far.
    pub escalations: u32,
    /// The latest signal's evidence (for `opened`: the opening signal's).
    pub evidence: Evidence,
}

impl AlertEvent {
    /// The incident id of an alert of `device` and `rule` opened at
    /// `opened_at`.
    pub fn incident_id(device: &DeviceId, rule: &SmallStr, opened_at: Timestamp) -> u64 {
        stable_hash(&(device, rule, opened_at))
    }

    /// `<device>/<rule>`: a partition key or topic suffix for message
    /// queues, which keeps one alert's events in order.
    pub fn routing_key(&self) -> String {
        format!("{}/{}", self.device, self.rule)
    }
}
