use reqwest::Method;
use serde_json::json;
use sqlx::{Connection as _, Executor as _};

use crate::common::{MAX_BODY, device, each_backend, tenant};

/// Sends `body` as-is with `content_type` to `method path`.
async fn raw(
    api: &crate::common::Api,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<crate::common::Resp> {
    let mut req = api.request(method, path).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    api.send(req).await
}

#[tokio::test]
async fn malformed_json_bodies_get_400_in_our_shape() -> anyhow::Result<()> {
    each_backend("malformed-json", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "d1", "pump").await?;
        // serde_json stops at 128 levels; a stack overflow here would kill the server.
        let deep = format!(
            "{{\"tenant_id\": \"acme\", \"name\": \"a\", \"type\": \"t\", \"metadata\": {{\"x\": {}}}}}",
            "[".repeat(10_000)
        );
        let cases: Vec<(Method, &str, Vec<u8>, &str)> = vec![
            (Method::POST, "/devices", b"".to_vec(), "EOF"),
            (Method::POST, "/devices", b"{".to_vec(), "EOF"),
            (
                Method::POST,
                "/devices",
                b"{\"tenant_id\": \"acme\", \"name\": \"a\", \"type\": \"t\"} x".to_vec(),
                "trailing",
            ),
            (Method::POST, "/devices", b"[]".to_vec(), "expected struct"),
            (Method::POST, "/devices", b"null".to_vec(), "expected struct"),
            (Method::POST, "/devices", b"{\"tenant_id\": 5, \"name\": \"a\", \"type\": \"t\"}".to_vec(), "invalid type"),
            (Method::POST, "/devices", b"{\"tenant_id\": \"acme\", \"name\": \"a\"}".to_vec(), "missing field `type`"),
            (
                Method::POST,
                "/devices",
                b"{\"tenant_id\": \"acme\", \"name\": \"a\", \"type\": \"t\", \"colour\": 1}".to_vec(),
                "unknown field `colour`",
            ),
            (Method::POST, "/devices", b"{\"name\": \"\xff\xfe\"}".to_vec(), "invalid unicode"),
            (Method::POST, "/devices", deep.into_bytes(), "recursion limit"),
            (Method::POST, "/tenants", b"{\"id\": \"x\"}".to_vec(), "missing field `name`"),
            (Method::PUT, "/devices/d1/status", b"{\"status\": \"sleeping\"}".to_vec(), "unknown variant"),
            (Method::PUT, "/devices/d1/status", b"{}".to_vec(), "missing field `status`"),
            (Method::PATCH, "/devices/d1", b"{\"firmware\": \"1\"}".to_vec(), "unknown field"),
            (Method::POST, "/tenants/acme/groups", b"{\"name\": [\"x\"]}".to_vec(), "invalid type"),
        ];
        for (method, path, body, expected) in cases {
            let what = format!("{method} {path} {:?}", String::from_utf8_lossy(&body[..body.len().min(60)]));
            let msg = raw(api, method, path, Some("application/json"), body)
                .await?
                .expect_error(400, "malformed_body")
                .map_err(|e| e.context(what.clone()))?;
            assert!(msg.contains(expected), "{what}: {msg}");
        }
        // Nothing was changed by any of them.
        let d = api.get("/devices/d1").await?.expect(200)?;
        assert_eq!((&d["status"], &d["firmware_version"]), (&json!("active"), &json!(null)));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn invalid_values_get_400_invalid_input() -> anyhow::Result<()> {
    each_backend("invalid-input", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "d1", "pump").await?;
        let long = "x".repeat(129);
        let bodies = [
            json!({"tenant_id": "acme", "name": "", "type": "t"}),
            json!({"tenant_id": "acme", "name": "a", "type": "t", "id": ""}),
            json!({"tenant_id": "acme", "name": "a", "type": "t", "id": long}),
            json!({"tenant_id": "acme", "name": "a\nb", "type": "t"}),
            json!({"tenant_id": "acme", "name": "a", "type": "t", "metadata": [1, 2]}),
            json!({"tenant_id": "acme", "name": "a", "type": "t", "firmware_version": "1\u{0}"}),
            json!({"tenant_id": "ac\u{0}me", "name": "a", "type": "t"}),
            json!({"tenant_id": "acme", "name": "a", "type": "t", "groups": ["g\u{0}"]}),
        ];
        for body in bodies {
            api.post("/devices", &body)
                .await?
                .expect_error(400, "invalid_input")
                .map_err(|e| e.context(body.to_string()))?;
        }
        for body in [
            json!({"id": "", "name": "n"}),
            json!({"id": "t\u{0}", "name": "n"}),
            json!({"id": "t2", "name": "n\u{0}"}),
        ] {
            api.post("/tenants", &body)
                .await?
                .expect_error(400, "invalid_input")
                .map_err(|e| e.context(body.to_string()))?;
        }
        for body in [
            json!({}),
            json!({"firmware_version": null}),
            json!({"metadata": "x"}),
            json!({"firmware_version": "2.0", "metadata": [1]}),
            json!({"firmware_version": "\u{7}"}),
        ] {
            api.patch("/devices/d1", &body)
                .await?
                .expect_error(400, "invalid_input")
                .map_err(|e| e.context(body.to_string()))?;
        }
        // The refused PATCH with a good firmware and a bad metadata changed nothing.
        assert_eq!(
            api.get("/devices/d1").await?.expect(200)?["firmware_version"],
            json!(null)
        );

        for path in ["/devices/%FF", "/devices/a%00b", "/groups/x/devices/%C3%28"] {
            let method = if path.starts_with("/groups") {
                Method::PUT
            } else {
                Method::GET
            };
            api.call(method, path, None)
                .await?
                .expect_error(400, "invalid_path")
                .map_err(|e| e.context(path))?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_things_get_404_and_known_ones_409() -> anyhow::Result<()> {
    each_backend("404-409", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "d1", "pump").await?;
        for (method, path, body, message) in [
            (
                Method::GET,
                "/devices/nope",
                None,
                "device \"nope\" not found",
            ),
            (
                Method::GET,
                "/tenants/nope",
                None,
                "tenant \"nope\" not found",
            ),
            (
                Method::GET,
                "/groups/nope",
                None,
                "group \"nope\" not found",
            ),
            (
                Method::PATCH,
                "/devices/nope",
                Some(json!({"firmware_version": "2"})),
                "device \"nope\" not found",
            ),
            (
                Method::PUT,
                "/devices/nope/status",
                Some(json!({"status": "active"})),
                "device \"nope\" not found",
            ),
            (
                Method::POST,
                "/devices",
                Some(json!({"tenant_id": "nope", "name": "a", "type": "t"})),
                "tenant \"nope\" not found",
            ),
            (Method::GET, "/nope", None, "no route for GET /nope"),
            (
                Method::POST,
                "/devices/d1/nope",
                None,
                "no route for POST /devices/d1/nope",
            ),
            (Method::GET, "/devices/", None, "no route for GET /devices/"),
        ] {
            let msg = api
                .call(method.clone(), path, body.as_ref())
                .await?
                .expect_error(404, "not_found")
                .map_err(|e| e.context(format!("{method} {path}")))?;
            assert_eq!(msg, message);
        }
        // Unknown routes are 404 with or without a token.
        api.with_token(None)
            .get("/nope")
            .await?
            .expect_error(404, "not_found")?;

        let msg = api
            .post("/tenants", &json!({"id": "acme", "name": "again"}))
            .await?
            .expect_error(409, "already_exists")?;
        assert_eq!(msg, "tenant \"acme\" already exists");
        api.post(
            "/devices",
            &json!({"tenant_id": "acme", "id": "d1", "name": "a", "type": "t"}),
        )
        .await?
        .expect_error(409, "already_exists")?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn wrong_methods_sizes_and_content_types() -> anyhow::Result<()> {
    each_backend("405-413-415", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        let r = api.delete("/devices").await?;
        let allow = r.header("allow").to_owned();
        r.expect_error(405, "method_not_allowed")?;
        assert!(
            allow.contains("GET") && allow.contains("POST"),
            "Allow: {allow:?}"
        );
        api.call(Method::PUT, "/healthz", None)
            .await?
            .expect_error(405, "method_not_allowed")?;

        let big = json!({
            "tenant_id": "acme", "name": "big", "type": "t",
            "metadata": {"blob": "x".repeat(MAX_BODY)}
        });
        api.post("/devices", &big)
            .await?
            .expect_error(413, "payload_too_large")?;
        // Just under the limit is fine.
        let fits = json!({
            "tenant_id": "acme", "name": "fits", "type": "t",
            "metadata": {"blob": "x".repeat(MAX_BODY - 200)}
        });
        api.post("/devices", &fits).await?.expect(201)?;

        let body = br#"{"tenant_id": "acme", "name": "a", "type": "t"}"#.to_vec();
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("text/csv"),
            None,
        ] {
            raw(api, Method::POST, "/devices", ct, body.clone())
                .await?
                .expect_error(415, "unsupported_media_type")
                .map_err(|e| e.context(format!("{ct:?}")))?;
        }
        raw(
            api,
            Method::POST,
            "/devices",
            Some("application/json; charset=utf-8"),
            body,
        )
        .await?
        .expect(201)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn database_failures_are_500_without_details() -> anyhow::Result<()> {
    each_backend("500", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        device(api, "acme", "d1", "pump").await?;
        let mut conn = sqlx::AnyConnection::connect(&ctx.url).await?;
        conn.execute("DROP TABLE credentials").await?;
        conn.close().await?;
        let r = api.get("/devices/d1/credentials").await?;
        let text = r.text.clone();
        r.expect_error(500, "internal")?;
        for leak in ["credentials", "table", "relation", "sql", "SQL"] {
            assert!(!text.contains(leak), "500 leaks {leak:?}: {text}");
        }
        // The server goes on serving.
        api.get("/devices/d1").await?.expect(200)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after() -> anyhow::Result<()> {
    each_backend("503", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        ctx.registry.close().await;
        let r = api.get("/tenants/acme").await?;
        let retry = r.header("retry-after").to_owned();
        r.expect_error(503, "unavailable")?;
        assert_eq!(retry, "5");
        api.post("/tenants", &json!({"id": "b", "name": "b"}))
            .await?
            .expect_error(503, "unavailable")?;
        // What needs no database still answers.
        api.get("/healthz").await?.expect(200)?;
        Ok(())
    })
    .await
}
