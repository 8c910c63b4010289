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
            },
            "deviceHmac": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Iotflow-Signature",
                "description": "An HMAC-signed request. Headers: X-Iotflow-Device (device id), \
                    X-Iotflow-Key-Id (an HMAC key of the device), X-Iotflow-Timestamp (Unix ms, \
                    within the replay window of the server clock), X-Iotflow-Nonce (1-64 printable \
                    ASCII characters, never reused) and X-Iotflow-Signature: base64 of \
                    HMAC-SHA256(key, \"iotflow-hmac-v1\\n\" + device + \"\\n\" + key_id + \"\\n\" + \
                    timestamp + \"\\n\" + nonce + \"\\n\" + body bytes)."
            },
            "deviceJwt": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A device JWT (ES256 or EdDSA) signed with a key registered for \
                    the device; `kid` names the key, `sub` is the device, `tenant` its tenant, \
                    `exp` required."
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
    ingest(&mut s);
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

fn ingest(s: &mut Map<String, Value>) {
    s.insert(
        "Reading".into(),
        json!({
            "type": "object",
            "description": "A fleet-v1 reading. Only the JSON shape is checked at the door; the \
                pipeline validates the rest and rejects bad readings with their reason.",
            "required": ["device_id", "ts", "metric", "value"],
            "properties": {
                "device_id": {"type": "string", "description": "The authenticated device's id."},
                "ts": millis("Event time, Unix milliseconds."),
                "metric": {"type": "string", "examples": ["temp", "humidity", "pressure", "vibration"]},
                "value": {"type": "number"},
                "unit": {"type": "string"},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }),
    );
    s.insert(
        "Accepted".into(),
        json!({
            "type": "object",
            "required": ["accepted"],
            "properties": {"accepted": {"type": "integer", "minimum": 0,
                                        "description": "Readings queued."}}
        }),
    );
    let count =
        |description: &str| json!({"type": "integer", "minimum": 0, "description": description});
    s.insert(
        "IngestStats".into(),
        json!({
            "type": "object",
            "properties": {
                "queue_depth": count("Readings accepted and waiting for the pipeline."),
                "queue_capacity": count("Most readings the queue holds."),
                "closed": {"type": "boolean", "description": "Whether the queue refuses readings."},
                "accepted_requests": count("Requests answered 202."),
                "accepted_readings": count("Readings in those requests."),
                "rejected_full_requests": count("Requests answered 503 queue_full."),
                "rejected_full_readings": count("Readings in those requests (none queued)."),
                "rejected_closed_requests": count("Requests refused because the queue was closed."),
                "auth_failures": count("Requests with missing or refused device credentials."),
                "forbidden": count("Requests with readings of another device."),
                "bad_requests": count("Requests refused as malformed (400, 413, 415)."),
                "delivered_readings": count("Readings handed to the pipeline."),
                "position": count("Readings delivered since the job first started."),
                "checkpointed_position": count("The position in the newest completed checkpoint."),
                "lost_readings": count("Readings accepted but not delivered because the pipeline stopped.")
            }
        }),
    );
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
    let mut device_unauthorized = error(
        "Device credentials missing or refused; the code is the reason (`unauthorized`, \
         `bad_signature`, `unknown_key`, `expired_timestamp`, `replayed_nonce`, `revoked_key`, \
         `device_disabled`, `bad_token`, `expired_token`, `malformed_request`, ...).",
    );
    device_unauthorized["headers"] = json!({
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`IotflowHmac realm=\"iotflow-ingest\", Bearer realm=\"iotflow-ingest\"`"}
    });
    let mut ingest_unavailable = error(
        "`queue_full`: not all of the request's readings fit in the ingest queue, and none was \
         queued; retry after `Retry-After` seconds (`ingest.retry_after_secs`). `unavailable`: \
         no pipeline is attached, the queue is closed, or the registry is unreachable.",
    );
    ingest_unavailable["headers"] = json!({
        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
    });
    json!({
        "DeviceUnauthorized": device_unauthorized,
        "DeviceForbidden": error("`wrong_device`: a reading names another device than the authenticated one \
            (or the credential is another device's); nothing was queued."),
        "IngestUnavailable": ingest_unavailable,
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
