//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand.
//!
//! Each operation is one `Op` (in `operations.rs`); the tests below check
//! that the operations are exactly the rows of the route table, with the
//! same access rules, and that every `$ref` resolves.

mod operations;
mod schemas;

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::config::Scope;
use operations::{Op, ops};

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    let (status, description, schema) = op.ok;
    let mut ok = json!({"description": description});
    if let Some(schema) = schema {
        ok["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    } else if op.path == "/openapi.json" {
        ok["content"] = json!({"application/json": {"schema": {"type": "object"}}});
    }
    responses.insert(status.to_string(), ok);
    let mut errors: Vec<u16> = op.errors.to_vec();
    if !op.params.is_empty() || op.body.is_some() {
        errors.push(400);
    }
    if op.body.is_some() {
        errors.extend([413, 415]);
    }
    match op.scope {
        Some(Scope::Admin) => errors.extend([401, 403]),
        Some(Scope::Read) => errors.push(401),
        None => {}
    }
    // Every operation behind a token or a device credential reads the
    // registry; the public ones (`/healthz`, `/openapi.json`) do not.
    if op.scope.is_some() || op.device {
        errors.extend([500, 503]);
    }
    if op.device {
        errors.extend([401, 403]);
    }
    errors.sort_unstable();
    errors.dedup();
    for e in errors {
        let name = match e {
            400 => "BadRequest",
            401 if op.device => "DeviceUnauthorized",
            403 if op.device => "DeviceForbidden",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            413 => "PayloadTooLarge",
            415 => "UnsupportedMediaType",
            503 if op.device => "IngestUnavailable",
            503 => "Unavailable",
            _ => "Internal",
        };
        responses.insert(
            e.to_string(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    let mut o = json!({
        "operationId": op.id,
        "summary": op.summary,
        "responses": responses,
        "security": match op.scope {
            Some(scope) => json!([{"bearer": [scope.as_str()]}]),
            None if op.device => json!([{"deviceHmac": []}, {"deviceJwt": []}]),
            None => json!([]),
        },
    });
    if !op.params.is_empty() {
        o["parameters"] = Value::Array(op.params.clone());
    }
    if let Some(body) = &op.body {
        o["requestBody"] = body.clone();
    }
    o
}

fn build() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let item = paths
            .entry(op.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[op.verb.as_str()] = operation(&op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "iotflow device registry and ingest API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tenants, devices, groups and device credentials; readings from \
                devices. Every call but /healthz, /openapi.json and the ingest routes needs \
                `Authorization: Bearer <token>`; devices post readings with their own \
                credentials (HMAC signature headers or a device JWT). Errors are \
                `{\"error\": {\"code\", \"message\"}}`."
        },
        "paths": paths,
        "components": schemas::components(),
    })
}

/// The document, built once.
pub(crate) fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::table;

    /// (method, path, required scope) of every operation in the document.
    fn documented() -> BTreeSet<(String, String, Option<String>)> {
        let mut out = BTreeSet::new();
        let paths = document()["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                // A token's scope, or "device" for device credentials.
                let scope =
                    op["security"]
                        .as_array()
                        .expect("security")
                        .first()
                        .map(|req| match req.get("bearer") {
                            Some(scopes) => scopes[0].as_str().expect("scope").to_owned(),
                            None => {
                                assert!(req.get("deviceHmac").is_some(), "{req}");
                                "device".to_owned()
                            }
                        });
                out.insert((method.clone(), path.clone(), scope));
            }
        }
        out
    }

    #[test]
    fn the_document_describes_exactly_the_routes_served() {
        let served: BTreeSet<_> = table()
            .iter()
            .map(|r| {
                (
                    r.verb.as_str().to_owned(),
                    r.path.to_owned(),
                    match (r.scope, r.device) {
                        (Some(s), _) => Some(s.as_str().to_owned()),
                        (None, true) => Some("device".to_owned()),
                        (None, false) => None,
                    },
                )
            })
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served but not documented: {undocumented:?}; documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn path_templates_and_parameters_agree() {
        for op in ops() {
            let in_template: BTreeSet<&str> = op
                .path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = op
                .params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("name"))
                .collect();
            assert_eq!(in_template, declared, "{}", op.path);
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value, seen: &mut usize) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("local reference");
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                        *seen += 1;
                    }
                    m.values().for_each(|x| walk(x, doc, seen));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, seen)),
                _ => {}
            }
        }
        let doc = document();
        let mut seen = 0;
        walk(doc, doc, &mut seen);
        assert!(seen > 50, "only {seen} references");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let ops = ops();
        let ids: BTreeSet<&str> = ops.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), ops.len());
    }
}
