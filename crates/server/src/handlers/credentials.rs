//! Device credentials: HMAC keys (secret shown once), JWT public keys,
//! client-certificate fingerprints; listing (never a secret) and revoking.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use iotflow_devices::{CertificateFingerprint, CredentialInfo, CredentialKind, IssuedHmacKey};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::extract::{Id, JsonBody};
use crate::handlers::no_store;
use crate::routes::AppState;

/// A credential as listed: what it is, never its secret.
#[derive(Debug, Serialize)]
pub(crate) struct CredentialOut {
    id: String,
    device_id: String,
    kind: &'static str,
    fingerprint: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<CredentialInfo> for CredentialOut {
    fn from(c: CredentialInfo) -> Self {
        CredentialOut {
            id: c.id,
            device_id: c.device_id,
            kind: c.kind.as_str(),
            fingerprint: c.fingerprint,
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// A freshly issued HMAC key, secret included: the only time it is shown.
#[derive(Debug, Serialize)]
struct HmacKeyOut {
    key_id: String,
    device_id: String,
    kind: &'static str,
    secret: String,
}

fn issued(key: IssuedHmacKey) -> Response {
    no_store((
        StatusCode::CREATED,
        Json(HmacKeyOut {
            secret: key.secret().to_owned(),
            key_id: key.key_id,
            device_id: key.device_id,
            kind: CredentialKind::Hmac.as_str(),
        }),
    ))
}

/// `POST /devices/{id}/credentials/hmac` → `201` with a new key; the
/// device's other keys stay valid.
pub(crate) async fn issue_hmac(
    State(state): State<AppState>,
    Id(device): Id,
) -> Result<Response, ApiError> {
    Ok(issued(state.registry.issue_hmac_key(&device).await?))
}

/// `POST /devices/{id}/credentials/hmac/rotate` → `201` with a new key;
/// the device's other HMAC keys are revoked.
pub(crate) async fn rotate_hmac(
    State(state): State<AppState>,
    Id(device): Id,
) -> Result<Response, ApiError> {
    Ok(issued(state.registry.rotate_hmac_key(&device).await?))
}

/// JWT signature algorithms a device key may use.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) enum JwtAlg {
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// Body of `POST /devices/{id}/credentials/jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtKeyBody {
    alg: JwtAlg,
    public_key_pem: String,
}

/// `POST /devices/{id}/credentials/jwt` → `201` with the credential
/// (its id is the `kid` the device's tokens must name).
pub(crate) async fn add_jwt(
    State(state): State<AppState>,
    Id(device): Id,
    JsonBody(body): JsonBody<JwtKeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = match body.alg {
        JwtAlg::Es256 => CredentialKind::JwtEs256,
        JwtAlg::EdDsa => CredentialKind::JwtEdDsa,
    };
    let info = state
        .registry
        .add_jwt_key(&device, kind, &body.public_key_pem)
        .await?;
    Ok((StatusCode::CREATED, Json(CredentialOut::from(info))))
}

/// Body of `POST /devices/{id}/credentials/certificates`: exactly one field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateBody {
    /// SHA-256 of the DER certificate: 64 hex digits, `:` separators allowed.
    #[serde(default)]
    fingerprint: Option<String>,
    /// The certificate in PEM (the first `CERTIFICATE` block counts).
    #[serde(default)]
    pem: Option<String>,
    /// The DER certificate, base64.
    #[serde(default)]
    der_base64: Option<String>,
}

/// `POST /devices/{id}/credentials/certificates` → `201` with the credential.
pub(crate) async fn add_certificate(
    State(state): State<AppState>,
    Id(device): Id,
    JsonBody(body): JsonBody<CertificateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let fingerprint = match (body.fingerprint, body.pem, body.der_base64) {
        (Some(hex), None, None) => CertificateFingerprint::from_hex(&hex)?,
        (None, Some(pem), None) => CertificateFingerprint::of_der(&der_from_pem(&pem)?),
        (None, None, Some(b64)) => CertificateFingerprint::of_der(&der_from_base64(&b64)?),
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of fingerprint, pem, der_base64",
            ));
        }
    };
    let info = state
        .registry
        .add_certificate(&device, &fingerprint)
        .await?;
    Ok((StatusCode::CREATED, Json(CredentialOut::from(info))))
}

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
fn der_from_pem(pem: &str) -> Result<Vec<u8>, ApiError> {
    let not_pem = || ApiError::invalid(format!("invalid pem: expected {PEM_BEGIN} … {PEM_END}"));
    let start = pem.find(PEM_BEGIN).ok_or_else(not_pem)? + PEM_BEGIN.len();
    let len = pem[start..].find(PEM_END).ok_or_else(not_pem)?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    der_from_base64(&body)
}

/// Decodes base64 DER and checks it at least opens an ASN.1 `SEQUENCE`
/// (full X.509 parsing is the TLS terminator's business).
fn der_from_base64(text: &str) -> Result<Vec<u8>, ApiError> {
    let der = B64
        .decode(text.trim())
        .map_err(|e| ApiError::invalid(format!("invalid certificate: not base64: {e}")))?;
    if der.len() < 2 || der[0] != 0x30 {
        return Err(ApiError::invalid(
            "invalid certificate: not a DER-encoded certificate",
        ));
    }
    Ok(der)
}

#[derive(Debug, Serialize)]
pub(crate) struct CredentialList {
    credentials: Vec<CredentialOut>,
}

/// `GET /devices/{id}/credentials`, oldest first, without secrets.
pub(crate) async fn list(
    State(state): State<AppState>,
    Id(device): Id,
) -> Result<Json<CredentialList>, ApiError> {
    // An unknown device is a 404, not an empty list.
    state.registry.device(&device).await?;
    let credentials = state.registry.credentials(&device).await?;
    Ok(Json(CredentialList {
        credentials: credentials.into_iter().map(CredentialOut::from).collect(),
    }))
}

/// `DELETE /credentials/{id}` → `204`; revoking twice keeps the first time.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    state.registry.revoke_credential(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_decode_to_their_der() {
        let der = [0x30u8, 0x03, 0x02, 0x01, 0x05];
        let pem = format!("junk before\n{PEM_BEGIN}\n{}\n{PEM_END}\n", B64.encode(der));
        assert_eq!(der_from_pem(&pem).ok(), Some(der.to_vec()));
    }

    #[test]
    fn what_is_not_a_certificate_is_refused() {
        let not_der = B64.encode(b"hello");
        for bad in [
            "no markers at all".to_owned(),
            format!("{PEM_BEGIN}\nAAAA"),
            format!("{PEM_BEGIN}\n!!!\n{PEM_END}"),
            format!("{PEM_BEGIN}\n{not_der}\n{PEM_END}"),
            format!("{PEM_BEGIN}{PEM_END}"),
        ] {
            assert!(der_from_pem(&bad).is_err(), "{bad:?}");
        }
        assert!(
            der_from_base64("MA==").is_err(),
            "one byte is not a certificate"
        );
    }
}
