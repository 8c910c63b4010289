//! Where alert events go: sinks for [`iotflow_core::sink::WriteTo`].
//!
//! Every sink here is an [`iotflow_core::sink::Sink`]: it runs on the
//! writer thread `write_to` starts, fed through the core bridge's bounded
//! channel, so a slow receiver (a webhook retrying through an outage)
//! slows the workers instead of growing memory, and no operator ever
//! touches the network.
//!
//! * [`NdjsonSink`]: one JSON object per line, synced to disk on close;
//!   also the natural home for dead letters.
//! * [`WebhookSink`] (feature `webhook`): HTTP POST of each event (or of
//!   batches, as JSON arrays), retried with exponential backoff and jitter
//!   on 5xx, 408, 429, timeouts and connection errors; refused payloads
//!   (other 4xx) and payloads still failing after the last retry go to a
//!   dead-letter sink with the reason.
//!
//! Message queues (MQTT, Kafka) need no alert-specific code: their
//! connectors' sinks take any serializable record, and
//! [`AlertEvent::routing_key`](crate::AlertEvent::routing_key) is the
//! partition key or topic suffix that keeps one alert's events in order.

mod ndjson;
#[cfg(feature = "webhook")]
mod webhook;

pub use ndjson::NdjsonSink;
#[cfg(feature = "webhook")]
pub use webhook::{DeadLetter, Delivered, WebhookClient, WebhookConfig, WebhookSink, WebhookStats};
