//! Device authentication on the ingest routes, through the registry.

use iotflow_devices::CredentialKind;
use iotflow_server::IngestConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::json;

use crate::common::{device_with_key, lines, now_ms, reading, signed, start};

#[tokio::test]
async fn hmac_signed_requests_of_the_device_itself_are_accepted() -> anyhow::Result<()> {
    let mut h = start(IngestConfig::default()).await?;
    let (key_id, secret) = device_with_key(&h.registry, "pump-1").await?;
    device_with_key(&h.registry, "pump-2").await?;
    let drain = h.drain()?;

    let one = reading("pump-1", 1);
    let headers = signed("pump-1", &key_id, &secret, "n-1", one.as_bytes())?;
    h.post("/ingest", "application/json", one.clone(), &headers)
        .await?
        .accepted(1)?;
    let batch = format!("[{}, {}]", reading("pump-1", 2), reading("pump-1", 3));
    let headers = signed("pump-1", &key_id, &secret, "n-2", batch.as_bytes())?;
    h.post("/ingest/batch", "application/json", batch.clone(), &headers)
        .await?
        .accepted(2)?;

    // The same request again: its nonce was used.
    h.post("/ingest/batch", "application/json", batch, &headers)
        .await?
        .expect(401, Some("replayed_nonce"))?;
    // A body other than the one signed.
    let headers = signed("pump-1", &key_id, &secret, "n-3", one.as_bytes())?;
    let other = reading("pump-1", 99);
    h.post("/ingest", "application/json", other, &headers)
        .await?
        .expect(401, Some("bad_signature"))?;
    // Signed with another secret.
    let forged = signed(
        "pump-1",
        &key_id,
        "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1rZXk=",
        "n-4",
        one.as_bytes(),
    )?;
    let r = h
        .post("/ingest", "application/json", one.clone(), &forged)
        .await?;
    r.expect(401, Some("bad_signature"))?;
    assert!(r.header("www-authenticate").contains("IotflowHmac"));
    // No credentials at all, or a header missing.
    let r = h
        .post("/ingest", "application/json", one.clone(), &[])
        .await?;
    r.expect(401, Some("unauthorized"))?;
    assert!(r.header("www-authenticate").contains("Bearer"));
    let mut partial = signed("pump-1", &key_id, &secret, "n-5", one.as_bytes())?;
    partial.retain(|(name, _)| *name != "x-iotflow-nonce");
    h.post("/ingest", "application/json", one.clone(), &partial)
        .await?
        .expect(401, Some("malformed_request"))?;
    // pump-1's key claimed for pump-2.
    let mut claimed = signed("pump-1", &key_id, &secret, "n-6", one.as_bytes())?;
    claimed[0].1 = "pump-2".to_owned();
    h.post("/ingest", "application/json", one.clone(), &claimed)
        .await?
        .expect(403, Some("wrong_device"))?;

    // pump-1, properly signed, sending a reading of pump-2: refused whole.
    let mixed = format!("{}\n{}", reading("pump-1", 4), reading("pump-2", 5));
    let headers = signed("pump-1", &key_id, &secret, "n-7", mixed.as_bytes())?;
    let r = h
        .post("/ingest/batch", "application/x-ndjson", mixed, &headers)
        .await?;
    r.expect(403, Some("wrong_device"))?;
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("reading 2") && message.contains("pump-2"),
        "{message}"
    );

    h.stop().await?;
    let got = lines(&drain.finish().await?)?;
    assert_eq!(
        got,
        vec![
            reading("pump-1", 1),
            reading("pump-1", 2),
            reading("pump-1", 3)
        ]
    );
    let stats = h.queue.stats();
    assert_eq!((stats.auth_failures, stats.forbidden), (5, 2));
    Ok(())
}

#[tokio::test]
async fn a_stale_timestamp_is_refused() -> anyhow::Result<()> {
    let mut h = start(IngestConfig {
        replay_window_secs: 60,
        ..IngestConfig::default()
    })
    .await?;
    let (key_id, secret) = device_with_key(&h.registry, "pump-1").await?;
    let body = reading("pump-1", 1);
    let ts = now_ms() - 120_000;
    let signature =
        iotflow_devices::sign_message(&secret, "pump-1", &key_id, ts, "n-1", body.as_bytes())?;
    let headers = [
        ("x-iotflow-device", "pump-1".to_owned()),
        ("x-iotflow-key-id", key_id),
        ("x-iotflow-timestamp", ts.to_string()),
        ("x-iotflow-nonce", "n-1".to_owned()),
        ("x-iotflow-signature", signature),
    ];
    h.post("/ingest", "application/json", body, &headers)
        .await?
        .expect(401, Some("expired_timestamp"))?;
    h.stop().await?;
    Ok(())
}

/// An Ed25519 signing key and its public key as SPKI PEM.
fn ed25519() -> anyhow::Result<(EncodingKey, String)> {
    use base64::Engine as _;
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
    Ok((
        EncodingKey::from_ed_der(pkcs8.as_ref()),
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
    ))
}

#[tokio::test]
async fn a_device_jwt_authenticates_its_readings() -> anyhow::Result<()> {
    let mut h = start(IngestConfig::default()).await?;
    device_with_key(&h.registry, "pump-1").await?;
    let (signing, public_pem) = ed25519()?;
    let cred = h
        .registry
        .add_jwt_key("pump-1", CredentialKind::JwtEdDsa, &public_pem)
        .await?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(cred.id.clone());
    let claims = json!({"sub": "pump-1", "tenant": "acme", "exp": now_ms() / 1000 + 600});
    let token = jsonwebtoken::encode(&header, &claims, &signing)?;
    let bearer = [("authorization", format!("Bearer {token}"))];
    let drain = h.drain()?;

    let batch = format!("{}\n{}", reading("pump-1", 1), reading("pump-1", 2));
    h.post("/ingest/batch", "application/x-ndjson", batch, &bearer)
        .await?
        .accepted(2)?;
    // The token is reusable (it is not a signed message) but never for others.
    h.post("/ingest", "application/json", reading("pump-2", 3), &bearer)
        .await?
        .expect(403, Some("wrong_device"))?;
    h.post(
        "/ingest",
        "application/json",
        reading("pump-1", 4),
        &[("authorization", "Bearer not.a.jwt".to_owned())],
    )
    .await?
    .expect(401, Some("bad_token"))?;
    let expired = json!({"sub": "pump-1", "tenant": "acme", "exp": now_ms() / 1000 - 3600});
    let expired = jsonwebtoken::encode(&header, &expired, &signing)?;
    h.post(
        "/ingest",
        "application/json",
        reading("pump-1", 5),
        &[("authorization", format!("Bearer {expired}"))],
    )
    .await?
    .expect(401, Some("expired_token"))?;

    h.stop().await?;
    let got = lines(&drain.finish().await?)?;
    assert_eq!(got, vec![reading("pump-1", 1), reading("pump-1", 2)]);
    Ok(())
}
