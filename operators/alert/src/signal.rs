//! What goes into the lifecycle operator: condition signals per (device, rule).

use std::cmp::Ordering;
use std::fmt;

use iotflow_types::{Alert, DeviceId, Metric, SmallStr, Timestamp, stable_hash};
use serde::{Deserialize, Serialize};

/// How bad an alert is, from `info` to `critical`; escalation moves it up
/// one level at a time.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record; nobody needs to act.
    Info,
    /// Worth a look.
    #[default]
    Warning,
    /// Degraded; act soon.
    Minor,
    /// Serious; act now.
    Major,
    /// Failing or about to; wake someone up.
    Critical,
}

impl Severity {
    /// The next level up (`critical` stays `critical`).
    pub fn next(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            Severity::Warning => Severity::Minor,
            Severity::Minor => Severity::Major,
            Severity::Major | Severity::Critical => Severity::Critical,
        }
    }

    /// `info`, `warning`, `minor`, `major` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signal fired: the reading (or match) behind it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Event time of the reading or match that raised the signal.
    pub ts: Timestamp,
    /// The metric involved (empty when a pattern spans several).
    pub metric: Metric,
    /// The reading's value (or whatever value the rule reports).
    pub value: f64,
    /// The detector's score (`0` when the rule has none).
    pub score: f64,
    /// The operator that raised it: a detector or a CEP pattern's name.
    pub source: SmallStr,
}

impl Evidence {
    /// A total order on evidence, used to order signals of one key with
    /// the same event time by their content, never by arrival.
    pub(crate) fn tie_break(&self, other: &Evidence) -> Ordering {
        self.ts
            .cmp(&other.ts)
            .then_with(|| self.metric.cmp(&other.metric))
            .then_with(|| self.value.total_cmp(&other.value))
            .then_with(|| self.score.total_cmp(&other.score))
            .then_with(|| self.source.cmp(&other.source))
    }
}

/// The identity of an alert: a rule firing on a device. Dedup, cool-down,
/// escalation and resolution are all per key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    /// The device.
    pub device: DeviceId,
    /// The rule, e.g. `zscore:temp` or `door-left-open`.
    pub rule: SmallStr,
}

impl AlertKey {
    /// The hash the operator exchanges signals by and partitions its state
    /// by: `stable_hash(&AlertKey { device, rule })` without building one.
    ///
    /// ```
    /// use iotflow_alert::AlertKey;
    /// use iotflow_types::stable_hash;
    /// let key = AlertKey { device: "d-1".into(), rule: "hot".into() };
    /// assert_eq!(AlertKey::hash_parts(&key.device, &key.rule), stable_hash(&key));
    /// ```
    #[inline]
    pub fn hash_parts(device: &DeviceId, rule: &SmallStr) -> u64 {
        // A derived `Hash` hashes the fields in order, like this tuple.
        stable_hash(&(device, rule))
    }
}

/// "Condition `rule` holds on `device` at `ts`, this badly, because of
/// `evidence`": the input of [`Alerting::alerts`](crate::Alerting::alerts).
///
/// A signal only ever says *firing*; the condition clears by silence (no
/// signal for the policy's `resolve_after_ms`), decided by the frontier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The device.
    pub device: DeviceId,
    /// The rule that fired.
    pub rule: SmallStr,
    /// Event time at which the condition held.
    pub ts: Timestamp,
    /// How bad it is now; a signal above the open alert's severity
    /// escalates it at once.
    pub severity: Severity,
    /// What the rule saw.
    pub evidence: Evidence,
}

impl Signal {
    /// A signal with no evidence beyond its time (for CEP matches and rules
    /// that have no single reading to show); add some with
    /// [`Signal::with_evidence`].
    pub fn new(device: &str, rule: &str, ts: Timestamp, severity: Severity) -> Signal {
        Signal {
            device: DeviceId::new(device),
            rule: SmallStr::new(rule),
            ts,
            severity,
            evidence: Evidence {
                ts,
                ..Evidence::default()
            },
        }
    }

    /// Replaces the evidence.
    pub fn with_evidence(mut self, evidence: Evidence) -> Signal {
        self.evidence = evidence;
        self
    }

    /// The signal of a detector's [`Alert`], with rule `<detector>:<metric>`
    /// (so one detector on two metrics of a device makes two alerts).
    ///
    /// ```
    /// use iotflow_alert::{Severity, Signal};
    /// use iotflow_types::Alert;
    /// let alert = Alert {
    ///     device: "d-1".into(), metric: "temp".into(), ts: 5_000,
    ///     value: 93.5, score: 7.2, detector: "zscore".into(),
    /// };
    /// let s = Signal::from_alert(&alert, Severity::Major);
    /// assert_eq!((s.rule.as_str(), s.ts, s.evidence.value), ("zscore:temp", 5_000, 93.5));
    /// ```
    pub fn from_alert(alert: &Alert, severity: Severity) -> Signal {
        let mut rule =
            SmallStr::with_capacity(alert.detector.len() + 1 + alert.metric.as_str().len());
        rule.push_str(&alert.detector);
        rule.push(':');
        rule.push_str(alert.metric.as_str());
        Signal {
            device: alert.device.clone(),
            rule,
            ts: alert.ts,
            severity,
            evidence: Evidence {
                ts: alert.ts,
                metric: alert.metric.clone(),
                value: alert.value,
                score: alert.score,
                source: alert.detector.clone(),
            },
        }
    }

    /// The signal's key.
    pub fn key(&self) -> AlertKey {
        AlertKey {
            device: self.device.clone(),
            rule: self.rule.clone(),
        }
    }

    /// `stable_hash(&self.key())`, without building the key.
    #[inline]
    pub fn key_hash(&self) -> u64 {
        AlertKey::hash_parts(&self.device, &self.rule)
    }

    /// The order of two signals of one key at the same lifecycle time:
    /// by content (time, severity, evidence), never by arrival, which
    /// differs between runs and worker counts.
    pub fn tie_break(&self, other: &Signal) -> Ordering {
        self.ts
            .cmp(&other.ts)
            .then_with(|| self.severity.cmp(&other.severity))
            .then_with(|| self.evidence.tie_break(&other.evidence))
    }
}
