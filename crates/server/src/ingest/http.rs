//! The ingest routes: authenticate the device, read the body, queue the
//! readings or say why not.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iotflow_devices::{
    AuthConfig, Authenticator, Error as RegistryError, Identity, Registry, Rejection, SignedMessage,
};
use serde_json::json;

use super::body::{self, BodyError, Form};
use super::queue::{IngestQueue, Refusal};
use super::stats::IngestStats;
use crate::api_error::ApiError;
use crate::auth::bearer_token;
use crate::config::{IngestAuth, IngestConfig};
use crate::extract::{body_bytes, is_json, media_type};
use crate::routes::AppState;

/// Header naming the device that signed an HMAC request.
pub const HEADER_DEVICE: &str = "x-iotflow-device";
/// Header with the id of the HMAC key that signed the request.
pub const HEADER_KEY_ID: &str = "x-iotflow-key-id";
/// Header with the signing time, Unix milliseconds.
pub const HEADER_TIMESTAMP: &str = "x-iotflow-timestamp";
/// Header with the request's nonce (1 to 64 printable ASCII characters,
/// never reused by the device within the replay window).
pub const HEADER_NONCE: &str = "x-iotflow-nonce";
/// Header with the base64 HMAC-SHA256 signature
/// ([`iotflow_devices::sign_message`] over the device, key id, timestamp,
/// nonce and the exact body bytes).
pub const HEADER_SIGNATURE: &str = "x-iotflow-signature";

/// `WWW-Authenticate` of an ingest `401`.
const CHALLENGE: &str = "IotflowHmac realm=\"iotflow-ingest\", Bearer realm=\"iotflow-ingest\"";

/// NDJSON media types accepted by `POST /ingest/batch`.
const NDJSON: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
];

/// What the ingest routes share: the queue, and how devices authenticate.
#[derive(Debug, Clone)]
pub(crate) struct Ingest {
    pub(crate) queue: IngestQueue,
    /// `None`: `ingest.auth = "none"`.
    auth: Option<Authenticator>,
    retry_after_secs: u32,
}

impl Ingest {
    pub(crate) fn new(registry: &Registry, config: &IngestConfig, queue: IngestQueue) -> Ingest {
        let auth = match config.auth {
            IngestAuth::Device => Some(registry.authenticator(AuthConfig {
                replay_window: std::time::Duration::from_secs(config.replay_window_secs),
                jwt_leeway: std::time::Duration::from_secs(config.jwt_leeway_secs),
            })),
            IngestAuth::None => {
                tracing::warn!(
                    "ingest.auth = \"none\": POST /ingest accepts readings from anyone, for any device"
                );
                None
            }
        };
        Ingest {
            queue,
            auth,
            retry_after_secs: config.retry_after_secs,
        }
    }
}

/// `POST /ingest`: one reading, a JSON object.
pub(crate) async fn post_one(State(state): State<AppState>, req: Request) -> Response {
    counted(&state, ingest(&state, req, true).await)
}

/// `POST /ingest/batch`: a JSON array of readings, or NDJSON.
pub(crate) async fn post_batch(State(state): State<AppState>, req: Request) -> Response {
    counted(&state, ingest(&state, req, false).await)
}

/// `GET /ingest/stats`.
pub(crate) async fn stats(State(state): State<AppState>) -> Result<Json<IngestStats>, ApiError> {
    let ingest = state.ingest().ok_or_else(not_attached)?;
    Ok(Json(ingest.queue.stats()))
}

/// Counts a refusal by its status (queue refusals are counted by the queue).
fn counted(state: &AppState, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(ingest) = state.ingest() {
        match response.status() {
            StatusCode::UNAUTHORIZED => ingest.queue.count_auth_failure(),
            StatusCode::FORBIDDEN => ingest.queue.count_forbidden(),
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE => ingest.queue.count_bad_request(),
            _ => {}
        }
    }
    response
}

async fn ingest(state: &AppState, req: Request, one: bool) -> Result<Response, ApiError> {
    let ingest = state.ingest().ok_or_else(not_attached)?;
    if ingest.queue.is_closed() {
        ingest.queue.count_closed();
        return Err(closed());
    }
    let form = if one {
        if !is_json(req.headers()) {
            return Err(unsupported("application/json"));
        }
        Form::One
    } else if is_json(req.headers()) {
        Form::JsonBatch
    } else if media_type(req.headers()).is_some_and(|m| NDJSON.contains(&m.as_str())) {
        Form::Lines
    } else {
        return Err(unsupported(
            "application/json (an array, or one object per line) or application/x-ndjson",
        ));
    };
    let headers = req.headers().clone();
    let bytes = body_bytes(req, state).await?;
    let identity = match &ingest.auth {
        Some(auth) => Some(authenticate(auth, &headers, &bytes).await?),
        None => None,
    };
    let device = identity.as_ref().map(|who| who.device_id.as_str());
    let batch = body::parse(&bytes, form, device).map_err(|e| match e {
        BodyError::Malformed(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", message)
        }
        BodyError::WrongDevice { reading, found } => {
            tracing::info!(
                device = device.unwrap_or_default(),
                found,
                reading,
                "ingest: reading for another device refused"
            );
            ApiError::new(
                StatusCode::FORBIDDEN,
                Rejection::WrongDevice.code(),
                format!(
                    "reading {reading} is for device {found:?}; {:?} may send only its own readings",
                    device.unwrap_or_default()
                ),
            )
        }
    })?;
    let n = batch.count;
    match ingest.queue.offer(batch) {
        Ok(accepted) => {
            tracing::trace!(accepted, device, "ingest: queued");
            Ok((StatusCode::ACCEPTED, Json(json!({"accepted": accepted}))).into_response())
        }
        Err(Refusal::Full { free }) => {
            tracing::debug!(readings = n, free, "ingest: queue full; 503");
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!(
                    "the ingest queue has room for {free} of this request's {n} readings; \
                     nothing was queued; retry after {} s",
                    ingest.retry_after_secs
                ),
            )
            .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(ingest.retry_after_secs),
            );
            Ok(response)
        }
        Err(Refusal::TooMany { capacity }) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "{n} readings are more than the ingest queue holds ({capacity}); send smaller batches"
            ),
        )),
        Err(Refusal::Closed) => Err(closed()),
    }
}

/// Proves who sent the request: HMAC headers if the signature header is
/// there, else a device JWT as `Authorization: Bearer`.
async fn authenticate(
    auth: &Authenticator,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Identity, ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = if let Some(signature) = text(HEADER_SIGNATURE) {
        let (Some(device_id), Some(key_id), Some(timestamp), Some(nonce)) = (
            text(HEADER_DEVICE),
            text(HEADER_KEY_ID),
            text(HEADER_TIMESTAMP),
            text(HEADER_NONCE),
        ) else {
            return Err(refused(
                Rejection::MalformedRequest,
                "an HMAC-signed request needs the headers X-Iotflow-Device, X-Iotflow-Key-Id, \
                 X-Iotflow-Timestamp, X-Iotflow-Nonce and X-Iotflow-Signature",
            ));
        };
        let Ok(timestamp_ms) = timestamp.trim().parse::<i64>() else {
            return Err(refused(
                Rejection::MalformedRequest,
                "X-Iotflow-Timestamp must be Unix milliseconds",
            ));
        };
        auth.verify_hmac(&SignedMessage {
            device_id,
            key_id,
            timestamp_ms,
            nonce,
            signature,
            body,
        })
        .await
    } else if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some(token) = bearer_token(value.as_bytes()).and_then(|t| std::str::from_utf8(t).ok())
        else {
            return Err(refused(
                Rejection::MalformedRequest,
                "Authorization header is not of the form Bearer <device JWT>",
            ));
        };
        auth.verify_jwt(token).await
    } else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no device credentials: sign the request (X-Iotflow-* headers) or send \
             Authorization: Bearer <device JWT>",
        )
        .with_challenge(CHALLENGE));
    };
    verified.map_err(|e| match e {
        RegistryError::Rejected(r) => {
            tracing::info!(reason = r.code(), "ingest: device authentication refused");
            refused(r, &format!("device authentication refused: {r}"))
        }
        other => ApiError::from(other),
    })
}

/// A refused authentication: `403` when the credential is good but for
/// another device or tenant, `401` otherwise; the code is the reason's.
fn refused(reason: Rejection, message: &str) -> ApiError {
    match reason {
        Rejection::WrongDevice | Rejection::WrongTenant => {
            ApiError::new(StatusCode::FORBIDDEN, reason.code(), message)
        }
        _ => ApiError::new(StatusCode::UNAUTHORIZED, reason.code(), message)
            .with_challenge(CHALLENGE),
    }
}

fn not_attached() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "this server has no pipeline attached to its ingest routes",
    )
}

fn closed() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "ingest is closed: the server is stopping or its pipeline has stopped",
    )
}

fn unsupported(expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("expected Content-Type: {expected}"),
    )
}
