//! The MQTT source: a persistent QoS 1 subscription whose acknowledgements
//! wait for checkpoints.

mod acks;
mod poll;
mod reader;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Commits, Position, Resume, Source};
use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::QoS;
use serde::{Deserialize, Serialize};

use crate::backoff::BackoffConfig;
use crate::connection::{Endpoint, TlsConfig};
use crate::error::MqttError;

/// Configuration of an [`MqttSource`].
///
/// ```toml
/// url = "mqtts://broker.example:8883"
/// topics = ["devices/+/metrics/#"]
/// client_id = "fleet-job"
/// tls = { ca_file = "ca.crt", client_cert_file = "job.crt", client_key_file = "job.key" }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSourceConfig {
    /// Broker: `mqtt://host[:port]` (default port 1883) or
    /// `mqtts://host[:port]` (TLS, default port 8883).
    /// Default `mqtt://127.0.0.1:1883`.
    pub url: String,
    /// Topic filters to subscribe to; `+` and `#` wildcards allowed.
    /// Required (at least one).
    pub topics: Vec<String>,
    /// MQTT client id, and so the broker's session for this job: keep it
    /// stable across restarts (unacknowledged messages wait in the session)
    /// and unique among the broker's clients. Default `iotflow`.
    pub client_id: String,
    /// Subscription QoS: 1 (default; at least once, acknowledged after
    /// checkpoints) or 0 (at most once, nothing to acknowledge).
    pub qos: u8,
    /// Username, if the broker wants one. Default none.
    pub username: Option<String>,
    /// Password for `username`. Default none.
    pub password: Option<String>,
    /// TLS files for `mqtts://` (CA, optional client certificate and key
    /// for mutual TLS). Default: system roots, no client certificate.
    pub tls: Option<TlsConfig>,
    /// Keep-alive interval, seconds, at least 5 (default 30).
    pub keep_alive_secs: u64,
    /// Time allowed for a TCP+TLS+CONNECT handshake, seconds (default 10).
    pub connect_timeout_secs: u64,
    /// How long the broker keeps the session (subscriptions and queued
    /// messages) while the job is away, seconds. Default `u32::MAX`:
    /// never expires.
    pub session_expiry_secs: u32,
    /// MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the
    /// broker may have in flight to us (1–65535, default 65535). Messages
    /// stay unacknowledged until a checkpoint completes, so this bounds
    /// both the source's memory and the messages per checkpoint interval.
    pub receive_maximum: u16,
    /// Shared subscription group: every worker subscribes to
    /// `$share/{group}/{filter}` with client id `{client_id}-{worker}`, and
    /// the broker spreads messages over them. Default none: only worker 0
    /// subscribes (one session, in order).
    pub shared_group: Option<String>,
    /// A chunk is sent once it holds this many bytes (default 65 536)…
    pub max_chunk_bytes: usize,
    /// …or its first message has waited this long, ms (default 5).
    pub linger_ms: u64,
    /// Backoff between reconnection attempts.
    pub reconnect: BackoffConfig,
    /// End the source once it is connected and no message has arrived for
    /// this long (counted from the last message or the last connection,
    /// never while reconnecting), ms. For tests and one-off drains; no
    /// `Done` position is written, so a later run reads on. Default none:
    /// run until the job stops.
    pub stop_after_idle_ms: Option<u64>,
    /// When the job stops, how long to wait for its final checkpoint before
    /// leaving what it holds unacknowledged (redelivered next run),
    /// seconds (default 30).
    pub final_commit_wait_secs: u64,
}

impl Default for MqttSourceConfig {
    fn default() -> Self {
        MqttSourceConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            topics: Vec::new(),
            client_id: "iotflow".into(),
            qos: 1,
            username: None,
            password: None,
            tls: None,
            keep_alive_secs: 30,
            connect_timeout_secs: 10,
            session_expiry_secs: u32::MAX,
            receive_maximum: u16::MAX,
            shared_group: None,
            max_chunk_bytes: 64 * 1024,
            linger_ms: 5,
            reconnect: BackoffConfig::default(),
            stop_after_idle_ms: None,
            final_commit_wait_secs: 30,
        }
    }
}

/// Counters of a running source (shared; read them any time).
#[derive(Debug, Default)]
pub struct MqttSourceStats {
    /// Messages put into chunks for the pipeline.
    pub messages: AtomicU64,
    /// Payload bytes put into chunks for the pipeline.
    pub bytes: AtomicU64,
    /// Empty or whitespace-only payloads (sent as a 0x00 line).
    pub empty_payloads: AtomicU64,
    /// Messages the broker sent again (DUP flag) that had not been seen in
    /// this run, so were handed on (duplicates downstream, at least once).
    pub redelivered: AtomicU64,
    /// Redeliveries after a reconnect of messages already handed on in
    /// this run: acknowledged with the original, not handed on again.
    pub redeliveries_skipped: AtomicU64,
    /// Chunks sent (not counting announcements).
    pub chunks: AtomicU64,
    /// Successful connections (CONNACK).
    pub connects: AtomicU64,
    /// Successful subscriptions (SUBACK).
    pub subscriptions: AtomicU64,
    /// Lost connections and failed connection attempts.
    pub reconnects: AtomicU64,
    /// Messages acknowledged (PUBACK queued to the broker).
    pub acks: AtomicU64,
    /// Completed checkpoints whose messages were acknowledged.
    pub commits: AtomicU64,
}

/// Reads MQTT messages into chunks, one message per line.
///
/// * **Partition and position.** One partition per MQTT session, keyed
///   `mqtt:{client_id}`; its position is `Position::Offset(n)`, the number
///   of messages delivered so far, cumulative over restarts (it starts
///   from the restored value). A chunk's `offset` is the number of the
///   first message in it, counting from 0.
/// * **Acknowledgements.** The session is persistent (clean start off,
///   [`session_expiry_secs`](MqttSourceConfig::session_expiry_secs)) and
///   acks are manual. With [`attach_commits`](Source::attach_commits) a
///   message is acknowledged only once a completed checkpoint's position
///   covers it: a job that crashes gets everything after its last
///   checkpoint again from the broker. Without checkpointing a message is
///   acknowledged once its chunk is handed to the pipeline (at least once:
///   a crash loses what the pipeline had not finished). Either way MQTT
///   delivery is at least once: a message may come again after a
///   reconnect or a restart.
/// * **Flow control.** MQTT 5 with Receive Maximum
///   [`receive_maximum`](MqttSourceConfig::receive_maximum): the broker
///   stops sending when that many messages are unacknowledged, which
///   bounds memory. (With MQTT 3.1.1 the broker's own cap, mosquitto's
///   `max_inflight_messages` default 20, would stall the source between
///   checkpoints; MQTT 5 lets the client raise it.) The broker must also
///   not drop what it queues for the session: mosquitto's
///   `max_queued_messages` (default 1000) must be 0 or large.
/// * **Workers.** Only worker 0 subscribes; other workers return at once.
///   With [`shared_group`](MqttSourceConfig::shared_group) every worker
///   has its own session `{client_id}-{worker}` in a shared subscription
///   (mosquitto ≥ 1.6 supports `$share` for MQTT 5).
/// * **Reconnects.** Lost connections are retried forever with
///   exponential backoff and jitter; refused credentials, certificates or
///   subscriptions end the source with an error.
/// * **Payloads.** `\n` and `\r` inside a payload become spaces; an empty
///   payload becomes a single 0x00 byte, which the pipeline's decoder
///   rejects as `invalid_json` into the dead-letter output.
/// * **End.** The source runs until the job stops, or, with
///   [`stop_after_idle_ms`](MqttSourceConfig::stop_after_idle_ms), until
///   no message arrived for that long.
pub struct MqttSource {
    config: MqttSourceConfig,
    client_id: String,
    key: Arc<str>,
    owner: bool,
    done: bool,
    start: u64,
    filters: Vec<String>,
    qos: QoS,
    options: MqttOptions,
    commits: Option<Commits>,
    stats: Arc<MqttSourceStats>,
    /// A reader whose input went idle, to finish after `run`.
    ending: Option<reader::Reader>,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("url", &self.config.url)
            .field("client_id", &self.client_id)
            .field("owner", &self.owner)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl MqttSource {
    /// A source for timely worker `worker` of `peers`, resuming from the
    /// positions in `resume` (those of other partitions are ignored).
    pub fn new(
        config: MqttSourceConfig,
        worker: usize,
        peers: usize,
        resume: Vec<Resume>,
    ) -> Result<MqttSource, iotflow_core::Error> {
        let name = format!("mqtt {}", config.url);
        Self::build(config, worker, peers, resume).map_err(|e| e.into_source_error(&name))
    }

    fn build(
        config: MqttSourceConfig,
        worker: usize,
        peers: usize,
        resume: Vec<Resume>,
    ) -> Result<MqttSource, MqttError> {
        if config.topics.is_empty() {
            return Err(MqttError::Config(
                "topics: at least one topic filter".into(),
            ));
        }
        for t in &config.topics {
            validate_filter(t)?;
        }
        let qos = match config.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            q => {
                return Err(MqttError::Config(format!(
                    "qos {q}: the source supports 0 and 1"
                )));
            }
        };
        if config.receive_maximum == 0 {
            return Err(MqttError::Config(
                "receive_maximum must be at least 1".into(),
            ));
        }
        if worker >= peers.max(1) {
            return Err(MqttError::Config(format!("worker {worker} of {peers}")));
        }
        let (client_id, filters, owner) = match &config.shared_group {
            Some(group) => {
                if group.is_empty() || group.contains(['/', '+', '#']) {
                    return Err(MqttError::Config(format!(
                        "shared_group {group:?}: must be non-empty without '/', '+', '#'"
                    )));
                }
                let filters = config
                    .topics
                    .iter()
                    .map(|t| format!("$share/{group}/{t}"))
                    .collect();
                (format!("{}-{worker}", config.client_id), filters, true)
            }
            None => (config.client_id.clone(), config.topics.clone(), worker == 0),
        };
        let key: Arc<str> = Arc::from(format!("mqtt:{client_id}"));
        let (mut start, mut done) = (0, false);
        for r in resume.iter().filter(|r| r.partition == key) {
            match &r.position {
                Position::Offset(n) => start = *n,
                Position::Done => done = true,
                other => {
                    tracing::warn!(partition = %key, position = ?other, "mqtt source: ignoring a position of another kind")
                }
            }
        }
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
        options.set_manual_acks(true);
        options.set_receive_maximum(Some(config.receive_maximum));
        Ok(MqttSource {
            config,
            client_id,
            key,
            owner,
            done,
            start,
            filters,
            qos,
            options,
            commits: None,
            stats: Arc::default(),
            ending: None,
        })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<MqttSourceStats> {
        self.stats.clone()
    }

    /// This source's partition key (`mqtt:{client_id}`).
    pub fn partition(&self) -> Arc<str> {
        self.key.clone()
    }

    /// Whether this worker subscribes (worker 0, or every worker with a
    /// shared group).
    pub fn is_owner(&self) -> bool {
        self.owner
    }
}

/// Checks a subscription filter: non-empty, `#` only as the whole last
/// level, `+` only as a whole level.
pub(crate) fn validate_filter(filter: &str) -> Result<(), MqttError> {
    let bad = |why: &str| MqttError::Config(format!("topic filter {filter:?}: {why}"));
    if filter.is_empty() {
        return Err(bad("empty"));
    }
    if filter.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(bad("'#' must be the whole last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(bad("'+' must be a whole level"));
        }
    }
    Ok(())
}

impl Source for MqttSource {
    fn name(&self) -> String {
        format!("mqtt {} {}", self.config.url, self.client_id)
    }

    fn attach_commits(&mut self, commits: Commits) {
        self.commits = Some(commits);
    }

    fn run(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> iotflow_core::Result<()> {
        if !self.owner {
            tracing::debug!(client_id = %self.client_id, "mqtt source: not worker 0 and no shared_group; nothing to read");
            return Ok(());
        }
        if self.done {
            tracing::info!(partition = %self.key, "mqtt source: partition restored as done; not reading it");
            return Ok(());
        }
        let name = self.name();
        self.ending = reader::Reader::start(self)
            .and_then(|r| r.run(out))
            .map_err(|e| e.into_source_error(&name))?;
        Ok(())
    }

    fn finish(&mut self) {
        if let Some(reader) = self.ending.take()
            && let Err(e) = reader.finish()
        {
            tracing::warn!(partition = %self.key, error = %e, "mqtt source: final acknowledgement failed; the broker will redeliver what is unacknowledged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(topics: &[&str]) -> MqttSourceConfig {
        MqttSourceConfig {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            client_id: "job".into(),
            ..MqttSourceConfig::default()
        }
    }

    #[test]
    fn filters_are_validated() {
        for ok in ["a/b", "a/+/c", "a/#", "#", "+", "+/+/#", "/a"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "a/+x/c", "x\0"] {
            assert!(validate_filter(bad).is_err(), "{bad:?}");
        }
        assert!(MqttSource::new(config(&[]), 0, 1, vec![]).is_err());
        assert!(MqttSource::new(config(&["a/#/b"]), 0, 1, vec![]).is_err());
    }

    #[test]
    fn only_worker_zero_reads_unless_shared() {
        let s0 = MqttSource::new(config(&["a/#"]), 0, 2, vec![]).expect("valid");
        let s1 = MqttSource::new(config(&["a/#"]), 1, 2, vec![]).expect("valid");
        assert!(s0.is_owner() && !s1.is_owner());
        assert_eq!(&*s0.partition(), "mqtt:job");
        let shared = MqttSourceConfig {
            shared_group: Some("g".into()),
            ..config(&["a/#", "b/+"])
        };
        let s1 = MqttSource::new(shared, 1, 2, vec![]).expect("valid");
        assert!(s1.is_owner());
        assert_eq!(&*s1.partition(), "mqtt:job-1");
        assert_eq!(s1.filters, vec!["$share/g/a/#", "$share/g/b/+"]);
        let bad = MqttSourceConfig {
            shared_group: Some("g/h".into()),
            ..config(&["a"])
        };
        assert!(MqttSource::new(bad, 0, 1, vec![]).is_err());
    }

    #[test]
    fn resumes_from_its_own_partition_only() {
        let resume = vec![
            Resume {
                partition: Arc::from("mqtt:other"),
                position: Position::Offset(99),
            },
            Resume {
                partition: Arc::from("mqtt:job"),
                position: Position::Offset(42),
            },
        ];
        let s = MqttSource::new(config(&["a"]), 0, 1, resume).expect("valid");
        assert_eq!(s.start, 42);
        assert!(!s.done);
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let c = MqttSourceConfig {
            qos: 2,
            ..config(&["a"])
        };
        assert!(matches!(
            MqttSource::new(c, 0, 1, vec![]),
            Err(iotflow_core::Error::Config(_))
        ));
        let c = MqttSourceConfig {
            keep_alive_secs: 1,
            ..config(&["a"])
        };
        assert!(MqttSource::new(c, 0, 1, vec![]).is_err());
        let parsed: MqttSourceConfig =
            serde_json::from_str(r#"{"topics":["a/#"],"client_id":"x"}"#).expect("parses");
        assert_eq!(parsed.receive_maximum, u16::MAX);
        assert!(serde_json::from_str::<MqttSourceConfig>(r#"{"topic":"a"}"#).is_err());
    }
}
