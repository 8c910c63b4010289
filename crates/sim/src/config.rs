use serde::{Deserialize, Serialize};

use crate::Error;

/// What to generate: how many lines, from which seed, for how many devices,
/// starting at which event time.
///
/// Every field has a default, so a partial TOML/JSON table is enough:
///
/// ```
/// use iotflow_sim::FleetConfig;
/// let cfg: FleetConfig = serde_json::from_str(r#"{"lines": 5000, "seed": 7}"#)?;
/// assert_eq!(cfg.devices, 10_000);
/// assert_eq!(cfg.start_ms, 1_700_000_000_000);
/// cfg.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Number of lines (readings, malformed ones included). Default 1,000,000.
    pub lines: u64,
    /// Seed of the pseudo-random stream. Default 42.
    pub seed: u64,
    /// Number of devices; line `i` belongs to device `i % devices`.
    /// Default 10,000 (fleet-v1). Must be at least 1.
    pub devices: u32,
    /// Event time origin, ms since the Unix epoch: every generated `ts` is
    /// `>= start_ms`. Default 1,700,000,000,000 (fleet-v1).
    pub start_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            lines: 1_000_000,
            seed: 42,
            devices: 10_000,
            start_ms: 1_700_000_000_000,
        }
    }
}

impl FleetConfig {
    /// Checks that the configuration can be generated: at least one device,
    /// and every timestamp fits in an `i64` (what JSON readers expect).
    pub fn validate(&self) -> Result<(), Error> {
        if self.devices == 0 {
            return Err(Error::Config("devices must be at least 1".into()));
        }
        if self.max_ts().is_none_or(|ts| ts > i64::MAX as u64) {
            return Err(Error::Config(format!(
                "start_ms {} with {} lines of {} devices overflows the timestamp range",
                self.start_ms, self.lines, self.devices
            )));
        }
        Ok(())
    }

    /// Largest nominal timestamp of the file, `None` on overflow.
    pub(crate) fn max_ts(&self) -> Option<u64> {
        let seconds = self.lines / u64::from(self.devices.max(1));
        seconds
            .checked_mul(1000)?
            .checked_add(self.start_ms)?
            .checked_add(2000 + 1000)
    }
}
