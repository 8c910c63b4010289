use std::time::Duration;

use base64::Engine as _;
use iotflow_devices::{
    AuthConfig, AuthMethod, CertificateFingerprint, CredentialKind, DeviceStatus, Error, NewDevice,
    Registry, Rejection, SignedMessage, sign_message,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde_json::json;

use crate::common::{T0_MS, each_backend, rejection};

const BODY: &[u8] = br#"{"metric":"temp","value":21.5}"#;

async fn setup(reg: &Registry) -> anyhow::Result<()> {
    reg.create_tenant("acme", "Acme").await?;
    reg.create_tenant("other", "Other").await?;
    reg.register_device(NewDevice::new("acme", "a", "t").with_id("dev-a"))
        .await?;
    reg.register_device(NewDevice::new("acme", "b", "t").with_id("dev-b"))
        .await?;
    Ok(())
}

/// A message from `device` signed with `secret` under `key_id`.
struct Msg {
    device: String,
    key_id: String,
    ts: i64,
    nonce: String,
    signature: String,
    body: Vec<u8>,
}

impl Msg {
    fn signed(
        secret: &str,
        device: &str,
        key_id: &str,
        ts: i64,
        nonce: &str,
    ) -> anyhow::Result<Msg> {
        Ok(Msg {
            device: device.into(),
            key_id: key_id.into(),
            ts,
            nonce: nonce.into(),
            signature: sign_message(secret, device, key_id, ts, nonce, BODY)?,
            body: BODY.to_vec(),
        })
    }

    fn view(&self) -> SignedMessage<'_> {
        SignedMessage {
            device_id: &self.device,
            key_id: &self.key_id,
            timestamp_ms: self.ts,
            nonce: &self.nonce,
            signature: &self.signature,
            body: &self.body,
        }
    }
}

#[tokio::test]
async fn hmac_messages_are_accepted_only_when_every_check_passes() -> anyhow::Result<()> {
    each_backend("hmac", |ctx| async move {
        let reg = ctx.registry;
        setup(&reg).await?;
        let auth = reg.authenticator(AuthConfig {
            replay_window: Duration::from_secs(60),
            ..AuthConfig::default()
        });
        let key = reg.issue_hmac_key("dev-a").await?;
        let (secret, kid) = (key.secret(), key.key_id.as_str());

        // Bad signature: body changed after signing. The nonce is not used up.
        let mut tampered = Msg::signed(secret, "dev-a", kid, T0_MS, "n-1")?;
        tampered.body = br#"{"metric":"temp","value":99}"#.to_vec();
        assert_eq!(
            rejection(auth.verify_hmac(&tampered.view()).await),
            Rejection::BadSignature
        );
        // Signed with another (random) key.
        let forged = Msg::signed(
            &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
            "dev-a",
            kid,
            T0_MS,
            "n-1",
        )?;
        assert_eq!(
            rejection(auth.verify_hmac(&forged.view()).await),
            Rejection::BadSignature
        );

        let good = Msg::signed(secret, "dev-a", kid, T0_MS, "n-1")?;
        let who = auth.verify_hmac(&good.view()).await?;
        assert_eq!(
            (
                who.device_id.as_str(),
                who.tenant_id.as_str(),
                who.credential_id.as_str(),
                who.method
            ),
            ("dev-a", "acme", kid, AuthMethod::Hmac)
        );

        // Replayed nonce: the very same message, and a new timestamp with the old nonce.
        assert_eq!(
            rejection(auth.verify_hmac(&good.view()).await),
            Rejection::ReplayedNonce
        );
        let reused = Msg::signed(secret, "dev-a", kid, T0_MS + 1, "n-1")?;
        assert_eq!(
            rejection(auth.verify_hmac(&reused.view()).await),
            Rejection::ReplayedNonce
        );

        // Timestamps outside ±60 s, either way.
        let old = Msg::signed(secret, "dev-a", kid, T0_MS - 60_001, "n-2")?;
        assert_eq!(
            rejection(auth.verify_hmac(&old.view()).await),
            Rejection::ExpiredTimestamp
        );
        let future = Msg::signed(secret, "dev-a", kid, T0_MS + 60_001, "n-3")?;
        assert_eq!(
            rejection(auth.verify_hmac(&future.view()).await),
            Rejection::ExpiredTimestamp
        );
        let edge = Msg::signed(secret, "dev-a", kid, T0_MS - 60_000, "n-4")?;
        auth.verify_hmac(&edge.view()).await?;

        // Wrong device: dev-a's key presented for dev-b (correctly signed as dev-b).
        let wrong = Msg::signed(secret, "dev-b", kid, T0_MS, "n-5")?;
        assert_eq!(
            rejection(auth.verify_hmac(&wrong.view()).await),
            Rejection::WrongDevice
        );

        // Unknown key id, malformed fields.
        let unknown = Msg::signed(secret, "dev-a", "no-such-key", T0_MS, "n-6")?;
        assert_eq!(
            rejection(auth.verify_hmac(&unknown.view()).await),
            Rejection::UnknownKey
        );
        let mut no_nonce = Msg::signed(secret, "dev-a", kid, T0_MS, "")?;
        assert_eq!(
            rejection(auth.verify_hmac(&no_nonce.view()).await),
            Rejection::MalformedRequest
        );
        no_nonce.nonce = "n-7".into();
        no_nonce.signature = "%%%".into();
        assert_eq!(
            rejection(auth.verify_hmac(&no_nonce.view()).await),
            Rejection::MalformedRequest
        );

        // After the window, the nonce may be used again (with a fresh timestamp).
        ctx.clock.advance(Duration::from_secs(61));
        let later = Msg::signed(secret, "dev-a", kid, T0_MS + 61_000, "n-1")?;
        auth.verify_hmac(&later.view()).await?;

        // Suspended device.
        reg.set_status("dev-a", DeviceStatus::Suspended).await?;
        let fresh = Msg::signed(secret, "dev-a", kid, T0_MS + 61_000, "n-8")?;
        assert_eq!(
            rejection(auth.verify_hmac(&fresh.view()).await),
            Rejection::DeviceDisabled
        );
        reg.set_status("dev-a", DeviceStatus::Active).await?;
        auth.verify_hmac(&fresh.view()).await?;

        // Rotation revokes the old key; the new one works; revoked keys stay refused.
        let new_key = reg.rotate_hmac_key("dev-a").await?;
        let with_old = Msg::signed(secret, "dev-a", kid, T0_MS + 61_000, "n-9")?;
        assert_eq!(
            rejection(auth.verify_hmac(&with_old.view()).await),
            Rejection::RevokedKey
        );
        let with_new = Msg::signed(
            new_key.secret(),
            "dev-a",
            &new_key.key_id,
            T0_MS + 61_000,
            "n-9",
        )?;
        auth.verify_hmac(&with_new.view()).await?;
        reg.revoke_credential(&new_key.key_id).await?;
        let after = Msg::signed(
            new_key.secret(),
            "dev-a",
            &new_key.key_id,
            T0_MS + 61_000,
            "n-10",
        )?;
        assert_eq!(
            rejection(auth.verify_hmac(&after.view()).await),
            Rejection::RevokedKey
        );

        let listed = reg.credentials("dev-a").await?;
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .all(|c| c.kind == CredentialKind::Hmac && c.revoked_at.is_some())
        );
        Ok(())
    })
    .await
}

fn pem(spki_prefix: &[u8], raw_public: &[u8]) -> String {
    let mut der = spki_prefix.to_vec();
    der.extend_from_slice(raw_public);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// A device key pair: the JWT signing key and the public key in PEM.
fn ed25519() -> anyhow::Result<(EncodingKey, String)> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    Ok((
        EncodingKey::from_ed_der(pkcs8.as_ref()),
        pem(&PREFIX, pair.public_key().as_ref()),
    ))
}

fn p256() -> anyhow::Result<(EncodingKey, String)> {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair =
        EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    Ok((
        EncodingKey::from_ec_der(pkcs8.as_ref()),
        pem(&PREFIX, pair.public_key().as_ref()),
    ))
}

fn token(
    alg: Algorithm,
    kid: &str,
    key: &EncodingKey,
    claims: serde_json::Value,
) -> anyhow::Result<String> {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    Ok(jsonwebtoken::encode(&header, &claims, key)?)
}

#[tokio::test]
async fn jwts_are_checked_for_key_signature_subject_tenant_and_time() -> anyhow::Result<()> {
    each_backend("jwt", |ctx| async move {
        let reg = ctx.registry;
        setup(&reg).await?;
        let auth = reg.authenticator(AuthConfig {
            jwt_leeway: Duration::ZERO,
            ..AuthConfig::default()
        });
        let now = T0_MS / 1000;
        let (ed_sign, ed_pem) = ed25519()?;
        let (ec_sign, ec_pem) = p256()?;
        let ed = reg
            .add_jwt_key("dev-a", CredentialKind::JwtEdDsa, &ed_pem)
            .await?;
        let ec = reg
            .add_jwt_key("dev-a", CredentialKind::JwtEs256, &ec_pem)
            .await?;
        assert!(matches!(
            reg.add_jwt_key("dev-a", CredentialKind::JwtEs256, "not a key")
                .await,
            Err(Error::Invalid { .. })
        ));
        let claims =
            |sub: &str, tenant: &str, exp: i64| json!({"sub": sub, "tenant": tenant, "exp": exp});

        let who = auth
            .verify_jwt(&token(
                Algorithm::EdDSA,
                &ed.id,
                &ed_sign,
                claims("dev-a", "acme", now + 60),
            )?)
            .await?;
        assert_eq!(
            (who.device_id.as_str(), who.method),
            ("dev-a", AuthMethod::Jwt)
        );
        let who = auth
            .verify_jwt(&token(
                Algorithm::ES256,
                &ec.id,
                &ec_sign,
                claims("dev-a", "acme", now + 60),
            )?)
            .await?;
        assert_eq!(who.credential_id, ec.id);

        let check = |t: String| {
            let auth = auth.clone();
            async move { rejection(auth.verify_jwt(&t).await) }
        };
        // Signed by a key that is not the one registered under this kid.
        let (other_sign, _) = ed25519()?;
        assert_eq!(
            check(token(
                Algorithm::EdDSA,
                &ed.id,
                &other_sign,
                claims("dev-a", "acme", now + 60)
            )?)
            .await,
            Rejection::BadSignature
        );
        assert_eq!(
            check(token(
                Algorithm::EdDSA,
                &ed.id,
                &ed_sign,
                claims("dev-b", "acme", now + 60)
            )?)
            .await,
            Rejection::WrongDevice
        );
        assert_eq!(
            check(token(
                Algorithm::EdDSA,
                &ed.id,
                &ed_sign,
                claims("dev-a", "other", now + 60)
            )?)
            .await,
            Rejection::WrongTenant
        );
        assert_eq!(
            check(token(
                Algorithm::EdDSA,
                &ed.id,
                &ed_sign,
                claims("dev-a", "acme", now)
            )?)
            .await,
            Rejection::ExpiredToken
        );
        let early = json!({"sub": "dev-a", "tenant": "acme", "exp": now + 600, "nbf": now + 300});
        assert_eq!(
            check(token(Algorithm::EdDSA, &ed.id, &ed_sign, early)?).await,
            Rejection::TokenNotYetValid
        );
        let no_exp = json!({"sub": "dev-a", "tenant": "acme"});
        assert_eq!(
            check(token(Algorithm::EdDSA, &ed.id, &ed_sign, no_exp)?).await,
            Rejection::BadToken
        );
        assert_eq!(
            check(token(
                Algorithm::EdDSA,
                "no-such-kid",
                &ed_sign,
                claims("dev-a", "acme", now + 60)
            )?)
            .await,
            Rejection::UnknownKey
        );
        // An ES256 token under the EdDSA key's id.
        assert_eq!(
            check(token(
                Algorithm::ES256,
                &ed.id,
                &ec_sign,
                claims("dev-a", "acme", now + 60)
            )?)
            .await,
            Rejection::BadToken
        );
        assert_eq!(check("not.a.jwt".to_owned()).await, Rejection::BadToken);

        reg.revoke_credential(&ed.id).await?;
        assert_eq!(
            check(token(
                Algorithm::EdDSA,
                &ed.id,
                &ed_sign,
                claims("dev-a", "acme", now + 60)
            )?)
            .await,
            Rejection::RevokedKey
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn client_certificates_map_to_their_device() -> anyhow::Result<()> {
    each_backend("certificates", |ctx| async move {
        let reg = ctx.registry;
        setup(&reg).await?;
        let auth = reg.authenticator(AuthConfig::default());
        let cert_a = CertificateFingerprint::of_der(b"DER of dev-a's certificate");
        let cred = reg.add_certificate("dev-a", &cert_a).await?;
        assert!(matches!(
            reg.add_certificate("dev-b", &cert_a).await,
            Err(Error::AlreadyExists {
                what: "certificate",
                ..
            })
        ));

        let who = auth.verify_certificate(&cert_a).await?;
        assert_eq!(
            (who.device_id.as_str(), who.tenant_id.as_str(), who.method),
            ("dev-a", "acme", AuthMethod::Certificate)
        );
        // The same fingerprint as a TLS terminator prints it.
        let colons = cert_a
            .to_hex()
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(CertificateFingerprint::from_hex(&colons)?, cert_a);

        let unknown = CertificateFingerprint::of_der(b"someone else's certificate");
        assert_eq!(
            rejection(auth.verify_certificate(&unknown).await),
            Rejection::UnknownCertificate
        );
        reg.revoke_credential(&cred.id).await?;
        assert_eq!(
            rejection(auth.verify_certificate(&cert_a).await),
            Rejection::RevokedKey
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_device_may_send_only_for_its_own_id_and_tenant() -> anyhow::Result<()> {
    each_backend("authorize", |ctx| async move {
        let reg = ctx.registry;
        setup(&reg).await?;
        let cert = CertificateFingerprint::of_der(b"cert");
        reg.add_certificate("dev-a", &cert).await?;
        let who = reg
            .authenticator(AuthConfig::default())
            .verify_certificate(&cert)
            .await?;
        who.authorize("dev-a", "acme")?;
        assert_eq!(
            rejection(who.authorize("dev-b", "acme")),
            Rejection::WrongDevice
        );
        assert_eq!(
            rejection(who.authorize("dev-a", "other")),
            Rejection::WrongTenant
        );
        Ok(())
    })
    .await
}

#[test]
fn rejection_codes_are_stable() {
    let codes = [
        (Rejection::BadSignature, "bad_signature"),
        (Rejection::ExpiredTimestamp, "expired_timestamp"),
        (Rejection::ReplayedNonce, "replayed_nonce"),
        (Rejection::WrongDevice, "wrong_device"),
        (Rejection::WrongTenant, "wrong_tenant"),
        (Rejection::RevokedKey, "revoked_key"),
        (Rejection::UnknownCertificate, "unknown_certificate"),
        (Rejection::UnknownKey, "unknown_key"),
        (Rejection::DeviceDisabled, "device_disabled"),
        (Rejection::ExpiredToken, "expired_token"),
        (Rejection::TokenNotYetValid, "token_not_yet_valid"),
        (Rejection::BadToken, "bad_token"),
        (Rejection::MalformedRequest, "malformed_request"),
    ];
    for (r, code) in codes {
        assert_eq!(r.code(), code);
        assert_eq!(r.to_string(), code);
    }
}
