use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Api, READ_TOKEN, each_backend, tenant};

/// Every documented (method, path, required scope), path parameters filled in.
async fn operations(api: &Api) -> anyhow::Result<Vec<(Method, String, Option<String>)>> {
    let doc = api
        .with_token(None)
        .get("/openapi.json")
        .await?
        .expect(200)?;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            // Devices authenticate with their own credentials, not tokens
            // (tests/ingest covers them).
            if op["security"][0].get("deviceHmac").is_some() {
                continue;
            }
            let scope = op["security"][0]["bearer"][0].as_str().map(str::to_owned);
            let concrete = path.replace("{id}", "x").replace("{device}", "y");
            out.push((
                Method::from_bytes(method.to_uppercase().as_bytes())?,
                concrete,
                scope,
            ));
        }
    }
    anyhow::ensure!(out.len() > 20, "only {} operations", out.len());
    Ok(out)
}

#[tokio::test]
async fn every_protected_route_needs_a_token_of_its_scope() -> anyhow::Result<()> {
    each_backend("tokens", |ctx| async move {
        let api = &ctx.api;
        let anonymous = api.with_token(None);
        let wrong = api.with_token(Some("not-a-token-of-this-server"));
        let almost = api.with_token(Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]));
        let read = api.with_token(Some(READ_TOKEN));
        for (method, path, scope) in operations(api).await? {
            let what = format!("{method} {path}");
            let Some(scope) = scope else {
                anonymous.call(method, &path, None).await?.expect(200)?;
                continue;
            };
            // The body is never looked at before the token: no 400 or 415 first.
            let body = Some(json!({"not": "valid"}));
            let r = anonymous.call(method.clone(), &path, body.as_ref()).await?;
            let challenge = r.header("www-authenticate").to_owned();
            r.expect_error(401, "unauthorized")
                .map_err(|e| e.context(what.clone()))?;
            assert_eq!(challenge, "Bearer realm=\"iotflow\"", "{what}");
            for client in [&wrong, &almost] {
                let r = client.call(method.clone(), &path, body.as_ref()).await?;
                let challenge = r.header("www-authenticate").to_owned();
                r.expect_error(401, "unauthorized")
                    .map_err(|e| e.context(what.clone()))?;
                assert!(
                    challenge.contains("error=\"invalid_token\""),
                    "{what}: {challenge}"
                );
            }
            let r = read.call(method.clone(), &path, body.as_ref()).await?;
            if scope == "admin" {
                let challenge = r.header("www-authenticate").to_owned();
                r.expect_error(403, "forbidden")
                    .map_err(|e| e.context(what.clone()))?;
                assert!(
                    challenge.contains("insufficient_scope"),
                    "{what}: {challenge}"
                );
            } else {
                assert!(
                    r.status != 401 && r.status != 403,
                    "{what}: read token refused: {}",
                    r.text
                );
            }
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn read_tokens_read_and_admin_tokens_write() -> anyhow::Result<()> {
    each_backend("scopes", |ctx| async move {
        let api = &ctx.api;
        let read = api.with_token(Some(READ_TOKEN));
        read.post("/tenants", &json!({"id": "acme", "name": "Acme"}))
            .await?
            .expect_error(403, "forbidden")?;
        read.get("/tenants/acme")
            .await?
            .expect_error(404, "not_found")?;
        tenant(api, "acme").await?;
        assert_eq!(read.get("/tenants/acme").await?.expect(200)?["id"], "acme");
        assert_eq!(
            read.get("/tenants").await?.expect(200)?["tenants"][0]["id"],
            "acme"
        );

        // Header forms: the scheme is case-insensitive; others are refused.
        for (header, ok) in [
            (format!("bearer {ADMIN_TOKEN}"), true),
            (format!("BEARER  {ADMIN_TOKEN}"), true),
            (format!("Basic {ADMIN_TOKEN}"), false),
            (ADMIN_TOKEN.to_owned(), false),
            ("Bearer".to_owned(), false),
            ("Bearer ".to_owned(), false),
        ] {
            let r = api
                .with_token(None)
                .send(
                    api.with_token(None)
                        .request(Method::GET, "/tenants")
                        .header("authorization", header.as_str()),
                )
                .await?;
            if ok {
                r.expect(200).map_err(|e| e.context(header.clone()))?;
            } else {
                let challenge = r.header("www-authenticate").to_owned();
                r.expect_error(401, "unauthorized")
                    .map_err(|e| e.context(header.clone()))?;
                assert!(challenge.starts_with("Bearer"), "{header}: {challenge}");
            }
        }
        // A non-ASCII header value is refused, not a crash.
        let r = api
            .send(
                api.with_token(None)
                    .request(Method::GET, "/tenants")
                    .header(
                        "authorization",
                        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe")?,
                    ),
            )
            .await?;
        r.expect_error(401, "unauthorized")?;
        let v: Value = api.with_token(None).get("/healthz").await?.expect(200)?;
        assert_eq!(v["status"], "ok");
        Ok(())
    })
    .await
}
