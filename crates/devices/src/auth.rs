//! Device authentication and authorization, shared by every ingest path.
//!
//! Three ways a device proves who it is, each ending in an [`Identity`]:
//!
//! - **HMAC-signed messages** ([`Authenticator::verify_hmac`]): the device
//!   signs [`canonical bytes`](sign_message) of its id, key id, a timestamp,
//!   a nonce and the body with its HMAC-SHA256 key. The timestamp must lie
//!   within ±`replay_window` of the server clock, and the nonce must not have
//!   been accepted for that device before. Nonces are remembered **in the
//!   registry database** (table `auth_nonces`; on DynamoDB one item per
//!   nonce, written with a condition and expired by TTL) while their
//!   timestamp is inside the window, so several ingest processes sharing a
//!   database also share replay protection. Signatures are compared in
//!   constant time (`ring`).
//! - **JWTs** ([`Authenticator::verify_jwt`]) signed ES256 or EdDSA with a
//!   per-device key whose id is the `kid` header; `sub` is the device id,
//!   `tenant` its tenant, `exp` is required, `nbf` optional; both are checked
//!   against the injected clock.
//! - **mTLS client certificates** ([`Authenticator::verify_certificate`]):
//!   the TLS layer validates the chain; the registry maps the certificate's
//!   SHA-256 fingerprint to its device.
//!
//! Every refusal is an [`Error::Rejected`] with its own [`Rejection`]; an
//! identity is returned only when every check passed. Then
//! [`Identity::authorize`] checks that what the device sends is for itself.

use std::time::Duration;

use ring::hmac;
use serde::Deserialize;

use crate::credentials::{CertificateFingerprint, CredentialKind, StoredCredential};
use crate::crypto::{b64_decode, b64_encode};
use crate::error::{Error, Rejection, Result};
use crate::model::DeviceStatus;
use crate::registry::{Registry, Store};

/// Tuning of [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// How far a message timestamp may be from the server clock, either way.
    /// Default 5 minutes.
    pub replay_window: Duration,
    /// Clock skew allowed on JWT `exp` and `nbf`. Default 60 s.
    pub jwt_leeway: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            replay_window: Duration::from_secs(300),
            jwt_leeway: Duration::from_secs(60),
        }
    }
}

/// How an [`Identity`] was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// An HMAC-signed message.
    Hmac,
    /// A JWT.
    Jwt,
    /// An mTLS client certificate.
    Certificate,
}

/// An authenticated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The device.
    pub device_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The credential that proved it.
    pub credential_id: String,
    /// How.
    pub method: AuthMethod,
}

impl Identity {
    /// A device may send only for its own id and tenant.
    pub fn authorize(&self, device_id: &str, tenant_id: &str) -> Result<()> {
        if device_id != self.device_id {
            return Err(Rejection::WrongDevice.into());
        }
        if tenant_id != self.tenant_id {
            return Err(Rejection::WrongTenant.into());
        }
        Ok(())
    }
}

/// An HMAC-signed message as it arrives.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    /// The device the message claims to come from.
    pub device_id: &'a str,
    /// The id of the HMAC key that signed it.
    pub key_id: &'a str,
    /// When the device signed it, Unix milliseconds.
    pub timestamp_ms: i64,
    /// A value unique per message (1 to 64 printable ASCII characters).
    pub nonce: &'a str,
    /// Base64 of the HMAC-SHA256 over the canonical bytes.
    pub signature: &'a str,
    /// The payload.
    pub body: &'a [u8],
}

/// The bytes a device signs: a version tag, then device id, key id,
/// timestamp and nonce, each ended by `\n`, then the body.
fn canonical(
    device_id: &str,
    key_id: &str,
    timestamp_ms: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let head = format!("iotflow-hmac-v1\n{device_id}\n{key_id}\n{timestamp_ms}\n{nonce}\n");
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Signs a message as a device does (device SDKs, the simulator, tests):
/// returns the base64 signature for [`SignedMessage::signature`].
pub fn sign_message(
    secret_base64: &str,
    device_id: &str,
    key_id: &str,
    timestamp_ms: i64,
    nonce: &str,
    body: &[u8],
) -> Result<String> {
    let secret =
        b64_decode(secret_base64).ok_or_else(|| Error::invalid("HMAC key", "not base64"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let tag = hmac::sign(
        &key,
        &canonical(device_id, key_id, timestamp_ms, nonce, body),
    );
    Ok(b64_encode(tag.as_ref()))
}

fn nonce_ok(nonce: &str) -> bool {
    (1..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_graphic())
}

/// Authenticates devices against a [`Registry`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    registry: Registry,
    config: AuthConfig,
}

impl Registry {
    /// An authenticator over this registry.
    pub fn authenticator(&self, config: AuthConfig) -> Authenticator {
        Authenticator {
            registry: self.clone(),
            config,
        }
    }
}

impl Authenticator {
    /// Refuses a revoked credential, or one whose device is not active.
    fn usable(cred: &StoredCredential) -> Result<()> {
        if cred.revoked {
            return Err(Rejection::RevokedKey.into());
        }
        if cred.device_status != DeviceStatus::Active {
            return Err(Rejection::DeviceDisabled.into());
        }
        Ok(())
    }

    fn identity(cred: StoredCredential, method: AuthMethod) -> Identity {
        Identity {
            device_id: cred.device_id,
            tenant_id: cred.tenant_id,
            credential_id: cred.id,
            method,
        }
    }

    /// Verifies an HMAC-signed message: key, device, signature, timestamp
    /// window, then nonce (recorded only when all else passed).
    pub async fn verify_hmac(&self, msg: &SignedMessage<'_>) -> Result<Identity> {
        if !nonce_ok(msg.nonce) || msg.key_id.is_empty() {
            return Err(Rejection::MalformedRequest.into());
        }
        let signature = b64_decode(msg.signature).ok_or(Rejection::MalformedRequest)?;
        let cred = self
            .registry
            .stored_credential(msg.key_id)
            .await?
            .filter(|c| c.kind == CredentialKind::Hmac)
            .ok_or(Rejection::UnknownKey)?;
        if cred.device_id != msg.device_id {
            return Err(Rejection::WrongDevice.into());
        }
        Self::usable(&cred)?;
        let secret = self.registry.inner.master.open(&cred.id, &cred.material)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let signed = canonical(
            msg.device_id,
            msg.key_id,
            msg.timestamp_ms,
            msg.nonce,
            msg.body,
        );
        hmac::verify(&key, &signed, &signature).map_err(|_| Rejection::BadSignature)?;

        let now = self.registry.now_ms();
        let window = i64::try_from(self.config.replay_window.as_millis()).unwrap_or(i64::MAX);
        if msg.timestamp_ms.abs_diff(now) > window.unsigned_abs() {
            return Err(Rejection::ExpiredTimestamp.into());
        }
        self.remember_nonce(msg.device_id, msg.nonce, msg.timestamp_ms, now - window)
            .await?;
        Ok(Self::identity(cred, AuthMethod::Hmac))
    }

    /// Records the nonce; refuses one already recorded. Rows whose message
    /// timestamp left the window go first: such a message fails the
    /// timestamp check anyway.
    async fn remember_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        ts: i64,
        oldest: i64,
    ) -> Result<()> {
        let pool = match self.registry.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => {
                let window = self.config.replay_window;
                return db
                    .remember_nonce(device_id, nonce, ts, oldest, window)
                    .await;
            }
        };
        sqlx::query("DELETE FROM auth_nonces WHERE device_id = $1 AND msg_ts < $2")
            .bind(device_id)
            .bind(oldest)
            .execute(pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO auth_nonces (device_id, nonce, msg_ts) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, nonce) DO NOTHING",
        )
        .bind(device_id)
        .bind(nonce)
        .bind(ts)
        .execute(pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Rejection::ReplayedNonce.into());
        }
        Ok(())
    }

    /// Verifies a device JWT (compact form) signed ES256 or EdDSA.
    pub async fn verify_jwt(&self, token: &str) -> Result<Identity> {
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
            tenant: String,
            exp: i64,
            nbf: Option<i64>,
        }
        use jsonwebtoken::errors::ErrorKind;
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};

        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::BadToken)?;
        let kid = header.kid.ok_or(Rejection::MalformedRequest)?;
        let cred = self
            .registry
            .stored_credential(&kid)
            .await?
            .ok_or(Rejection::UnknownKey)?;
        let (alg, key) = match cred.kind {
            CredentialKind::JwtEs256 => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(cred.material.as_bytes()),
            ),
            CredentialKind::JwtEdDsa => (
                Algorithm::EdDSA,
                DecodingKey::from_ed_pem(cred.material.as_bytes()),
            ),
            _ => return Err(Rejection::UnknownKey.into()),
        };
        let key = key.map_err(|e| Error::invalid("stored public key", e.to_string()))?;
        Self::usable(&cred)?;
        if header.alg != alg {
            return Err(Rejection::BadToken.into());
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => Rejection::BadSignature,
                _ => Rejection::BadToken,
            })?
            .claims;
        if claims.sub != cred.device_id {
            return Err(Rejection::WrongDevice.into());
        }
        if claims.tenant != cred.tenant_id {
            return Err(Rejection::WrongTenant.into());
        }
        let now_s = self.registry.now_ms().div_euclid(1000);
        let leeway = i64::try_from(self.config.jwt_leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_add(leeway) <= now_s {
            return Err(Rejection::ExpiredToken.into());
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now_s)
        {
            return Err(Rejection::TokenNotYetValid.into());
        }
        Ok(Self::identity(cred, AuthMethod::Jwt))
    }

    /// Maps a client certificate, already validated by the TLS layer, to its device.
    pub async fn verify_certificate(
        &self,
        fingerprint: &CertificateFingerprint,
    ) -> Result<Identity> {
        let cred = self
            .registry
            .stored_certificate(fingerprint)
            .await?
            .ok_or(Rejection::UnknownCertificate)?;
        Self::usable(&cred)?;
        Ok(Self::identity(cred, AuthMethod::Certificate))
    }
}
