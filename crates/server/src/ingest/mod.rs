//! HTTP ingest: devices post readings, a pipeline reads them.
//!
//! # The path of a reading
//!
//! ```text
//! device ──POST /ingest, /ingest/batch──▶ route ──▶ IngestQueue ──▶ IngestSource ──▶ pipeline
//!          (HMAC or JWT)                  (auth, JSON   (bounded,       (worker 0,
//!                                          shape)        readings)       chunks)
//! ```
//!
//! 1. **Authentication** (`ingest.auth = "device"`, the default) goes
//!    through the registry's [`Authenticator`](iotflow_devices::Authenticator).
//!    A device proves itself in one of two ways:
//!    - **HMAC**: the headers `X-Iotflow-Device` (its id), `X-Iotflow-Key-Id`,
//!      `X-Iotflow-Timestamp` (Unix ms), `X-Iotflow-Nonce` and
//!      `X-Iotflow-Signature`, the base64 HMAC-SHA256 that
//!      [`iotflow_devices::sign_message`] computes over those four values and
//!      the **exact body bytes**. The timestamp must be within the replay
//!      window (`ingest.replay_window_secs`) and the nonce new: every
//!      request, retries included, is signed afresh.
//!    - **JWT**: `Authorization: Bearer <token>`, ES256 or EdDSA with the
//!      device's registered key as `kid`, `sub` the device, `tenant` its
//!      tenant, `exp` required.
//!
//!    Missing or refused credentials get `401` with the reason's code
//!    (`unauthorized`, `bad_signature`, `unknown_key`, `expired_timestamp`,
//!    `replayed_nonce`, `revoked_key`, `device_disabled`, `bad_token`,
//!    `expired_token`, …). Every reading's `device_id` must then be the
//!    authenticated device's (the registry has no gateway identities):
//!    otherwise `403 wrong_device` and nothing of the request is queued.
//!    Ingest routes take no API token. `ingest.auth = "none"` skips all of
//!    this, for local demos only.
//! 2. **The door checks shape, not content**: the body must be JSON (one
//!    object; an array of objects; or one object per line, NDJSON) within
//!    `max_body_bytes` (`413`). Else `400 malformed_body` and nothing is
//!    queued. A reading with missing, mistyped or out-of-range fields is
//!    *forwarded*: the pipeline's decoder rejects it into the dead-letter
//!    output with its reason. Each reading travels as one compact JSON line.
//! 3. **The queue is bounded** in readings (`ingest.queue_capacity`). A
//!    request is queued whole or not at all: if its readings do not all
//!    fit, it gets `503 queue_full` with `Retry-After`
//!    (`ingest.retry_after_secs`) and nothing of it is queued. An accepted
//!    request gets `202 {"accepted": n}`. Nothing accepted is dropped to
//!    make room; a request larger than the whole queue gets `413`.
//! 4. **[`IngestSource`]** drains the queue into the pipeline, on worker 0,
//!    as partition [`INGEST_PARTITION`].
//!
//! # What `202` promises
//!
//! `202 Accepted` means *queued*, not *stored*. HTTP has no replay: a
//! reading is durable once a checkpoint containing it completes; readings
//! accepted but not yet checkpointed are lost if the process crashes, and
//! readings still queued when the pipeline stops are lost and counted
//! ([`IngestStats::lost_readings`]). A graceful stop loses nothing: the
//! server stops taking requests, closes the queue, and the source delivers
//! everything queued before the pipeline's input ends.
//! [`IngestStats`] (`GET /ingest/stats`, or [`IngestStats::prometheus`])
//! shows the queue depth and the checkpointed position.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use iotflow_devices::Registry;
//! use iotflow_server::{IngestQueue, Server, ServerConfig};
//!
//! let registry = Registry::open_in(std::path::Path::new("data")).await?;
//! let config = ServerConfig::from_toml(
//!     r#"
//!     [[tokens]]
//!     name = "ops"
//!     token = "change-me-to-a-long-random-string"
//!     [ingest]
//!     queue_capacity = 100000
//!     "#,
//! )?;
//! let (queue, source) = IngestQueue::from_config(&config.ingest);
//! // Run `source` as worker 0's source of a pipeline job (on its own thread)...
//! # drop(source);
//! Server::bind(&config, registry).await?.with_ingest(queue).run().await?;
//! // ...the server closed the queue on its way out: the source ends.
//! # Ok(()) }
//! ```

mod body;
mod http;
mod queue;
mod source;
mod stats;

pub use http::{HEADER_DEVICE, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
pub(crate) use http::{Ingest, post_batch, post_one, stats};
pub use queue::IngestQueue;
pub use source::{INGEST_PARTITION, IngestSource};
pub use stats::IngestStats;
