use reqwest::Method;
use serde_json::json;

use crate::common::each_backend;

/// Every operation of `/openapi.json` is served: a request to it, with
/// ids that name nothing, never reaches the unknown-route or wrong-method
/// fallback. (That every route served is documented is a unit test of
/// the crate, over its route table.)
#[tokio::test]
async fn every_documented_operation_is_served() -> anyhow::Result<()> {
    each_backend("openapi", |ctx| async move {
        let api = &ctx.api;
        let doc = api
            .with_token(None)
            .get("/openapi.json")
            .await?
            .expect(200)?;
        assert_eq!(doc["openapi"], "3.1.0");
        let bearer = &doc["components"]["securitySchemes"]["bearer"];
        assert_eq!(
            (&bearer["type"], &bearer["scheme"]),
            (&json!("http"), &json!("bearer"))
        );
        let mut count = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                count += 1;
                let what = format!("{method} {path}");
                assert!(op["operationId"].is_string(), "{what}: no operationId");
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{what}"
                );
                let concrete = path
                    .replace("{id}", "no-such-id")
                    .replace("{device}", "no-such-device");
                let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
                let mut req = api.request(method, &concrete);
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    if content.contains_key("text/csv") {
                        req = req
                            .header("content-type", "text/csv")
                            .body("name,type,tenant_id\n");
                    } else {
                        req = req.json(&json!({}));
                    }
                }
                let r = api.send(req).await?;
                let message = r.body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    r.status != 405 && !message.starts_with("no route"),
                    "{what}: not served: {} {}",
                    r.status,
                    r.text
                );
                // Whatever the outcome, it is documented.
                assert!(
                    op["responses"].get(r.status.to_string()).is_some(),
                    "{what}: answered {} which is not documented: {}",
                    r.status,
                    r.text
                );
            }
        }
        assert_eq!(count, 25);
        // The check above does tell unknown routes apart.
        let r = api.get("/no/such/route").await?;
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route"))
        );
        Ok(())
    })
    .await
}
