//! How presence is decided.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::FleetError;

/// The rules of [`Presence::presence`](crate::Presence::presence). All
/// durations are event time, in milliseconds.
///
/// In TOML (every field optional; these are the defaults):
///
/// ```
/// use iotflow_fleet::PresenceConfig;
/// let config: PresenceConfig = toml::from_str(r#"
///     offline_after_ms = 300000     # 5 min without a reading: offline
///     last_seen_every_ms = 60000    # last-seen changes, once a minute
/// "#).expect("valid TOML");
/// assert_eq!(config, PresenceConfig::default());
/// config.validate().expect("valid config");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// A device with no reading for this long goes offline: at its last
    /// reading's time + `offline_after_ms` (a registered device that never
    /// sent: at its registration time + `offline_after_ms`). A reading
    /// exactly at that time comes after the offline event and brings the
    /// device back online, so choose it well above the devices' reporting
    /// interval (two or three intervals plus jitter). At least 1. Default
    /// 300 000 (5 minutes).
    pub offline_after_ms: u64,
    /// The `last_seen` output reports, at every multiple of this, each
    /// device whose last reading changed since the previous report. At
    /// least 1. Default 60 000 (1 minute).
    pub last_seen_every_ms: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            offline_after_ms: 300_000,
            last_seen_every_ms: 60_000,
        }
    }
}

impl PresenceConfig {
    /// The default config with devices going offline after `offline_after`
    /// without a reading (rounded down to milliseconds).
    pub fn offline_after(offline_after: Duration) -> Self {
        PresenceConfig::default().with_offline_after_ms(millis(offline_after))
    }

    /// Sets `offline_after_ms`.
    pub fn with_offline_after_ms(mut self, ms: u64) -> Self {
        self.offline_after_ms = ms;
        self
    }

    /// Sets `last_seen_every_ms` from a duration (rounded down to
    /// milliseconds).
    pub fn with_last_seen_every(mut self, every: Duration) -> Self {
        self.last_seen_every_ms = millis(every);
        self
    }

    /// Checks the config: both durations must be at least 1 ms (a device
    /// that goes offline at the instant of its reading is never seen
    /// online; a report every 0 ms is no schedule).
    pub fn validate(&self) -> Result<(), FleetError> {
        if self.offline_after_ms == 0 {
            return Err(FleetError::Config(
                "offline_after_ms must be at least 1".into(),
            ));
        }
        if self.last_seen_every_ms == 0 {
            return Err(FleetError::Config(
                "last_seen_every_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_unknown_fields_and_zeroes() {
        let c = PresenceConfig::offline_after(Duration::from_secs(90))
            .with_last_seen_every(Duration::from_millis(2_500));
        assert_eq!((c.offline_after_ms, c.last_seen_every_ms), (90_000, 2_500));
        c.validate().expect("valid");
        assert!(toml::from_str::<PresenceConfig>("offline_after = 5").is_err());
        let zero: PresenceConfig = toml::from_str("offline_after_ms = 0").expect("parses");
        assert!(matches!(zero.validate(), Err(FleetError::Config(_))));
        let zero = PresenceConfig::default().with_last_seen_every(Duration::ZERO);
        assert!(matches!(zero.validate(), Err(FleetError::Config(_))));
    }
}
