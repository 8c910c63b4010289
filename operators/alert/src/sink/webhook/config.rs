//! Configuration of the webhook sink.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AlertError;

/// Where and how alert events are POSTed.
///
/// ```
/// use iotflow_alert::WebhookConfig;
/// let cfg: WebhookConfig = toml::from_str(r#"
///     url = "https://hooks.example.com/iotflow"
///     timeout_ms = 5000           # per request, connection included
///     max_retries = 5             # after the first attempt
///     initial_backoff_ms = 200    # doubled per retry, with jitter
///     max_backoff_ms = 30000
///     batch_size = 1              # >1: POST JSON arrays of up to n events
///     headers = { Authorization = "Bearer s3cret" }
/// "#).expect("valid TOML");
/// cfg.validate().expect("valid config");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The endpoint, `http://` or `https://`. Required.
    pub url: String,
    /// Time limit of one attempt, connecting included. Default 5 000 ms.
    pub timeout_ms: u64,
    /// Retries after the first attempt on 5xx, 408, 429, timeouts and
    /// connection errors; then the payload goes to the dead letters.
    /// Default 5.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each next one, capped by
    /// `max_backoff_ms`, each wait drawn at random from its upper half
    /// (jitter, so many senders do not retry in step). Default 200 ms.
    pub initial_backoff_ms: u64,
    /// The longest wait between two attempts. Default 30 000 ms.
    pub max_backoff_ms: u64,
    /// Events per request: `1` POSTs each event as a JSON object, `n > 1`
    /// POSTs JSON arrays of up to `n` events. Default 1.
    pub batch_size: usize,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: BTreeMap<String, String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            timeout_ms: 5_000,
            max_retries: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
            batch_size: 1,
            headers: BTreeMap::new(),
        }
    }
}

impl WebhookConfig {
    /// A configuration posting to `url`, defaults otherwise.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            ..WebhookConfig::default()
        }
    }

    /// Checks the URL, the headers and the timing.
    pub fn validate(&self) -> Result<(), AlertError> {
        self.url()?;
        self.header_map()?;
        let bad = |m: &str| Err(AlertError::Config(format!("webhook: {m}")));
        if self.timeout_ms == 0 {
            return bad("timeout_ms must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return bad("initial_backoff_ms must not exceed max_backoff_ms");
        }
        Ok(())
    }

    /// The parsed URL.
    pub(crate) fn url(&self) -> Result<reqwest::Url, AlertError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| AlertError::Config(format!("webhook url {:?}: {e}", self.url)))?;
        match url.scheme() {
            "http" | "https" => Ok(url),
            s => Err(AlertError::Config(format!(
                "webhook url {:?}: scheme {s:?} is not http or https",
                self.url
            ))),
        }
    }

    /// The extra headers, checked.
    pub(crate) fn header_map(&self) -> Result<reqwest::header::HeaderMap, AlertError> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| AlertError::Config(format!("webhook header {k:?}: {e}")))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|e| AlertError::Config(format!("webhook header {k:?} value: {e}")))?;
            // Kept out of logs and debug output: often a credential.
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(map)
    }

    /// The wait before retry `retry` (0-based): `min(max, initial · 2^retry)`,
    /// scaled into its upper half by `unit` in `[0, 1)`.
    pub(crate) fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let cap = self
            .initial_backoff_ms
            .saturating_mul(1u64.checked_shl(retry).unwrap_or(u64::MAX))
            .min(self.max_backoff_ms);
        let half = cap as f64 / 2.0;
        Duration::from_secs_f64((half + half * unit.clamp(0.0, 1.0)) / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(WebhookConfig::default().validate().is_err(), "url required");
        assert!(WebhookConfig::new("ftp://x/").validate().is_err());
        assert!(
            WebhookConfig::new("http://127.0.0.1:9/hook")
                .validate()
                .is_ok()
        );
        let mut c = WebhookConfig::new("http://h/");
        c.headers.insert("bad header".into(), "v".into());
        assert!(c.validate().is_err());
        let c = WebhookConfig {
            initial_backoff_ms: 10,
            max_backoff_ms: 5,
            ..WebhookConfig::new("http://h/")
        };
        assert!(c.validate().is_err());
        assert!(toml::from_str::<WebhookConfig>("url = \"http://h/\"\nretries = 3").is_err());
    }

    #[test]
    fn backoff_doubles_within_the_cap_and_jitters_in_the_upper_half() {
        let c = WebhookConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            ..WebhookConfig::new("http://h/")
        };
        let ms = |r, u| c.backoff(r, u).as_millis();
        assert_eq!((ms(0, 0.0), ms(0, 0.999_999)), (50, 99));
        assert_eq!((ms(2, 0.0), ms(3, 0.0), ms(4, 0.0)), (200, 400, 500));
        assert_eq!(ms(63, 0.0), 500);
        assert_eq!(ms(200, 0.0), 500);
    }
}
