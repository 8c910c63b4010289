//! The webhook sink: alert events as HTTP POSTs.

mod client;
mod config;

use std::sync::Arc;

use iotflow_core::sink::Sink;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use client::{Delivered, WebhookClient, WebhookStats};
pub use config::WebhookConfig;

use crate::error::AlertError;
use crate::event::AlertEvent;

/// A payload the webhook did not take, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where it was sent.
    pub url: String,
    /// The idempotency key it was sent with.
    pub key: String,
    /// The HTTP status of a refusal (none when the endpoint was
    /// unreachable).
    pub status: Option<u16>,
    /// Why it was not delivered.
    pub reason: String,
    /// Whether sending it again later may succeed (the endpoint was down,
    /// not refusing it).
    pub retryable: bool,
    /// The JSON body, as sent.
    pub payload: Box<RawValue>,
}

/// POSTs alert events to a webhook, each as a JSON object (or, with
/// `batch_size > 1`, JSON arrays of events), with an `Idempotency-Key`
/// header so the receiver can drop a retried duplicate.
///
/// The sink runs on the writer thread of
/// [`WriteTo::write_to`](iotflow_core::sink::WriteTo::write_to) and drives
/// its requests on a small runtime of its own there, one request at a time
/// in the order the events came: while it waits on a slow or failing
/// endpoint, the bounded bridge fills and the workers wait (backpressure),
/// and the receiver sees each alert's events in order. Payloads refused or
/// still failing after the last retry go to the dead-letter sink; the
/// job goes on.
///
/// ```no_run
/// use iotflow_alert::{NdjsonSink, WebhookConfig, WebhookSink};
/// let dead = NdjsonSink::append("alerts.dead.ndjson")?;
/// let sink = WebhookSink::new(&WebhookConfig::new("https://hooks.example.com/iot"), dead)?;
/// // stream_of_alert_events.write_to("webhook", sink, ctx)
/// # Ok::<(), iotflow_alert::AlertError>(())
/// ```
pub struct WebhookSink {
    client: WebhookClient,
    batch_size: usize,
    runtime: tokio::runtime::Runtime,
    dead: Box<dyn Sink<DeadLetter>>,
    name: String,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("client", &self.client)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink posting to `config.url`, sending what cannot be delivered to
    /// `dead_letters`.
    pub fn new(
        config: &WebhookConfig,
        dead_letters: impl Sink<DeadLetter>,
    ) -> Result<Self, AlertError> {
        let client = WebhookClient::new(config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AlertError::Client(e.to_string()))?;
        Ok(WebhookSink {
            client,
            batch_size: config.batch_size,
            runtime,
            dead: Box::new(dead_letters),
            name: format!("webhook {}", config.url),
        })
    }

    /// The sink's live counts.
    pub fn stats(&self) -> Arc<WebhookStats> {
        self.client.stats()
    }

    fn send(&mut self, events: &[AlertEvent]) -> Result<(), AlertError> {
        let body = match events {
            [one] if self.batch_size == 1 => serde_json::to_vec(one),
            many => serde_json::to_vec(many),
        }
        .map_err(|e| AlertError::Encode(e.to_string()))?;
        let key = idempotency_key(events);
        let n = events.len() as u64;
        let stats = self.client.stats();
        match self.runtime.block_on(self.client.post(body.clone(), &key)) {
            Ok(_) => {
                WebhookStats::add(&stats.delivered, n);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(sink = %self.name, key = %key, error = %e, "alert dead-lettered");
                let status = match &e {
                    AlertError::Rejected { status, .. } => Some(*status),
                    _ => None,
                };
                let payload = String::from_utf8(body)
                    .ok()
                    .and_then(|s| RawValue::from_string(s).ok())
                    .ok_or_else(|| AlertError::Encode("payload is not JSON".into()))?;
                let letter = DeadLetter {
                    url: self.client.url().to_string(),
                    key,
                    status,
                    reason: e.to_string(),
                    retryable: e.is_retryable(),
                    payload,
                };
                WebhookStats::add(&stats.dead_lettered, n);
                self.dead
                    .write(&[letter])
                    .map_err(|e| AlertError::Client(format!("dead letters: {e}")))
            }
        }
    }
}

/// One event's key: its incident, transition and time; a batch's: the
/// first and last events' keys and the count.
fn idempotency_key(events: &[AlertEvent]) -> String {
    let one = |e: &AlertEvent| format!("{:016x}-{}-{}", e.incident, e.transition.as_str(), e.at);
    match events {
        [] => String::new(),
        [e] => one(e),
        [first, .., last] => format!("{}..{}x{}", one(first), one(last), events.len()),
    }
}

impl Sink<AlertEvent> for WebhookSink {
    fn write(&mut self, batch: &[AlertEvent]) -> iotflow_core::Result<()> {
        for chunk in batch.chunks(self.batch_size) {
            let name = self.name.clone();
            self.send(chunk).map_err(|e| e.into_sink(&name))?;
        }
        Ok(())
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.dead.close()
    }
}
