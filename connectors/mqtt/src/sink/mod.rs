//! The MQTT sink: one message per record, topic from a template.

mod publisher;
mod template;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iotflow_core::sink::Sink;
use rumqttc::v5::mqttbytes::QoS;
use serde::{Deserialize, Serialize};

pub use self::template::TopicTemplate;
use crate::backoff::BackoffConfig;
use crate::connection::{Endpoint, TlsConfig};
use crate::error::MqttError;
use publisher::Publisher;

/// Configuration of an [`MqttSink`] / [`MqttRawSink`].
///
/// ```toml
/// url = "mqtt://127.0.0.1:1883"
/// topic = "devices/{device}/metrics/{metric}"
/// qos = 1
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSinkConfig {
    /// Broker: `mqtt://host[:port]` or `mqtts://host[:port]`.
    /// Default `mqtt://127.0.0.1:1883`.
    pub url: String,
    /// Topic template, see [`TopicTemplate`]. Required.
    pub topic: String,
    /// QoS 0 (fire and forget) or 1 (default: at least once; `close`
    /// waits for every PUBACK).
    pub qos: u8,
    /// Publish with the retain flag (default false).
    pub retain: bool,
    /// MQTT client id; must be unique among the broker's clients, so give
    /// each sink instance its own. Default `iotflow-sink-{pid}-{n}`.
    pub client_id: Option<String>,
    /// Username, if the broker wants one. Default none.
    pub username: Option<String>,
    /// Password for `username`. Default none.
    pub password: Option<String>,
    /// TLS files for `mqtts://`. Default: system roots, no client certificate.
    pub tls: Option<TlsConfig>,
    /// Keep-alive interval, seconds, at least 5 (default 30).
    pub keep_alive_secs: u64,
    /// Time allowed for a connection handshake, seconds (default 10).
    pub connect_timeout_secs: u64,
    /// How long the broker keeps the sink's session while it reconnects,
    /// seconds (default 300). The session is what lets unacknowledged QoS 1
    /// messages be resent after a reconnect without loss.
    pub session_expiry_secs: u32,
    /// Most QoS 1 messages in flight unacknowledged (default 1000; the
    /// broker's Receive Maximum may lower it).
    pub max_inflight: u16,
    /// Backoff between reconnection attempts.
    pub reconnect: BackoffConfig,
    /// How long `close` waits for outstanding PUBACKs, seconds (default 30).
    pub close_timeout_secs: u64,
}

impl Default for MqttSinkConfig {
    fn default() -> Self {
        MqttSinkConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            topic: String::new(),
            qos: 1,
            retain: false,
            client_id: None,
            username: None,
            password: None,
            tls: None,
            keep_alive_secs: 30,
            connect_timeout_secs: 10,
            session_expiry_secs: 300,
            max_inflight: 1000,
            reconnect: BackoffConfig::default(),
            close_timeout_secs: 30,
        }
    }
}

/// Counters of a sink (shared; read them any time).
#[derive(Debug, Default)]
pub struct MqttSinkStats {
    /// Messages handed to the MQTT client.
    pub messages: AtomicU64,
    /// Payload bytes handed to the MQTT client.
    pub bytes: AtomicU64,
    /// QoS 1 acknowledgements received.
    pub acked: AtomicU64,
    /// Acknowledgements with a failure reason (the broker refused the message).
    pub failed: AtomicU64,
    /// Records with no topic (template field missing or unusable) or that
    /// are not JSON where the template needs fields; not published.
    pub rejected: AtomicU64,
    /// Lost connections and failed connection attempts.
    pub reconnects: AtomicU64,
}

/// A message with its topic already chosen (for [`MqttRawSink`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttMessage {
    /// Publish topic (no wildcards).
    pub topic: String,
    /// Payload bytes, as they are.
    pub payload: Vec<u8>,
}

/// The connection and encoding shared by both sink forms.
struct Core {
    name: String,
    template: TopicTemplate,
    qos: QoS,
    retain: bool,
    close_timeout: Duration,
    publisher: Option<Publisher>,
    stats: Arc<MqttSinkStats>,
}

fn next_client_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "iotflow-sink-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Core {
    fn new(config: &MqttSinkConfig) -> Result<Core, MqttError> {
        let template = TopicTemplate::parse(&config.topic)?;
        let qos = match config.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            q => {
                return Err(MqttError::Config(format!(
                    "qos {q}: the sink supports 0 and 1"
                )));
            }
        };
        if config.max_inflight == 0 {
            return Err(MqttError::Config("max_inflight must be at least 1".into()));
        }
        let client_id = config.client_id.clone().unwrap_or_else(next_client_id);
        let mut options = Endpoint {
            url: &config.url,
            client_id: &client_id,
            username: config.username.as_deref(),
            password: config.password.as_deref(),
            tls: config.tls.as_ref(),
            keep_alive_secs: config.keep_alive_secs,
            connect_timeout_secs: config.connect_timeout_secs,
            session_expiry_secs: config.session_expiry_secs,
            clean_start: false,
        }
        .options()?;
        options.set_outgoing_inflight_upper_limit(config.max_inflight);
        let stats = Arc::new(MqttSinkStats::default());
        let publisher = Publisher::start(
            &config.url,
            options,
            config.reconnect.clone(),
            stats.clone(),
        )?;
        Ok(Core {
            name: format!("mqtt {}", config.url),
            template,
            qos,
            retain: config.retain,
            close_timeout: Duration::from_secs(config.close_timeout_secs),
            publisher: Some(publisher),
            stats,
        })
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
        let p = self
            .publisher
            .as_mut()
            .ok_or_else(|| MqttError::Internal("write after close".into()))?;
        p.publish(topic, payload, self.qos, self.retain)
    }

    /// Publishes what `encode` turns into messages; records it cannot are
    /// counted and reported in the returned error after the rest went out.
    fn write_with<T>(
        &mut self,
        batch: &[T],
        mut encode: impl FnMut(&TopicTemplate, &T) -> Result<(String, Vec<u8>), String>,
    ) -> iotflow_core::Result<()> {
        let mut rejected: Vec<(usize, String)> = Vec::new();
        for (i, record) in batch.iter().enumerate() {
            match encode(&self.template, record) {
                Ok((topic, payload)) => self
                    .publish(topic, payload)
                    .map_err(|e| e.into_sink_error(&self.name))?,
                Err(why) => rejected.push((i, why)),
            }
        }
        if rejected.is_empty() {
            return Ok(());
        }
        self.stats
            .rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        let (first, why) = &rejected[0];
        tracing::warn!(sink = %self.name, rejected = rejected.len(), first = first, reason = %why, "mqtt sink: records not published");
        Err(MqttError::Record {
            index: *first,
            message: format!(
                "{why} ({} of {} records in the batch not published; the others were)",
                rejected.len(),
                batch.len()
            ),
        }
        .into_sink_error(&self.name))
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        match self.publisher.take() {
            Some(mut p) => p
                .close(self.close_timeout)
                .map_err(|e| e.into_sink_error(&self.name)),
            None => Ok(()),
        }
    }
}

/// Publishes each record as JSON, on the topic its fields fill into the
/// template.
///
/// A record whose template field is missing (or unusable, see
/// [`TopicTemplate`]) is not published: the other records of the batch
/// are, and `write` then returns an error naming the first such record
/// (counted in [`MqttSinkStats::rejected`]). QoS 1 messages that were
/// queued when the connection dropped are resent after the reconnect
/// (the session is persistent); `close` waits for every PUBACK.
pub struct MqttSink<D> {
    core: Core,
    _records: PhantomData<fn(&D)>,
}

impl<D> std::fmt::Debug for MqttSink<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSink")
            .field("name", &self.core.name)
            .field("topic", &self.core.template.as_str())
            .finish_non_exhaustive()
    }
}

impl<D: Serialize> MqttSink<D> {
    /// Connects (in the background; `write` waits for the connection).
    pub fn new(config: MqttSinkConfig) -> Result<Self, iotflow_core::Error> {
        let name = format!("mqtt {}", config.url);
        Ok(MqttSink {
            core: Core::new(&config).map_err(|e| e.into_sink_error(&name))?,
            _records: PhantomData,
        })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<MqttSinkStats> {
        self.core.stats.clone()
    }
}

fn encode_json<D: Serialize>(
    template: &TopicTemplate,
    record: &D,
) -> Result<(String, Vec<u8>), String> {
    if let Some(topic) = template.fixed() {
        let payload = serde_json::to_vec(record).map_err(|e| format!("not serializable: {e}"))?;
        return Ok((topic, payload));
    }
    let value = serde_json::to_value(record).map_err(|e| format!("not serializable: {e}"))?;
    let topic = template.render(&value)?;
    let payload = serde_json::to_vec(&value).map_err(|e| format!("not serializable: {e}"))?;
    Ok((topic, payload))
}

impl<D: Serialize + Send + 'static> Sink<D> for MqttSink<D> {
    fn write(&mut self, batch: &[D]) -> iotflow_core::Result<()> {
        self.core.write_with(batch, encode_json)
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.core.close()
    }
}

/// Publishes raw payloads: `Vec<u8>` on the template's topic (fields, if
/// the template has any, come from the payload parsed as JSON), or
/// [`MqttMessage`]s on their own topics.
pub struct MqttRawSink {
    core: Core,
}

impl std::fmt::Debug for MqttRawSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttRawSink")
            .field("name", &self.core.name)
            .finish_non_exhaustive()
    }
}

impl MqttRawSink {
    /// Connects (in the background; `write` waits for the connection).
    pub fn new(config: MqttSinkConfig) -> Result<Self, iotflow_core::Error> {
        let name = format!("mqtt {}", config.url);
        Ok(MqttRawSink {
            core: Core::new(&config).map_err(|e| e.into_sink_error(&name))?,
        })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<MqttSinkStats> {
        self.core.stats.clone()
    }

    /// QoS 1 messages not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.core.publisher.as_ref().map_or(0, Publisher::unacked)
    }
}

impl Sink<Vec<u8>> for MqttRawSink {
    fn write(&mut self, batch: &[Vec<u8>]) -> iotflow_core::Result<()> {
        self.core.write_with(batch, |template, payload| {
            let topic = match template.fixed() {
                Some(t) => t,
                None => {
                    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
                        format!("payload is not JSON, but the topic template needs its fields: {e}")
                    })?;
                    template.render(&v)?
                }
            };
            Ok((topic, payload.clone()))
        })
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.core.close()
    }
}

impl Sink<MqttMessage> for MqttRawSink {
    fn write(&mut self, batch: &[MqttMessage]) -> iotflow_core::Result<()> {
        self.core.write_with(batch, |_, m| {
            if m.topic.is_empty() || m.topic.contains(['+', '#', '\0']) {
                return Err(format!("topic {:?} is not a publish topic", m.topic));
            }
            Ok((m.topic.clone(), m.payload.clone()))
        })
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        self.core.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_records_fill_the_template() {
        let t = TopicTemplate::parse("devices/{device}/metrics/{metric}").expect("parses");
        let r = iotflow_types::Reading::new("d-7", 1_000, "temp", 20.5);
        let (topic, payload) = encode_json(&t, &r).expect("encodes");
        assert_eq!(topic, "devices/d-7/metrics/temp");
        let back: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(back["value"], json!(20.5));
        let missing = encode_json(&t, &json!({"device": "d"})).expect_err("no metric");
        assert!(missing.contains("`metric`"), "{missing}");
        let fixed = TopicTemplate::parse("all").expect("parses");
        assert_eq!(encode_json(&fixed, &json!([1])).expect("encodes").0, "all");
    }

    #[test]
    fn bad_sink_settings_are_config_errors() {
        for c in [
            MqttSinkConfig::default(),
            MqttSinkConfig {
                topic: "a/#".into(),
                ..MqttSinkConfig::default()
            },
            MqttSinkConfig {
                topic: "a".into(),
                qos: 2,
                ..MqttSinkConfig::default()
            },
        ] {
            assert!(matches!(
                MqttRawSink::new(c),
                Err(iotflow_core::Error::Config(_))
            ));
        }
    }
}
