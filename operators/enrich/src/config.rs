//! What an enrichment does with readings the registry cannot describe.

use serde::{Deserialize, Serialize};

/// The configuration of [`Enrich::enrich`](crate::Enrich::enrich).
///
/// In TOML (every field optional; these are the defaults):
///
/// ```
/// use iotflow_enrich::{EnrichConfig, UnknownDevice};
/// let config: EnrichConfig = toml::from_str(r#"
///     unknown_device = "reject"   # or "pass_through"
/// "#).expect("valid TOML");
/// assert_eq!(config, EnrichConfig::default());
/// assert_eq!(config.unknown_device, UnknownDevice::Reject);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// What becomes of a reading whose device has no description at the
    /// reading's event time (never registered, registered only later, or
    /// removed). Default `reject`.
    pub unknown_device: UnknownDevice,
}

impl EnrichConfig {
    /// Sets `unknown_device`.
    pub fn with_unknown_device(mut self, unknown: UnknownDevice) -> Self {
        self.unknown_device = unknown;
        self
    }
}

/// What becomes of a reading of a device the registry does not know at the
/// reading's event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDevice {
    /// A [`Reject`](iotflow_types::Reject) with reason `unknown_device`, on
    /// the rejects output (to the dead letters). The registry is the source
    /// of truth: a device it does not know should not feed results.
    #[default]
    Reject,
    /// An [`Enriched`](crate::Enriched) reading without a description
    /// (`info: None`), on the main output: for pipelines that must see
    /// every reading, registered or not.
    PassThrough,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_and_refuses_unknown_fields() {
        let c: EnrichConfig = toml::from_str("unknown_device = \"pass_through\"").expect("parses");
        assert_eq!(c.unknown_device, UnknownDevice::PassThrough);
        assert_eq!(
            toml::from_str::<EnrichConfig>("").expect("empty"),
            EnrichConfig::default()
        );
        assert!(toml::from_str::<EnrichConfig>("unknown = \"reject\"").is_err());
        assert!(toml::from_str::<EnrichConfig>("unknown_device = \"drop\"").is_err());
    }
}
