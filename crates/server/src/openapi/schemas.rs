//! The OpenAPI components: schemas of every body, shared error responses,
//! the bearer security scheme.

use serde_json::{Map, Value, json};

use crate::api_error::{CODES, RETRY_AFTER_SECS};

pub(super) fn components() -> Value {
    json!({
        "schemas": schemas(),
        "responses": responses(),
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token from the server configuration ([[tokens]]). \
                    Tokens of scope `read` may call GET routes; `admin` tokens may call every route."
            }
        }
    })
}

fn nullable(ty: &str, description: &str) -> Value {
    json!({"type": [ty, "null"], "description": description})
}

fn millis(description: &str) -> Value {
    json!({"type": "integer", "format": "int64", "description": description})
}

fn schemas() -> Value {
    let mut s = Map::new();
    s.insert("Error".into(), error());
    s.insert(
        "DeviceStatus".into(),
        json!({
            "type": "string",
            "enum": ["active", "suspended", "decommissioned"],
            "description": "Lifecycle status; only `active` devices authenticate."
        }),
    );
    s.insert(
        "Metadata".into(),
        json!({
            "type": "object",
            "additionalProperties": true,
            "description": "Free-form JSON object."
        }),
    );
    s.insert("Device".into(), device());
    s.insert("NewDevice".into(), new_device());
    s.insert(
        "DevicePatch".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "description": "Fields to change; fields left out stay as they are.",
            "properties": {
                "firmware_version": {"type": "string", "maxLength": 128},
                "metadata": {"$ref": "#/components/schemas/Metadata"}
            }
        }),
    );
    s.insert(
        "StatusChange".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["status"],
            "properties": {"status": {"$ref": "#/components/schemas/DeviceStatus"}}
        }),
    );
    s.insert("DevicePage".into(), json!({
        "type": "object",
        "required": ["devices", "next"],
        "properties": {
            "devices": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}},
            "next": nullable("string", "Pass as `after` for the next page; null on the last page.")
        }
    }));
    s.insert("Provisioned".into(), json!({
        "type": "object",
        "required": ["devices"],
        "properties": {
            "devices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["device", "hmac_key"],
                    "properties": {
                        "device": {"$ref": "#/components/schemas/Device"},
                        "hmac_key": {
                            "description": "The device's first HMAC key (with `issue_keys=true`), shown this once.",
                            "oneOf": [
                                {"type": "null"},
                                {
                                    "type": "object",
                                    "required": ["key_id", "secret"],
                                    "properties": {
                                        "key_id": {"type": "string"},
                                        "secret": {"type": "string", "description": "Base64 of 32 bytes."}
                                    }
                                }
                            ]
                        }
                    }
                }
            }
        }
    }));
    tenants_and_groups(&mut s);
    credentials(&mut s);
    s.insert(
        "Health".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "const": "ok"}}
        }),
    );
    Value::Object(s)
}

fn error() -> Value {
    let codes: Vec<&str> = CODES.iter().map(|(code, _)| *code).collect();
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": codes,
                        "description": "Stable, machine-readable reason."
                    },
                    "message": {"type": "string", "description": "For humans; may change."}
                }
            }
        }
    })
}

fn device() -> Value {
    json!({
        "type": "object",
        "required": ["id", "tenant_id", "name", "type", "status", "firmware_version",
                     "metadata", "groups", "created_at", "updated_at", "last_seen"],
        "properties": {
            "id": {"type": "string"},
            "tenant_id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string", "description": "Device model or kind."},
            "status": {"$ref": "#/components/schemas/DeviceStatus"},
            "firmware_version": nullable("string", "Firmware version, if known."),
            "metadata": {"$ref": "#/components/schemas/Metadata"},
            "groups": {"type": "array", "items": {"type": "string"}, "description": "Group ids, sorted."},
            "created_at": millis("Unix milliseconds."),
            "updated_at": millis("Unix milliseconds of the last change."),
            "last_seen": nullable("integer", "Unix milliseconds the device last sent.")
        }
    })
}

fn new_device() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["tenant_id", "name", "type"],
        "properties": {
            "tenant_id": {"type": "string"},
            "name": {"type": "string", "minLength": 1, "maxLength": 128},
            "type": {"type": "string", "minLength": 1, "maxLength": 128},
            "id": {"type": "string", "minLength": 1, "maxLength": 128,
                   "description": "Generated (32 hex digits) when left out."},
            "firmware_version": {"type": "string", "maxLength": 128},
            "metadata": {"$ref": "#/components/schemas/Metadata"},
            "groups": {"type": "array", "items": {"type": "string"},
                       "description": "Ids of groups of the same tenant to put the device in."}
        }
    })
}

fn tenants_and_groups(s: &mut Map<String, Value>) {
    s.insert(
        "Tenant".into(),
        json!({
            "type": "object",
            "required": ["id", "name", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "created_at": millis("Unix milliseconds.")
            }
        }),
    );
    s.insert(
        "NewTenant".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 128},
                "name": {"type": "string", "maxLength": 128}
            }
        }),
    );
    s.insert("TenantList".into(), json!({
        "type": "object",
        "required": ["tenants"],
        "properties": {"tenants": {"type": "array", "items": {"$ref": "#/components/schemas/Tenant"}}}
    }));
    s.insert(
        "Group".into(),
        json!({
            "type": "object",
            "required": ["id", "tenant_id", "name", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "tenant_id": {"type": "string"},
                "name": {"type": "string"},
                "created_at": millis("Unix milliseconds.")
            }
        }),
    );
    s.insert(
        "NewGroup".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128,
                                    "description": "Unique within the tenant."}}
        }),
    );
    s.insert("GroupList".into(), json!({
        "type": "object",
        "required": ["groups"],
        "properties": {"groups": {"type": "array", "items": {"$ref": "#/components/schemas/Group"}}}
    }));
    s.insert(
        "GroupWithMembers".into(),
        json!({
            "allOf": [
                {"$ref": "#/components/schemas/Group"},
                {
                    "type": "object",
                    "required": ["members"],
                    "properties": {"members": {"type": "array", "items": {"type": "string"},
                                               "description": "Device ids, sorted."}}
                }
            ]
        }),
    );
}

fn credentials(s: &mut Map<String, Value>) {
    s.insert("Credential".into(), json!({
        "type": "object",
        "description": "A credential as listed: never its secret.",
        "required": ["id", "device_id", "kind", "fingerprint", "created_at", "revoked_at"],
        "properties": {
            "id": {"type": "string", "description": "Key id (the JWT `kid`, the HMAC key id)."},
            "device_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["hmac", "jwt_es256", "jwt_eddsa", "x509"]},
            "fingerprint": nullable("string", "SHA-256 of the certificate, lowercase hex (x509 only)."),
            "created_at": millis("Unix milliseconds."),
            "revoked_at": nullable("integer", "Unix milliseconds of revocation.")
        }
    }));
    s.insert("CredentialList".into(), json!({
        "type": "object",
        "required": ["credentials"],
        "properties": {"credentials": {"type": "array", "items": {"$ref": "#/components/schemas/Credential"}}}
    }));
    s.insert(
        "IssuedHmacKey".into(),
        json!({
            "type": "object",
            "description": "A new HMAC-SHA256 key. The secret is shown in this response only.",
            "required": ["key_id", "device_id", "kind", "secret"],
            "properties": {
                "key_id": {"type": "string"},
                "device_id": {"type": "string"},
                "kind": {"type": "string", "const": "hmac"},
                "secret": {"type": "string", "description": "Base64 of 32 random bytes."}
            }
        }),
    );
    s.insert("NewJwtKey".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["alg", "public_key_pem"],
        "properties": {
            "alg": {"type": "string", "enum": ["ES256", "EdDSA"]},
            "public_key_pem": {"type": "string",
                               "description": "SubjectPublicKeyInfo PEM (-----BEGIN PUBLIC KEY-----)."}
        }
    }));
    s.insert("NewCertificate".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Exactly one of the three fields.",
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "fingerprint": {"type": "string",
                            "description": "SHA-256 of the DER certificate: 64 hex digits, `:` separators allowed."},
            "pem": {"type": "string", "description": "The certificate, PEM (-----BEGIN CERTIFICATE-----)."},
            "der_base64": {"type": "string", "description": "The DER certificate, base64."}
        }
    }));
}

fn responses() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    let mut unauthorized =
        error("No token, a malformed Authorization header, or an unknown token.");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer realm=\"iotflow\"…`"}
    });
    let mut forbidden = error("The token's scope does not allow this call.");
    forbidden["headers"] = unauthorized["headers"].clone();
    let mut unavailable = error("The registry database is unreachable or busy; retry later.");
    unavailable["headers"] = json!({
        "Retry-After": {"schema": {"type": "integer"}, "description": format!("Seconds to wait ({RETRY_AFTER_SECS}).")}
    });
    json!({
        "BadRequest": error("Malformed JSON, unknown fields, bad query or path parameters, or invalid values."),
        "Unauthorized": unauthorized,
        "Forbidden": forbidden,
        "NotFound": error("A named tenant, device, group or credential does not exist."),
        "Conflict": error("A tenant, device, group or certificate with this id or name exists already."),
        "PayloadTooLarge": error("The request body is larger than the server accepts."),
        "UnsupportedMediaType": error("The request body has the wrong Content-Type."),
        "Internal": error("An internal failure; the cause is logged, not shown."),
        "Unavailable": unavailable
    })
}
