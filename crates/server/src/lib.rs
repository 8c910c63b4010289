//! iotflow's HTTP server: the device-registry API and HTTP ingest.
//!
//! # What it serves
//!
//! A JSON API over an [`iotflow_devices::Registry`] for the people and
//! tools that run a fleet: tenants, devices (register one, provision many
//! from CSV, look up, list with filters and keyset pages, change status,
//! firmware version and metadata), groups and their members, and device
//! credentials (issue and rotate HMAC keys, register JWT public keys and
//! client certificates, list, revoke). `GET /openapi.json` describes every
//! route, parameter, body and response as an OpenAPI 3.1 document;
//! `GET /healthz` answers while the process serves.
//!
//! Devices post readings to `POST /ingest` (one) and `POST /ingest/batch`
//! (a JSON array or NDJSON), authenticated by their own credentials (HMAC
//! signature or JWT, no API token); a bounded [`IngestQueue`] hands them to
//! a pipeline through its [`IngestSource`]. See the [`ingest`] module.
//!
//! | route | scope |
//! |---|---|
//! | `POST /tenants`, `GET /tenants`, `GET /tenants/{id}` | admin, read, read |
//! | `POST /tenants/{id}/groups`, `GET /tenants/{id}/groups` | admin, read |
//! | `GET /groups/{id}`, `PUT`/`DELETE /groups/{id}/devices/{device}` | read, admin |
//! | `POST /devices`, `GET /devices?tenant=&group=&status=&type=&after=&limit=` | admin, read |
//! | `POST /devices/bulk?issue_keys=true` (CSV body) | admin |
//! | `GET`/`PATCH /devices/{id}`, `PUT /devices/{id}/status` | read, admin |
//! | `GET /devices/{id}/credentials` | read |
//! | `POST /devices/{id}/credentials/{hmac, hmac/rotate, jwt, certificates}` | admin |
//! | `DELETE /credentials/{id}` | admin |
//! | `POST /ingest`, `POST /ingest/batch` | device (HMAC or JWT; `ingest.auth = "none"`: none) |
//! | `GET /ingest/stats` | read |
//! | `GET /healthz`, `GET /openapi.json` | none |
//!
//! # How it guards itself
//!
//! - **Tokens.** Every route but the ingest routes and the last two needs
//!   `Authorization: Bearer <token>` with a token from
//!   [`ServerConfig::tokens`]; `read` tokens may
//!   call `GET` routes, `admin` tokens every route. Tokens are compared in
//!   constant time (HMAC tags under a per-process key). A missing or unknown
//!   token gets `401` with `WWW-Authenticate: Bearer`; a `read` token on an
//!   admin route gets `403`.
//! - **One error shape.** Every failure, including malformed JSON, unknown
//!   fields, bad query strings, unknown routes and wrong methods, is
//!   `{"error": {"code": "...", "message": "..."}}` with its status: `400`
//!   (`malformed_body`, `invalid_query`, `invalid_path`, `invalid_input`),
//!   `401`, `403`, `404` (`not_found`), `405`, `409` (`already_exists`),
//!   `413` (`payload_too_large`, past [`ServerConfig::max_body_bytes`]),
//!   `415` (`unsupported_media_type`), `500` (`internal`: the cause is logged
//!   with `tracing`, never shown) and `503` (`unavailable`, with
//!   `Retry-After`, when the database is unreachable or its pool exhausted).
//!   Ingest adds `401`/`403` with the device-authentication reason's code
//!   (`bad_signature`, `wrong_device`, …) and `503 queue_full`.
//! - **Secrets once.** HMAC keys appear only in the response that issues
//!   them (marked `Cache-Control: no-store`); listings never carry one.
//!
//! # Running it
//!
//! [`serve`] binds [`ServerConfig::bind`] (default `127.0.0.1:8080`) and
//! serves until Ctrl-C or SIGTERM, finishing requests in flight. [`Server`]
//! splits that in two for callers that need the bound address (port `0`) or
//! their own shutdown signal, and takes an ingest queue
//! ([`Server::with_ingest`]); [`router`] gives the bare [`axum::Router`] to
//! mount elsewhere (attach ingest with [`AppState::with_ingest`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use iotflow_devices::Registry;
//! use iotflow_server::ServerConfig;
//!
//! let registry = Registry::open_in(std::path::Path::new("data")).await?;
//! let config = ServerConfig::from_toml(
//!     r#"
//!     bind = "127.0.0.1:8080"
//!     [[tokens]]
//!     name = "ops"
//!     token = "change-me-to-a-long-random-string"
//!     "#,
//! )?;
//! iotflow_server::serve(config, registry).await?;
//! # Ok(()) }
//! ```
//!
//! Then, from a shell:
//!
//! ```text
//! $ curl -H 'Authorization: Bearer change-me-to-a-long-random-string' \
//!        -H 'Content-Type: application/json' \
//!        -d '{"id":"acme","name":"Acme Corp"}' http://127.0.0.1:8080/tenants
//! {"id":"acme","name":"Acme Corp","created_at":1767225600000}
//! ```

#![deny(missing_docs)]

mod api_error;
mod auth;
mod config;
mod error;
mod extract;
mod handlers;
pub mod ingest;
mod openapi;
mod routes;
mod server;

pub use config::{
    ApiToken, DEFAULT_INGEST_QUEUE_CAPACITY, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CSV_BODY_BYTES,
    IngestAuth, IngestConfig, MIN_TOKEN_BYTES, Scope, ServerConfig,
};
pub use error::{Error, Result};
pub use ingest::{INGEST_PARTITION, IngestQueue, IngestSource, IngestStats};
pub use routes::{AppState, router};
pub use server::{Server, serve};
