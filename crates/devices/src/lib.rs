//! The iotflow device registry: who may send, for whom, and how they prove it.
//!
//! # What it holds
//!
//! A [`Registry`] stores **tenants**, the **devices** they own (id, name,
//! type, [`DeviceStatus`], firmware version, JSON metadata, created/updated/
//! last-seen times), **groups** of devices within a tenant, and each device's
//! **credentials**. It runs on an embedded SQLite file by default
//! ([`Registry::open_in`] a data directory; the file is created on first use)
//! and on PostgreSQL in production ([`RegistryBuilder::new`] with a
//! `postgres://` URL). Both run the *same* queries and the same migrations
//! (`migrations/`, portable SQL through sqlx's `Any` driver): times are Unix
//! milliseconds in `BIGINT`, metadata is JSON in `TEXT`.
//!
//! With the cargo feature **`dynamodb`** it also runs on one DynamoDB table
//! (`dynamodb://TABLE?region=…&endpoint=…`, created on first use), with the
//! same API and the same guarantees — uniqueness, transactions, the change
//! log's order, replay protection — through conditional writes and
//! `TransactWriteItems`. What differs (bulk provisioning beyond one
//! transaction, size limits, costs) is listed with the table layout in the
#![cfg_attr(feature = "dynamodb", doc = "[`dynamodb`] module.")]
#![cfg_attr(not(feature = "dynamodb"), doc = "`dynamodb` module.")]
//!
//! Devices are registered one by one ([`Registry::register_device`]) or in
//! bulk from CSV ([`Registry::provision_csv`], all or nothing).
//!
//! # Credentials
//!
//! - **HMAC-SHA256 keys** ([`Registry::issue_hmac_key`],
//!   [`Registry::rotate_hmac_key`]): 32 random bytes, returned once as base64
//!   in an [`IssuedHmacKey`]. Verification needs the key itself, so the
//!   registry keeps it *sealed* (ChaCha20-Poly1305 under a [`MasterKey`] that
//!   lives outside the database, bound to the key id): no API reads a key
//!   back, and a copy of the database alone does not reveal one.
//! - **JWT public keys** ([`Registry::add_jwt_key`]), ES256 or EdDSA, PEM.
//! - **Client-certificate fingerprints** ([`Registry::add_certificate`]) for mTLS.
//!
//! Any credential can be revoked ([`Registry::revoke_credential`]).
//!
//! # Authentication
//!
//! An [`Authenticator`] ([`Registry::authenticator`]) is what every ingest
//! path calls: [`Authenticator::verify_hmac`] for signed messages (timestamp
//! window and nonce replay protection), [`Authenticator::verify_jwt`],
//! [`Authenticator::verify_certificate`]. Each returns an [`Identity`] or an
//! [`Error::Rejected`] carrying a [`Rejection`] with a stable code
//! (`bad_signature`, `expired_timestamp`, `replayed_nonce`, `wrong_device`,
//! `revoked_key`, `unknown_certificate`, …). [`Identity::authorize`] then
//! checks that a device sends only for its own id and tenant.
//!
//! Time comes from an injected [`Clock`](iotflow_core::clock::Clock) whose
//! origin is the Unix epoch ([`UnixClock`] by default), so tests move it by hand.
//!
//! ```no_run
//! # async fn demo() -> Result<(), iotflow_devices::Error> {
//! use iotflow_devices::{AuthConfig, NewDevice, Registry, SignedMessage, sign_message};
//!
//! let registry = Registry::open_in(std::path::Path::new("data")).await?;
//! registry.create_tenant("acme", "Acme Corp").await?;
//! let device = registry.register_device(NewDevice::new("acme", "Pump 1", "pump")).await?;
//! let key = registry.issue_hmac_key(&device.id).await?; // give key.secret() to the device
//!
//! // On the device:
//! let body = br#"{"temp":21.5}"#;
//! let ts = 1_767_225_600_000;
//! let signature = sign_message(key.secret(), &device.id, &key.key_id, ts, "n-1", body)?;
//!
//! // At ingest:
//! let auth = registry.authenticator(AuthConfig::default());
//! let who = auth
//!     .verify_hmac(&SignedMessage {
//!         device_id: &device.id,
//!         key_id: &key.key_id,
//!         timestamp_ms: ts,
//!         nonce: "n-1",
//!         signature: &signature,
//!         body,
//!     })
//!     .await?;
//! who.authorize(&device.id, "acme")?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
// Without the `dynamodb` feature the backend dispatch
// (`let pool = match store { Store::Sql(pool) => pool, Store::Dynamo(db) => return … }`)
// has a single arm; that is the dispatch, not a destructuring to simplify.
#![cfg_attr(
    not(feature = "dynamodb"),
    allow(clippy::infallible_destructuring_match)
)]

mod auth;
mod changes;
mod credentials;
mod crypto;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod error;
mod feed;
mod groups;
mod model;
mod provision;
mod query;
mod registry;

pub use auth::{AuthConfig, AuthMethod, Authenticator, Identity, SignedMessage, sign_message};
pub use changes::{Snapshot, device_info};
pub use credentials::{CertificateFingerprint, CredentialInfo, CredentialKind, IssuedHmacKey};
pub use crypto::{MASTER_KEY_ENV, MasterKey};
pub use error::{Error, Rejection, Result};
pub use feed::{FeedConfig, FeedHandle, registry_updates};
pub use model::{Device, DeviceStatus, Group, NewDevice, Tenant};
pub use provision::Provisioned;
pub use query::{DEFAULT_PAGE, DeviceFilter, DevicePage, MAX_PAGE};
pub use registry::{Registry, RegistryBuilder, UnixClock};
