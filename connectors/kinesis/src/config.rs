//! Configuration of the Kinesis source and sink (serde; every default is
//! documented on its field).

use serde::{Deserialize, Serialize};

use crate::Error;

/// Kinesis's limit on one record: data plus partition key.
pub(crate) const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Kinesis's limit on records per `PutRecords` request.
pub(crate) const MAX_BATCH_RECORDS: usize = 500;
/// Kinesis's limit on the bytes of one `PutRecords` request (data plus keys).
pub(crate) const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Kinesis's limit on records per `GetRecords` call.
const MAX_GET_RECORDS: u32 = 10_000;

/// Where the source starts reading a shard it has no checkpointed position
/// for.
///
/// In TOML: `start = "trim_horizon"`, `start = "latest"` or
/// `start = { at_timestamp = 1700000000000 }` (ms since the Unix epoch).
/// It applies to every shard listed when the source starts that has no
/// checkpointed position (closed parents and their open children alike, so
/// `latest` does not replay the children's history). Shards created later,
/// and shards descending from one the checkpoint was in the middle of, are
/// read from their beginning, so resharding loses nothing. After a restore
/// with `latest`, a shard that had no record consumed before the checkpoint
/// starts at the latest record again: records put to it while the job was
/// down are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still retained (the default).
    #[default]
    TrimHorizon,
    /// Only records put after the source started.
    Latest,
    /// The first record that arrived at or after this time (ms since the
    /// Unix epoch).
    AtTimestamp(i64),
}

/// Static credentials, for local servers (moto, kinesalite) and tests.
///
/// Without them the AWS default chain is used (environment, profile, web
/// identity, instance metadata).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (never logged).
    pub secret_access_key: String,
    /// A session token for temporary credentials; none by default.
    #[serde(default)]
    pub session_token: Option<String>,
}

impl KinesisCredentials {
    /// Static credentials without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        KinesisCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }
}

impl std::fmt::Debug for KinesisCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Configuration of [`KinesisSource`](crate::KinesisSource).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KinesisSourceConfig {
    /// The stream to read (required).
    pub stream: String,
    /// Endpoint URL of a Kinesis-compatible server (moto, kinesalite,
    /// LocalStack); the AWS endpoint of the region when absent (default).
    pub endpoint_url: Option<String>,
    /// AWS region; from the environment / profile when absent (default).
    pub region: Option<String>,
    /// Static credentials; the AWS default chain when absent (default).
    pub credentials: Option<KinesisCredentials>,
    /// Where shards without a checkpointed position start (default
    /// `trim_horizon`).
    pub start: StartPosition,
    /// Pause before polling a shard again after a `GetRecords` that
    /// returned nothing new, in ms (default 1000; Kinesis allows 5 calls per
    /// shard and second).
    pub poll_interval_ms: u64,
    /// Most records per `GetRecords` call, 1..=10000 (default 1000).
    pub max_records: u32,
    /// Bounded mode: read each shard up to the end it had when the source
    /// started, announce it done, and return once all owned shards are done
    /// (default false: read forever, following resharding).
    pub stop_at_end: bool,
    /// How often to re-list shards to find children of splits and merges,
    /// in ms (default 10000); shards are also re-listed as soon as one of
    /// this worker's shards closes. Unused in bounded mode, which reads the
    /// shards listed at start.
    pub list_interval_ms: u64,
    /// How long a merged child waits for an adjacent parent owned by a worker
    /// this process cannot see finish (another process of a cluster), after
    /// its own parents are done, in ms (default 300000). See the crate docs.
    pub foreign_parent_timeout_ms: u64,
    /// Network errors and server faults tolerated in a row before the source
    /// fails (default 20); throttling does not count.
    pub max_consecutive_errors: u32,
    /// First retry delay after throttling or a transient error, in ms
    /// (default 100); doubles per retry, with jitter.
    pub backoff_base_ms: u64,
    /// Largest retry delay, in ms (default 10000).
    pub backoff_max_ms: u64,
    /// Timeout of one API call, in ms (default 30000).
    pub request_timeout_ms: u64,
}

impl Default for KinesisSourceConfig {
    fn default() -> Self {
        KinesisSourceConfig {
            stream: String::new(),
            endpoint_url: None,
            region: None,
            credentials: None,
            start: StartPosition::TrimHorizon,
            poll_interval_ms: 1000,
            max_records: 1000,
            stop_at_end: false,
            list_interval_ms: 10_000,
            foreign_parent_timeout_ms: 300_000,
            max_consecutive_errors: 20,
            backoff_base_ms: 100,
            backoff_max_ms: 10_000,
            request_timeout_ms: 30_000,
        }
    }
}

impl KinesisSourceConfig {
    /// A configuration reading `stream` with every other field at its
    /// default.
    pub fn new(stream: impl Into<String>) -> Self {
        KinesisSourceConfig {
            stream: stream.into(),
            ..KinesisSourceConfig::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), Error> {
        validate_stream(&self.stream)?;
        if !(1..=MAX_GET_RECORDS).contains(&self.max_records) {
            return Err(Error::Config(format!(
                "max_records must be within 1..={MAX_GET_RECORDS}, not {}",
                self.max_records
            )));
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            return Err(Error::Config(
                "backoff_base_ms must be > 0 and <= backoff_max_ms".into(),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(Error::Config("request_timeout_ms must be > 0".into()));
        }
        Ok(())
    }
}

/// Which partition key the sink gives a record.
///
/// In TOML: `partition_key = "device"`, `partition_key = "round_robin"` or
/// `partition_key = { pointer = "/key/device" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKey {
    /// The record's device id: its JSON field `device_id` (readings on the
    /// wire), else `device` (readings and alerts as iotflow serializes them),
    /// else `key.device` (window results). Records without one get a
    /// round-robin key. The default.
    #[default]
    Device,
    /// The value at this JSON pointer (RFC 6901) of the serialized record, a
    /// string or a number; round-robin when absent.
    Pointer(String),
    /// A counter, spreading records evenly over the shards (no per-key
    /// order).
    RoundRobin,
}

/// Configuration of [`KinesisSink`](crate::KinesisSink) and
/// [`KinesisRawSink`](crate::KinesisRawSink).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KinesisSinkConfig {
    /// The stream to write (required).
    pub stream: String,
    /// Endpoint URL of a Kinesis-compatible server; the AWS endpoint of the
    /// region when absent (default).
    pub endpoint_url: Option<String>,
    /// AWS region; from the environment / profile when absent (default).
    pub region: Option<String>,
    /// Static credentials; the AWS default chain when absent (default).
    pub credentials: Option<KinesisCredentials>,
    /// How records get their partition key (default `device`).
    pub partition_key: PartitionKey,
    /// Most records per `PutRecords` request, 1..=500 (default 500).
    pub max_batch_records: usize,
    /// Most bytes (data plus partition keys) per request, up to 5 MiB
    /// (default 5 MiB).
    pub max_batch_bytes: usize,
    /// Retries of failed entries (or of a failed request) before the sink
    /// gives up and fails (default 8).
    pub max_retries: u32,
    /// First retry delay, in ms (default 100); doubles per retry, with
    /// jitter.
    pub backoff_base_ms: u64,
    /// Largest retry delay, in ms (default 5000).
    pub backoff_max_ms: u64,
    /// Timeout of one API call, in ms (default 30000).
    pub request_timeout_ms: u64,
}

impl Default for KinesisSinkConfig {
    fn default() -> Self {
        KinesisSinkConfig {
            stream: String::new(),
            endpoint_url: None,
            region: None,
            credentials: None,
            partition_key: PartitionKey::Device,
            max_batch_records: MAX_BATCH_RECORDS,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_retries: 8,
            backoff_base_ms: 100,
            backoff_max_ms: 5000,
            request_timeout_ms: 30_000,
        }
    }
}

impl KinesisSinkConfig {
    /// A configuration writing `stream` with every other field at its
    /// default.
    pub fn new(stream: impl Into<String>) -> Self {
        KinesisSinkConfig {
            stream: stream.into(),
            ..KinesisSinkConfig::default()
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), Error> {
        validate_stream(&self.stream)?;
        if !(1..=MAX_BATCH_RECORDS).contains(&self.max_batch_records) {
            return Err(Error::Config(format!(
                "max_batch_records must be within 1..={MAX_BATCH_RECORDS}, not {}",
                self.max_batch_records
            )));
        }
        if !(MAX_RECORD_BYTES..=MAX_BATCH_BYTES).contains(&self.max_batch_bytes) {
            return Err(Error::Config(format!(
                "max_batch_bytes must be within {MAX_RECORD_BYTES}..={MAX_BATCH_BYTES} \
                 (one record may take 1 MiB), not {}",
                self.max_batch_bytes
            )));
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            return Err(Error::Config(
                "backoff_base_ms must be > 0 and <= backoff_max_ms".into(),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(Error::Config("request_timeout_ms must be > 0".into()));
        }
        if let PartitionKey::Pointer(p) = &self.partition_key
            && !(p.is_empty() || p.starts_with('/'))
        {
            return Err(Error::Config(format!(
                "partition_key pointer {p:?} must be empty or start with '/'"
            )));
        }
        Ok(())
    }
}

fn validate_stream(stream: &str) -> Result<(), Error> {
    let ok = (1..=128).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "stream name {stream:?} must be 1..=128 characters of [a-zA-Z0-9_.-]"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_read_from_toml_forms() {
        #[derive(Deserialize)]
        struct W {
            start: StartPosition,
        }
        let s = |t: &str| serde_json::from_str::<W>(t).map(|w| w.start);
        assert_eq!(
            s(r#"{"start":"trim_horizon"}"#).ok(),
            Some(StartPosition::TrimHorizon)
        );
        assert_eq!(s(r#"{"start":"latest"}"#).ok(), Some(StartPosition::Latest));
        assert_eq!(
            s(r#"{"start":{"at_timestamp":1700000000000}}"#).ok(),
            Some(StartPosition::AtTimestamp(1_700_000_000_000))
        );
        assert!(s(r#"{"start":"earliest"}"#).is_err());
    }

    #[test]
    fn source_config_defaults_and_unknown_fields() {
        let c: KinesisSourceConfig = serde_json::from_str(r#"{"stream":"s"}"#).unwrap_or_default();
        assert_eq!(c, KinesisSourceConfig::new("s"));
        assert!(c.validate().is_ok());
        assert!(
            serde_json::from_str::<KinesisSourceConfig>(r#"{"stream":"s","strem":1}"#).is_err()
        );
        assert!(KinesisSourceConfig::new("").validate().is_err());
        assert!(KinesisSourceConfig::new("a b").validate().is_err());
        let mut c = KinesisSourceConfig::new("s");
        c.max_records = 10_001;
        assert!(c.validate().is_err());
    }

    #[test]
    fn sink_config_checks_limits() {
        let mut c = KinesisSinkConfig::new("s");
        assert!(c.validate().is_ok());
        c.max_batch_records = 501;
        assert!(c.validate().is_err());
        c.max_batch_records = 10;
        c.max_batch_bytes = MAX_BATCH_BYTES + 1;
        assert!(c.validate().is_err());
        c.max_batch_bytes = MAX_BATCH_BYTES;
        c.partition_key = PartitionKey::Pointer("key".into());
        assert!(c.validate().is_err());
        let p: KinesisSinkConfig =
            serde_json::from_str(r#"{"stream":"s","partition_key":{"pointer":"/key/device"}}"#)
                .unwrap_or_default();
        assert_eq!(p.partition_key, PartitionKey::Pointer("/key/device".into()));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = KinesisCredentials::new("AKIA", "very-secret");
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIA") && !shown.contains("very-secret"));
    }
}
