use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use iotflow_devices::{
    AuthConfig, AuthMethod, Authenticator, CertificateFingerprint, Error, Rejection, SignedMessage,
    sign_message,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde_json::{Value, json};

use crate::common::{Api, T0_MS, device, each_backend, tenant};

const BODY: &[u8] = br#"{"metric":"temp","value":21.5}"#;

/// The rejection reason of a result that must be refused.
fn rejection<T: std::fmt::Debug>(r: Result<T, Error>) -> anyhow::Result<Rejection> {
    match r {
        Err(Error::Rejected(reason)) => Ok(reason),
        other => anyhow::bail!("expected a rejection, got {other:?}"),
    }
}

/// Verifies a message from `device` signed with the issued key `key`.
async fn verify(
    auth: &Authenticator,
    device: &str,
    key: &Value,
    nonce: &str,
) -> Result<iotflow_devices::Identity, Error> {
    let key_id = key["key_id"].as_str().unwrap_or_default();
    let secret = key["secret"].as_str().unwrap_or_default();
    let signature = sign_message(secret, device, key_id, T0_MS, nonce, BODY)?;
    auth.verify_hmac(&SignedMessage {
        device_id: device,
        key_id,
        timestamp_ms: T0_MS,
        nonce,
        signature: &signature,
        body: BODY,
    })
    .await
}

async fn issue(api: &Api, path: &str) -> anyhow::Result<Value> {
    let r = api.post_empty(path).await?;
    anyhow::ensure!(
        r.header("cache-control") == "no-store",
        "a secret without Cache-Control: no-store"
    );
    r.expect(201)
}

async fn list(api: &Api, device: &str) -> anyhow::Result<Vec<Value>> {
    let r = api
        .get(&format!("/devices/{device}/credentials"))
        .await?
        .expect(200)?;
    Ok(r["credentials"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn hmac_keys_verify_until_rotated_or_revoked_and_are_never_listed() -> anyhow::Result<()> {
    each_backend("hmac", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "dev-a", "pump").await?;
        let auth = ctx.registry.authenticator(AuthConfig::default());

        let k1 = issue(api, "/devices/dev-a/credentials/hmac").await?;
        assert_eq!(
            (&k1["device_id"], &k1["kind"]),
            (&json!("dev-a"), &json!("hmac"))
        );
        assert_eq!(
            B64.decode(k1["secret"].as_str().unwrap_or_default())?.len(),
            32
        );
        let who = verify(&auth, "dev-a", &k1, "n-1").await?;
        assert_eq!(who.credential_id, k1["key_id"].as_str().unwrap_or_default());
        assert_eq!(
            (who.device_id.as_str(), who.tenant_id.as_str(), who.method),
            ("dev-a", "acme", AuthMethod::Hmac)
        );

        // A second key leaves the first valid; the listing shows both, no secret.
        let k2 = issue(api, "/devices/dev-a/credentials/hmac").await?;
        verify(&auth, "dev-a", &k1, "n-2").await?;
        verify(&auth, "dev-a", &k2, "n-3").await?;
        let listed = api.get("/devices/dev-a/credentials").await?;
        for k in [&k1, &k2] {
            let secret = k["secret"].as_str().unwrap_or_default();
            assert!(
                !listed.text.contains(secret),
                "a secret is listed: {}",
                listed.text
            );
        }
        let creds = listed.expect(200)?["credentials"].clone();
        let listed_key = |k: &Value| {
            json!({"id": k["key_id"], "device_id": "dev-a", "kind": "hmac", "fingerprint": null,
                   "created_at": T0_MS, "revoked_at": null})
        };
        // Both were made at T0: the registry orders them by id then.
        let mut expected = vec![listed_key(&k1), listed_key(&k2)];
        expected.sort_by(|x, y| x["id"].as_str().cmp(&y["id"].as_str()));
        assert_eq!(creds, Value::Array(expected));

        // Rotation revokes every other HMAC key.
        let k3 = issue(api, "/devices/dev-a/credentials/hmac/rotate").await?;
        for (k, nonce) in [(&k1, "n-4"), (&k2, "n-5")] {
            assert_eq!(
                rejection(verify(&auth, "dev-a", k, nonce).await)?,
                Rejection::RevokedKey
            );
        }
        verify(&auth, "dev-a", &k3, "n-6").await?;
        let revoked: Vec<bool> = list(api, "dev-a")
            .await?
            .iter()
            .filter(|c| c["id"] != k3["key_id"])
            .map(|c| c["revoked_at"] == json!(T0_MS))
            .collect();
        assert_eq!(revoked, [true, true]);

        // Revoking through the API: refused from then on; twice is fine.
        let k3_id = k3["key_id"].as_str().unwrap_or_default();
        api.delete(&format!("/credentials/{k3_id}"))
            .await?
            .expect(204)?;
        assert_eq!(
            rejection(verify(&auth, "dev-a", &k3, "n-7").await)?,
            Rejection::RevokedKey
        );
        api.delete(&format!("/credentials/{k3_id}"))
            .await?
            .expect(204)?;
        assert!(
            list(api, "dev-a")
                .await?
                .iter()
                .all(|c| c["revoked_at"] == json!(T0_MS))
        );
        Ok(())
    })
    .await
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// An Ed25519 signing key and its public key as SPKI PEM.
fn ed25519() -> anyhow::Result<(EncodingKey, String)> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((
        EncodingKey::from_ed_der(pkcs8.as_ref()),
        pem("PUBLIC KEY", &spki),
    ))
}

/// A P-256 signing key and its public key as SPKI PEM.
fn p256() -> anyhow::Result<(EncodingKey, String)> {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair =
        EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((
        EncodingKey::from_ec_der(pkcs8.as_ref()),
        pem("PUBLIC KEY", &spki),
    ))
}

fn jwt(alg: Algorithm, kid: &str, key: &EncodingKey) -> anyhow::Result<String> {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let claims = json!({"sub": "dev-a", "tenant": "acme", "exp": T0_MS / 1000 + 600});
    Ok(jsonwebtoken::encode(&header, &claims, key)?)
}

#[tokio::test]
async fn jwt_keys_verify_tokens_until_revoked() -> anyhow::Result<()> {
    each_backend("jwt", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "dev-a", "pump").await?;
        let auth = ctx.registry.authenticator(AuthConfig {
            jwt_leeway: Duration::ZERO,
            ..AuthConfig::default()
        });
        for (alg_name, alg, kind, (signing, public_pem)) in [
            ("EdDSA", Algorithm::EdDSA, "jwt_eddsa", ed25519()?),
            ("ES256", Algorithm::ES256, "jwt_es256", p256()?),
        ] {
            let cred = api
                .post(
                    "/devices/dev-a/credentials/jwt",
                    &json!({"alg": alg_name, "public_key_pem": public_pem}),
                )
                .await?
                .expect(201)?;
            assert_eq!(
                (&cred["kind"], &cred["device_id"]),
                (&json!(kind), &json!("dev-a"))
            );
            let kid = cred["id"].as_str().unwrap_or_default().to_owned();
            let token = jwt(alg, &kid, &signing)?;
            let who = auth.verify_jwt(&token).await?;
            assert_eq!(
                (who.credential_id.as_str(), who.method),
                (kid.as_str(), AuthMethod::Jwt)
            );

            api.delete(&format!("/credentials/{kid}"))
                .await?
                .expect(204)?;
            assert_eq!(
                rejection(auth.verify_jwt(&token).await)?,
                Rejection::RevokedKey
            );
        }
        // A key that is not a public key of the named kind.
        let msg = api
            .post(
                "/devices/dev-a/credentials/jwt",
                &json!({"alg": "ES256", "public_key_pem": ed25519()?.1}),
            )
            .await?
            .expect_error(400, "invalid_input")?;
        assert!(msg.contains("public key"), "{msg}");
        api.post(
            "/devices/dev-a/credentials/jwt",
            &json!({"alg": "RS256", "public_key_pem": p256()?.1}),
        )
        .await?
        .expect_error(400, "malformed_body")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn certificates_register_by_pem_der_or_fingerprint() -> anyhow::Result<()> {
    each_backend("certificates", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "dev-a", "pump").await?;
        device(api, "acme", "dev-b", "pump").await?;
        let auth = ctx.registry.authenticator(AuthConfig::default());
        // Stand-ins for DER certificates: the fingerprint is over whatever bytes.
        let der_1 = [0x30u8, 0x03, 0x02, 0x01, 0x01];
        let der_2 = [0x30u8, 0x03, 0x02, 0x01, 0x02];
        let der_3 = [0x30u8, 0x03, 0x02, 0x01, 0x03];
        let fp_3 = CertificateFingerprint::of_der(&der_3).to_hex();
        let fp_3_colons = fp_3
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":");
        let mut ids = Vec::new();
        for (body, der) in [
            (json!({"pem": pem("CERTIFICATE", &der_1)}), der_1),
            (json!({"der_base64": B64.encode(der_2)}), der_2),
            (json!({"fingerprint": fp_3_colons}), der_3),
        ] {
            let cred = api
                .post("/devices/dev-a/credentials/certificates", &body)
                .await?
                .expect(201)?;
            let fp = CertificateFingerprint::of_der(&der);
            assert_eq!(
                (&cred["kind"], &cred["fingerprint"]),
                (&json!("x509"), &json!(fp.to_hex()))
            );
            let who = auth.verify_certificate(&fp).await?;
            assert_eq!(
                (who.device_id.as_str(), who.method),
                ("dev-a", AuthMethod::Certificate)
            );
            ids.push(cred["id"].as_str().unwrap_or_default().to_owned());
        }
        // One certificate, one device.
        api.post(
            "/devices/dev-b/credentials/certificates",
            &json!({"der_base64": B64.encode(der_1)}),
        )
        .await?
        .expect_error(409, "already_exists")?;
        // Exactly one form, and a well-formed one.
        for bad in [
            json!({}),
            json!({"pem": pem("CERTIFICATE", &der_1), "fingerprint": fp_3}),
            json!({"fingerprint": "abcd"}),
            json!({"pem": "not a pem"}),
            json!({"der_base64": "%%%"}),
        ] {
            api.post("/devices/dev-b/credentials/certificates", &bad)
                .await?
                .expect_error(400, "invalid_input")?;
        }

        api.delete(&format!("/credentials/{}", ids[0]))
            .await?
            .expect(204)?;
        assert_eq!(
            rejection(
                auth.verify_certificate(&CertificateFingerprint::of_der(&der_1))
                    .await
            )?,
            Rejection::RevokedKey
        );
        let listed = list(api, "dev-a").await?;
        assert_eq!(listed.len(), 3);
        assert_eq!(
            listed
                .iter()
                .filter(|c| c["revoked_at"] == json!(T0_MS))
                .count(),
            1
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn credentials_of_unknown_devices_and_ids_are_404() -> anyhow::Result<()> {
    each_backend("credentials-404", |ctx| async move {
        let api = &ctx.api;
        for path in [
            "/devices/nope/credentials/hmac",
            "/devices/nope/credentials/hmac/rotate",
        ] {
            let msg = api.post_empty(path).await?.expect_error(404, "not_found")?;
            assert_eq!(msg, "device \"nope\" not found");
        }
        api.post(
            "/devices/nope/credentials/certificates",
            &json!({"fingerprint": "00".repeat(32)}),
        )
        .await?
        .expect_error(404, "not_found")?;
        api.post(
            "/devices/nope/credentials/jwt",
            &json!({"alg": "EdDSA", "public_key_pem": ed25519()?.1}),
        )
        .await?
        .expect_error(404, "not_found")?;
        api.get("/devices/nope/credentials")
            .await?
            .expect_error(404, "not_found")?;
        let msg = api
            .delete("/credentials/nope")
            .await?
            .expect_error(404, "not_found")?;
        assert_eq!(msg, "credential \"nope\" not found");
        Ok(())
    })
    .await
}
