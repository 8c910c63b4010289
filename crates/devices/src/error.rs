//! The crate's one error type, and the reasons an authentication is refused.

use std::fmt;

/// Why a device's credential or message was refused.
///
/// Each reason has a stable [`code`](Rejection::code) that ingest paths put in
/// responses, logs and metrics; codes never change meaning once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// The HMAC or token signature does not verify with the device's key.
    BadSignature,
    /// The message timestamp lies outside the replay window around the server clock.
    ExpiredTimestamp,
    /// The nonce was already used by this device within the replay window.
    ReplayedNonce,
    /// The credential belongs to another device than the one claimed or sent for.
    WrongDevice,
    /// The device belongs to another tenant than the one claimed or sent for.
    WrongTenant,
    /// The key or certificate was revoked.
    RevokedKey,
    /// No device has this client-certificate fingerprint.
    UnknownCertificate,
    /// No such key id, or the key is not of the kind presented.
    UnknownKey,
    /// The device exists but is not `active`.
    DeviceDisabled,
    /// The token's `exp` has passed.
    ExpiredToken,
    /// The token's `nbf` lies in the future.
    TokenNotYetValid,
    /// The token is not a well-formed ES256/EdDSA JWT with the required claims.
    BadToken,
    /// A required field is missing or malformed (nonce, timestamp, key id, base64).
    MalformedRequest,
}

impl Rejection {
    /// The stable, machine-readable code of this reason (`snake_case`).
    pub fn code(self) -> &'static str {
        match self {
            Rejection::BadSignature => "bad_signature",
            Rejection::ExpiredTimestamp => "expired_timestamp",
            Rejection::ReplayedNonce => "replayed_nonce",
            Rejection::WrongDevice => "wrong_device",
            Rejection::WrongTenant => "wrong_tenant",
            Rejection::RevokedKey => "revoked_key",
            Rejection::UnknownCertificate => "unknown_certificate",
            Rejection::UnknownKey => "unknown_key",
            Rejection::DeviceDisabled => "device_disabled",
            Rejection::ExpiredToken => "expired_token",
            Rejection::TokenNotYetValid => "token_not_yet_valid",
            Rejection::BadToken => "bad_token",
            Rejection::MalformedRequest => "malformed_request",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Errors of the device registry and of device authentication.
///
/// [`Error::Rejected`] is the device's fault and final: retrying the same
/// message is refused again. [`Error::Database`] may be transient
/// ([`Error::is_transient`]); an ingest path must treat it as "not
/// authenticated" and may retry, never as acceptance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authentication or authorization refused, for the given reason.
    #[error("authentication rejected: {0}")]
    Rejected(Rejection),
    /// A tenant, device, group or credential that was named does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// What kind of thing was looked up.
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// A tenant, device, group or certificate with this id or name exists already.
    #[error("{what} {id:?} already exists")]
    AlreadyExists {
        /// What kind of thing was created.
        what: &'static str,
        /// The id that is taken.
        id: String,
    },
    /// An argument from the caller is not valid (empty id, bad JSON, bad key).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A bulk-provisioning CSV row is not valid; nothing from the file was stored.
    #[error("provisioning CSV line {line}: {reason}")]
    Csv {
        /// 1-based line of the file (the header is line 1).
        line: u64,
        /// What is wrong with the row.
        reason: String,
    },
    /// The master key is missing or malformed, or a stored secret does not decrypt with it.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The database failed or could not be reached.
    #[error("registry database: {0}")]
    Database(#[from] sqlx::Error),
    /// DynamoDB failed, refused the request or could not be reached
    /// (the `dynamodb` backend only).
    #[error("registry DynamoDB {operation}: {message}")]
    DynamoDb {
        /// The DynamoDB operation (`TransactWriteItems`, `Query`, ...).
        operation: &'static str,
        /// What DynamoDB or the SDK said.
        message: String,
        /// Whether retrying later may succeed (throttling, timeouts,
        /// contention, service errors).
        transient: bool,
    },
    /// A bulk provisioning too large for one DynamoDB transaction stopped
    /// after some of its transactions had committed: the devices in `stored`
    /// were registered (with their groups, keys and change-log entries), the
    /// rest of the file was not. Provision the remaining rows again.
    #[error("provisioning stopped after storing {} device(s): {cause}", stored.len())]
    ProvisionIncomplete {
        /// Ids of the devices that were stored, in file order.
        stored: Vec<String>,
        /// Why the rest was not.
        #[source]
        cause: Box<Error>,
    },
    /// The schema migrations failed.
    #[error("registry migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Reading or writing a file under the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// The rejection reason, if this error is an authentication refusal.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Error::Rejected(r) => Some(*r),
            _ => None,
        }
    }

    /// Whether retrying the same call later may succeed (the database was
    /// unreachable or timed out), as opposed to a permanent refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => true,
            // SQLite busy/locked; PostgreSQL serialization failure, deadlock,
            // too many connections, admin shutdown.
            Error::Database(sqlx::Error::Database(db)) => matches!(
                db.code().as_deref(),
                Some("5" | "6" | "40001" | "40P01" | "53300" | "57P01")
            ),
            Error::DynamoDb { transient, .. } => *transient,
            _ => false,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }
}

impl From<iotflow_types::UnknownStatus> for Error {
    fn from(e: iotflow_types::UnknownStatus) -> Self {
        Error::invalid("status", e.to_string())
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        Error::Rejected(r)
    }
}

/// Maps a unique-constraint violation to [`Error::AlreadyExists`].
pub(crate) fn on_conflict(what: &'static str, id: &str) -> impl FnOnce(sqlx::Error) -> Error {
    let id = id.to_owned();
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::AlreadyExists { what, id },
        _ => Error::Database(e),
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
