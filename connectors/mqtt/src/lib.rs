//! MQTT connector: a source over persistent QoS 1 subscriptions whose
//! acknowledgements wait for checkpoints, and a sink with per-record topic
//! templates. Both speak MQTT 5 through [rumqttc] over TCP or TLS (rustls,
//! optionally mutual TLS).
//!
//! # How the source keeps its promise
//!
//! MQTT has no offsets to rewind to: a broker keeps a message until the
//! client acknowledges it (PUBACK), and a *persistent session* (clean start
//! off, session expiry > 0) keeps unacknowledged and queued messages while
//! the client is away. [`MqttSource`] therefore
//!
//! 1. connects with a stable client id, a persistent session and manual
//!    acks, and subscribes at QoS 1;
//! 2. hands each message to the pipeline as one line of a chunk, numbering
//!    messages: the partition `mqtt:{client_id}` is at
//!    `Position::Offset(messages delivered so far)`;
//! 3. acknowledges a message only once a completed checkpoint's position
//!    covers its number ([`Commits`](iotflow_core::source::Commits)). A job
//!    that crashes restarts from its last checkpoint, and the broker sends
//!    everything after it again.
//!
//! Holding acks needs room at the broker: the source asks for an MQTT 5
//! Receive Maximum of 65 535 unacknowledged messages (MQTT 3.1.1 has no way
//! to ask, and mosquitto stops at 20 in flight for 3.1.1 clients by
//! default; mosquitto 2.0.11 with default settings was checked to send an
//! MQTT 5 client more than 20 unacknowledged messages), and the broker must
//! not cap the session's queue (mosquitto: `max_queued_messages 0`, else it
//! drops messages beyond 1000 queued for a stopped or slow job).
//!
//! Sources and sinks run their own small tokio runtime: call them from
//! plain threads (the pipeline's I/O and writer threads), not from inside
//! an async runtime.
//!
//! Connections that drop are retried with exponential backoff and jitter;
//! after a reconnect to a resumed session the broker resends unacknowledged
//! messages with their original packet ids and the DUP flag (MQTT 5
//! §4.4), which the source recognises and acknowledges instead of handing
//! them on twice. Delivery is still at least once: a message comes again
//! after a restart of the job (or of a broker that renumbers what it
//! restored) when its checkpoint completed but its PUBACK did not get out,
//! and a QoS 1 *publisher* that loses a PUBACK resends a message the broker
//! already has. Downstream steps that must not double count should be
//! idempotent or deduplicate (the broker-restart test reports how many
//! duplicates arrive).
//!
//! # The sink
//!
//! [`MqttSink`] publishes each record as JSON on the topic its fields fill
//! into a [`TopicTemplate`] (`devices/{device}/metrics/{metric}`);
//! [`MqttRawSink`] publishes bytes. At QoS 1 `close` waits until the broker
//! has acknowledged every message.
//!
//! # Tests
//!
//! Integration tests talk to the mosquitto that `.ci/services.sh start`
//! runs (see `.ci/services.d/mqtt.sh` for the environment variables);
//! [`testing`] holds the helpers, also for other crates' end-to-end tests.
#![deny(missing_docs)]

mod backoff;
mod connection;
mod error;
mod lines;
mod sink;
mod source;
pub mod testing;

pub use backoff::BackoffConfig;
pub use connection::TlsConfig;
pub use error::{MqttError, Result};
pub use sink::{MqttMessage, MqttRawSink, MqttSink, MqttSinkConfig, MqttSinkStats, TopicTemplate};
pub use source::{MqttSource, MqttSourceConfig, MqttSourceStats};
