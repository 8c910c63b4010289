//! Every failed request ends here: one JSON shape, the right status.
//!
//! ```json
//! {"error": {"code": "not_found", "message": "device \"x\" not found"}}
//! ```
//!
//! Codes are stable and listed in [`CODES`] (the OpenAPI document's `Error`
//! schema enumerates them). Internal failures are logged with their cause
//! and answered with a generic message: the database's error text is no
//! business of an API caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotflow_devices::Error as RegistryError;
use serde_json::json;

/// Seconds a client is asked to wait after a `503`.
pub(crate) const RETRY_AFTER_SECS: u32 = 5;

/// Every error code the API answers with, and its usual status.
pub(crate) const CODES: &[(&str, u16)] = &[
    ("malformed_body", 400),
    ("invalid_query", 400),
    ("invalid_path", 400),
    ("invalid_input", 400),
    ("unauthorized", 401),
    // Device authentication on the ingest routes: the reason's own code.
    ("bad_signature", 401),
    ("expired_timestamp", 401),
    ("replayed_nonce", 401),
    ("revoked_key", 401),
    ("unknown_key", 401),
    ("device_disabled", 401),
    ("expired_token", 401),
    ("token_not_yet_valid", 401),
    ("bad_token", 401),
    ("malformed_request", 401),
    ("forbidden", 403),
    ("wrong_device", 403),
    ("wrong_tenant", 403),
    ("not_found", 404),
    ("method_not_allowed", 405),
    ("already_exists", 409),
    ("payload_too_large", 413),
    ("unsupported_media_type", 415),
    ("internal", 500),
    ("unavailable", 503),
    ("queue_full", 503),
];

/// A request that failed, as the client will see it.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    www_authenticate: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
        }
    }

    /// `400 invalid_input`: the body parsed but a value is not acceptable.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error; the cause was logged",
        )
    }

    /// Adds a `WWW-Authenticate` challenge (401, 403).
    pub(crate) fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match &e {
            RegistryError::NotFound { .. } => ApiError::not_found(e.to_string()),
            RegistryError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            RegistryError::Invalid { .. } | RegistryError::Csv { .. } => {
                ApiError::invalid(e.to_string())
            }
            // No admin route authenticates devices; should one ever refuse,
            // the reason's own code is the most useful answer.
            RegistryError::Rejected(r) => {
                ApiError::new(StatusCode::BAD_REQUEST, r.code(), e.to_string())
            }
            _ if e.is_transient() => {
                tracing::warn!(error = %e, "registry unavailable; answering 503");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the registry database is unavailable; retry later",
                )
            }
            _ => {
                tracing::error!(error = %e, "registry call failed; answering 500");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_map_to_their_status_and_code() {
        let cases: Vec<(RegistryError, u16, &str)> = vec![
            (
                RegistryError::NotFound {
                    what: "device",
                    id: "x".into(),
                },
                404,
                "not_found",
            ),
            (
                RegistryError::AlreadyExists {
                    what: "tenant",
                    id: "x".into(),
                },
                409,
                "already_exists",
            ),
            (
                RegistryError::Invalid {
                    field: "limit",
                    reason: "0".into(),
                },
                400,
                "invalid_input",
            ),
            (
                RegistryError::Csv {
                    line: 3,
                    reason: "bad".into(),
                },
                400,
                "invalid_input",
            ),
            (
                RegistryError::Rejected(iotflow_devices::Rejection::RevokedKey),
                400,
                "revoked_key",
            ),
            (
                RegistryError::MasterKey("secret detail".into()),
                500,
                "internal",
            ),
            (
                RegistryError::Database(sqlx::Error::PoolTimedOut),
                503,
                "unavailable",
            ),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
            assert!(!api.message.contains("secret detail"));
            assert!(
                CODES.iter().any(|(c, _)| *c == code) || code == "revoked_key",
                "{code} is not listed"
            );
        }
    }
}
