//! The async HTTP side of the webhook sink, usable on its own from any
//! tokio runtime (the HTTP server, for instance).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iotflow_types::stable_hash;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::config::WebhookConfig;
use crate::error::AlertError;

/// Live counts of a webhook client (shared with whoever watches it).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Retries (requests after a payload's first).
    pub retries: AtomicU64,
    /// Events the webhook accepted.
    pub delivered: AtomicU64,
    /// Events sent to the dead letters.
    pub dead_lettered: AtomicU64,
}

impl WebhookStats {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// POSTs JSON payloads to one endpoint, with retries.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    config: WebhookConfig,
    stats: Arc<WebhookStats>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the headers: they often hold credentials.
        f.debug_struct("WebhookClient")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// How long a payload took to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Attempts made (1: no retry).
    pub attempts: u32,
}

impl WebhookClient {
    /// A client for `config` (validated here).
    pub fn new(config: &WebhookConfig) -> Result<Self, AlertError> {
        config.validate()?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| AlertError::Client(e.to_string()))?;
        let mut headers = config.header_map()?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(WebhookClient {
            http,
            url: config.url()?,
            headers,
            config: config.clone(),
            stats: Arc::default(),
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The client's counts.
    pub fn stats(&self) -> Arc<WebhookStats> {
        self.stats.clone()
    }

    /// POSTs `body` (JSON) with header `Idempotency-Key: key`, retrying on
    /// transient failures: 5xx, 408, 429, timeouts and connection errors,
    /// up to `max_retries` times, waiting the configured backoff between.
    ///
    /// # Errors
    ///
    /// [`AlertError::Rejected`] on any other 4xx (not retried: the same
    /// request would be refused again); [`AlertError::Unavailable`] when
    /// the last retry failed too.
    pub async fn post(&self, body: Vec<u8>, key: &str) -> Result<Delivered, AlertError> {
        let mut last = String::new();
        // Jitter: a splitmix sequence seeded by the payload's key, so
        // senders of different alerts spread out without a shared RNG.
        let mut seed = stable_hash(key);
        let attempts = self.config.max_retries.saturating_add(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                WebhookStats::add(&self.stats.retries, 1);
                let unit = (splitmix(&mut seed) >> 11) as f64 / (1u64 << 53) as f64;
                tokio::time::sleep(self.config.backoff(attempt - 1, unit)).await;
            }
            WebhookStats::add(&self.stats.requests, 1);
            let request = self
                .http
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header("Idempotency-Key", key)
                .body(body.clone());
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    return Ok(Delivered {
                        attempts: attempt + 1,
                    });
                }
                Ok(r) if transient(r.status()) => last = format!("HTTP {}", r.status()),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let mut text = r.text().await.unwrap_or_default();
                    text.truncate(text.floor_char_boundary(512));
                    return Err(AlertError::Rejected { status, body: text });
                }
                Err(e) => last = describe(&e),
            }
        }
        Err(AlertError::Unavailable { attempts, last })
    }
}

/// Whether a status may clear up by itself.
fn transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The source chain holds the OS error; the top level only the URL.
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
