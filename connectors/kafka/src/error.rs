//! Errors of the Kafka connector.

use rdkafka::error::KafkaError;

/// What went wrong talking to Kafka.
///
/// [`Error::Config`] is the user's to fix; the others come from the
/// brokers or the network, where a retry (of the job) may help. At the
/// [`Source`](iotflow_core::source::Source) / [`Sink`](iotflow_core::sink::Sink)
/// boundary they become [`iotflow_core::Error`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connector's configuration is invalid (or librdkafka refused a
    /// property).
    #[error("invalid Kafka configuration: {0}")]
    Config(String),
    /// A call to the brokers failed.
    #[error("kafka {op}: {source}")]
    Client {
        /// What was being done ("fetch metadata for t", "commit offsets", …).
        op: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic the source should read does not exist (or is not visible).
    #[error("kafka topic {topic}: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// Messages handed to the producer were not delivered.
    #[error("kafka topic {topic}: {failed} message(s) not delivered (first: {first})")]
    Delivery {
        /// The topic.
        topic: String,
        /// How many failed.
        failed: u64,
        /// The first failure's reason.
        first: String,
    },
}

impl Error {
    /// Wraps a librdkafka error with what was being done.
    pub(crate) fn client(op: impl Into<String>, source: KafkaError) -> Self {
        Error::Client {
            op: op.into(),
            source,
        }
    }

    /// Converts to the core error of a source reading `what` (a topic list).
    pub(crate) fn into_source_error(self, what: &str) -> iotflow_core::Error {
        match self {
            Error::Config(m) => iotflow_core::Error::Config(m),
            // The core has no source-side external variant yet: an I/O
            // error naming the topics classifies as external / retryable.
            other => iotflow_core::Error::io(
                format!("kafka:{what}"),
                std::io::Error::other(other.to_string()),
            ),
        }
    }

    /// Converts to the core error of the sink `sink`.
    pub(crate) fn into_sink_error(self, sink: &str) -> iotflow_core::Error {
        match self {
            Error::Config(m) => iotflow_core::Error::Config(m),
            other => iotflow_core::Error::Sink {
                sink: sink.to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
