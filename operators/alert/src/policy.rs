//! How alerts live: cool-down, escalation, resolution.

use serde::{Deserialize, Serialize};

use crate::error::AlertError;
use crate::signal::Severity;

/// The lifecycle rules of [`Alerting::alerts`](crate::Alerting::alerts),
/// the same for every (device, rule) key. All durations are event time, in
/// milliseconds.
///
/// In TOML (every field optional; these are the defaults):
///
/// ```
/// use iotflow_alert::{AlertPolicy, Severity};
/// let policy: AlertPolicy = toml::from_str(r#"
///     cooldown_ms = 300000        # 5 min quiet after a resolve
///     escalate_after_ms = 900000  # 15 min per level; 0: never by time
///     resolve_after_ms = 300000   # 5 min without a signal resolves
///     max_severity = "critical"   # escalation by time stops here
/// "#).expect("valid TOML");
/// assert_eq!(policy, AlertPolicy::default());
/// policy.validate().expect("valid policy");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    /// After an alert resolves, its key stays quiet this long: signals in
    /// the cool-down open nothing; they are suppressed and counted. Damps
    /// a flapping condition into one alert per cool-down. `0`: none.
    /// Default 300 000 (5 minutes).
    pub cooldown_ms: u64,
    /// An open alert whose condition still fires this long after it opened
    /// (or last escalated) is escalated one severity level, on the first
    /// signal past that point, and again after as long, up to
    /// `max_severity`. `0`: never by time (a signal of higher severity
    /// still escalates). Default 900 000 (15 minutes).
    pub escalate_after_ms: u64,
    /// An open alert resolves when no signal came for this long: at
    /// `last signal + resolve_after_ms`, once the watermark passes it,
    /// whether or not anything else arrives. At least 1. Default 300 000
    /// (5 minutes).
    pub resolve_after_ms: u64,
    /// The highest severity escalation by time reaches. Default
    /// `critical`.
    pub max_severity: Severity,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            cooldown_ms: 300_000,
            escalate_after_ms: 900_000,
            resolve_after_ms: 300_000,
            max_severity: Severity::Critical,
        }
    }
}

impl AlertPolicy {
    /// Checks the policy: `resolve_after_ms` must be at least 1 (an alert
    /// that resolves at the instant it opens would never be seen).
    pub fn validate(&self) -> Result<(), AlertError> {
        if self.resolve_after_ms == 0 {
            return Err(AlertError::Config(
                "resolve_after_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Sets `cooldown_ms`.
    pub fn with_cooldown_ms(mut self, ms: u64) -> Self {
        self.cooldown_ms = ms;
        self
    }

    /// Sets `escalate_after_ms`.
    pub fn with_escalate_after_ms(mut self, ms: u64) -> Self {
        self.escalate_after_ms = ms;
        self
    }

    /// Sets `resolve_after_ms`.
    pub fn with_resolve_after_ms(mut self, ms: u64) -> Self {
        self.resolve_after_ms = ms;
        self
    }

    /// Sets `max_severity`.
    pub fn with_max_severity(mut self, severity: Severity) -> Self {
        self.max_severity = severity;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_fields_and_zero_resolve() {
        assert!(toml::from_str::<AlertPolicy>("cooldown = 5").is_err());
        let p: AlertPolicy = toml::from_str("resolve_after_ms = 0").expect("parses");
        assert!(matches!(p.validate(), Err(AlertError::Config(_))));
        let p: AlertPolicy = toml::from_str("max_severity = \"major\"").expect("parses");
        assert_eq!(p.max_severity, Severity::Major);
        assert_eq!(p.cooldown_ms, 300_000);
    }
}
