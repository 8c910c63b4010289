//! Request extractors whose every refusal is an [`ApiError`] (our JSON shape,
//! our codes) rather than axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;

/// A JSON body (`Content-Type: application/json` or `application/*+json`),
/// deserialized into `T`; unknown fields are refused where `T` says so.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(unsupported("application/json"));
        }
        let bytes = body_bytes(req, state).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                format!("request body is not the expected JSON: {e}"),
            )
        })
    }
}

/// A CSV body (`Content-Type: text/csv`), as bytes; NUL bytes are refused
/// (no field may hold one, and PostgreSQL text cannot).
pub(crate) struct CsvBody(pub(crate) Bytes);

impl<S> FromRequest<S> for CsvBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if media_type(req.headers()).as_deref() != Some("text/csv") {
            return Err(unsupported("text/csv"));
        }
        let bytes = body_bytes(req, state).await?;
        if bytes.contains(&0) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "CSV body contains a NUL byte",
            ));
        }
        Ok(CsvBody(bytes))
    }
}

/// Query parameters deserialized into `T`.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

/// The one path parameter of a route (`/devices/{id}`).
pub(crate) struct Id(pub(crate) String);

/// The two path parameters of a route (`/groups/{id}/devices/{device}`).
pub(crate) struct Ids(pub(crate) String, pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        Ok(Id(checked_segment(id)?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        Ok(Ids(checked_segment(a)?, checked_segment(b)?))
    }
}

fn path_error(rejection: axum::extract::rejection::PathRejection) -> ApiError {
    if rejection.status().is_server_error() {
        tracing::error!(error = %rejection.body_text(), "path parameters do not fit the route");
        return ApiError::internal();
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        rejection.body_text(),
    )
}

/// Ids never hold control characters (the registry refuses them at
/// creation), so one that does names nothing; refusing it here also keeps
/// NUL away from PostgreSQL, which cannot store it.
fn checked_segment(value: String) -> Result<String, ApiError> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "path segment contains control characters",
        ));
    }
    Ok(value)
}

/// Checks a caller-given text that the registry stores or compares
/// unchecked: at most 128 bytes (like ids), no control characters.
pub(crate) fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > 128 {
        return Err(ApiError::invalid(format!(
            "invalid {field}: longer than 128 bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "invalid {field}: contains control characters"
        )));
    }
    Ok(())
}

pub(crate) async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than this server accepts",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                rejection.body_text(),
            )
        }
    })
}

fn unsupported(expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("expected Content-Type: {expected}"),
    )
}

/// The media type of `Content-Type`, lowercase, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(essence)
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| {
        m == "application/json"
            || m.strip_prefix("application/")
                .is_some_and(|sub| sub.ends_with("+json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("header value"),
        );
        h
    }

    #[test]
    fn json_media_types_are_recognized() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&headers(yes)), "{yes}");
        }
        for no in ["text/plain", "application/jsonp", "text/json", "json"] {
            assert!(!is_json(&headers(no)), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn texts_with_control_characters_or_too_long_are_invalid() {
        assert!(check_text("x", "1.2.3-rc1 ünïcode").is_ok());
        for bad in ["a\0b", "tab\there", &"x".repeat(129)] {
            assert_eq!(
                check_text("x", bad).map_err(|e| e.code()).err(),
                Some("invalid_input")
            );
        }
    }
}
