//! The lifecycle of one key's alert, as a state machine over lifecycle
//! time. Timely-free: [`crate::state::AlertState`] feeds it signals and
//! expired deadlines in time order.
//!
//! ```text
//!            signal                 no signal for resolve_after
//!   (none) ─────────► Open ───────────────────────────────────► Cooling ──► (none)
//!      ▲   opened      │ ▲ signal: deduplicated, or escalated    resolved   │ cool-down over
//!      │               └─┘                                              │
//!      └──────────── signals while Cooling: suppressed ◄──────────────┘
//! ```

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::{AlertEvent, Transition};
use crate::policy::AlertPolicy;
use crate::signal::{AlertKey, Evidence, Severity, Signal};
use crate::tally::AlertTally;

/// What one key remembers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum KeyState {
    /// An alert is open.
    Open(Incident),
    /// The alert resolved; signals before `until` are suppressed.
    Cooling {
        /// End of the cool-down (exclusive).
        until: Timestamp,
    },
}

/// An open alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Incident {
    severity: Severity,
    opened_at: Timestamp,
    last_signal_at: Timestamp,
    /// When the current severity was reached (escalation by time counts
    /// from here).
    level_since: Timestamp,
    /// When the alert resolves unless another signal comes first.
    resolve_at: Timestamp,
    signals: u64,
    deduplicated: u64,
    escalations: u32,
    evidence: Evidence,
}

impl Incident {
    fn event(&self, key: &AlertKey, transition: Transition, at: Timestamp) -> AlertEvent {
        AlertEvent {
            device: key.device.clone(),
            rule: key.rule.clone(),
            transition,
            at,
            severity: self.severity,
            incident: AlertEvent::incident_id(&key.device, &key.rule, self.opened_at),
            opened_at: self.opened_at,
            last_signal_at: self.last_signal_at,
            signals: self.signals,
            deduplicated: self.deduplicated,
            escalations: self.escalations,
            evidence: self.evidence.clone(),
        }
    }
}

impl KeyState {
    /// The time of the key's next transition without further signals.
    pub(crate) fn deadline(&self) -> Timestamp {
        match self {
            KeyState::Open(i) => i.resolve_at,
            KeyState::Cooling { until } => *until,
        }
    }

    /// Applies `signal` at lifecycle time `at` to the key's state `prev`
    /// (`None`: nothing remembered). Every deadline at or before `at` must
    /// have expired first.
    pub(crate) fn apply(
        prev: Option<KeyState>,
        key: &AlertKey,
        at: Timestamp,
        signal: Signal,
        policy: &AlertPolicy,
        tally: &mut AlertTally,
        emit: &mut dyn FnMut(AlertEvent),
    ) -> KeyState {
        let resolve_at = at.saturating_add(policy.resolve_after_ms);
        match prev {
            None => {
                let incident = Incident {
                    severity: signal.severity,
                    opened_at: at,
                    last_signal_at: at,
                    level_since: at,
                    resolve_at,
                    signals: 1,
                    deduplicated: 0,
                    escalations: 0,
                    evidence: signal.evidence,
                };
                tally.opened += 1;
                emit(incident.event(key, Transition::Opened, at));
                KeyState::Open(incident)
            }
            Some(cooling @ KeyState::Cooling { .. }) => {
                tally.suppressed += 1;
                cooling
            }
            Some(KeyState::Open(mut i)) => {
                tally.repeats += 1;
                i.signals += 1;
                i.last_signal_at = at;
                i.resolve_at = resolve_at;
                i.evidence = signal.evidence;
                let persisted = policy.escalate_after_ms > 0
                    && at.saturating_sub(i.level_since) >= policy.escalate_after_ms
                    && i.severity < policy.max_severity;
                let raised = if signal.severity > i.severity {
                    Some(signal.severity)
                } else if persisted {
                    Some(i.severity.next().min(policy.max_severity))
                } else {
                    None
                };
                match raised {
                    Some(severity) => {
                        i.severity = severity;
                        i.level_since = at;
                        i.escalations += 1;
                        tally.escalated += 1;
                        emit(i.event(key, Transition::Escalated, at));
                        i.deduplicated = 0;
                    }
                    None => i.deduplicated += 1,
                }
                KeyState::Open(i)
            }
        }
    }

    /// Moves the key past its deadline; `None`: nothing left to remember.
    pub(crate) fn expire(
        self,
        key: &AlertKey,
        policy: &AlertPolicy,
        tally: &mut AlertTally,
        emit: &mut dyn FnMut(AlertEvent),
    ) -> Option<KeyState> {
        match self {
            KeyState::Open(i) => {
                let at = i.resolve_at;
                tally.resolved += 1;
                emit(i.event(key, Transition::Resolved, at));
                (policy.cooldown_ms > 0).then(|| KeyState::Cooling {
                    until: at.saturating_add(policy.cooldown_ms),
                })
            }
            KeyState::Cooling { .. } => None,
        }
    }
}
