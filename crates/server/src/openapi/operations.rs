//! The operations of the document, one [`Op`] per route.

use serde_json::{Value, json};

use crate::config::Scope;
use crate::routes::Verb;

/// One documented operation.
pub(super) struct Op {
    pub(super) verb: Verb,
    pub(super) path: &'static str,
    pub(super) id: &'static str,
    pub(super) summary: &'static str,
    pub(super) scope: Option<Scope>,
    /// Called by devices with their own credentials (ingest), not a token.
    pub(super) device: bool,
    pub(super) params: Vec<Value>,
    pub(super) body: Option<Value>,
    /// Status, description and (optional) schema name of the success response.
    pub(super) ok: (u16, &'static str, Option<&'static str>),
    /// Error responses besides those every operation of its kind has.
    pub(super) errors: &'static [u16],
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true,
        "description": description, "schema": {"type": "string"}
    })
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({
        "name": name, "in": "query", "required": false,
        "description": description, "schema": schema
    })
}

fn json_body(schema: &str) -> Option<Value> {
    Some(json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    }))
}

const ADMIN: Option<Scope> = Some(Scope::Admin);
const READ: Option<Scope> = Some(Scope::Read);

pub(super) fn ops() -> Vec<Op> {
    use Verb::{Delete, Get, Patch, Post, Put};
    let device_id = || path_param("id", "Device id.");
    let tenant_id = || path_param("id", "Tenant id.");
    let group_id = || path_param("id", "Group id.");
    let member = || path_param("device", "Device id.");
    let op = |verb, path, id, summary, scope| Op {
        verb,
        path,
        id,
        summary,
        scope,
        device: false,
        params: Vec::new(),
        body: None,
        ok: (200, "OK", None),
        errors: &[],
    };
    vec![
        Op {
            ok: (200, "The server is up.", Some("Health")),
            ..op(
                Get,
                "/healthz",
                "healthz",
                "Liveness check (no token needed).",
                None,
            )
        },
        Op {
            ok: (200, "This document.", None),
            ..op(
                Get,
                "/openapi.json",
                "openapi",
                "This OpenAPI document (no token needed).",
                None,
            )
        },
        Op {
            body: json_body("NewTenant"),
            ok: (201, "The tenant.", Some("Tenant")),
            errors: &[409],
            ..op(Post, "/tenants", "createTenant", "Create a tenant.", ADMIN)
        },
        Op {
            ok: (200, "Every tenant, by id.", Some("TenantList")),
            ..op(Get, "/tenants", "listTenants", "List tenants.", READ)
        },
        Op {
            params: vec![tenant_id()],
            ok: (200, "The tenant.", Some("Tenant")),
            errors: &[404],
            ..op(Get, "/tenants/{id}", "getTenant", "Get a tenant.", READ)
        },
        Op {
            params: vec![tenant_id()],
            body: json_body("NewGroup"),
            ok: (201, "The group.", Some("Group")),
            errors: &[404, 409],
            ..op(
                Post,
                "/tenants/{id}/groups",
                "createGroup",
                "Create a group of a tenant.",
                ADMIN,
            )
        },
        Op {
            params: vec![tenant_id()],
            ok: (200, "The tenant's groups, by name.", Some("GroupList")),
            errors: &[404],
            ..op(
                Get,
                "/tenants/{id}/groups",
                "listGroups",
                "List a tenant's groups.",
                READ,
            )
        },
        Op {
            params: vec![group_id()],
            ok: (200, "The group and its members.", Some("GroupWithMembers")),
            errors: &[404],
            ..op(
                Get,
                "/groups/{id}",
                "getGroup",
                "Get a group with its members.",
                READ,
            )
        },
        Op {
            params: vec![group_id(), member()],
            ok: (
                204,
                "The device is a member (adding twice is a no-op).",
                None,
            ),
            errors: &[404],
            ..op(
                Put,
                "/groups/{id}/devices/{device}",
                "addGroupMember",
                "Add a device to a group of its tenant.",
                ADMIN,
            )
        },
        Op {
            params: vec![group_id(), member()],
            ok: (204, "The device left the group.", None),
            errors: &[404],
            ..op(
                Delete,
                "/groups/{id}/devices/{device}",
                "removeGroupMember",
                "Remove a device from a group (404 if it was not a member).",
                ADMIN,
            )
        },
        Op {
            body: json_body("NewDevice"),
            ok: (201, "The device.", Some("Device")),
            errors: &[404, 409],
            ..op(
                Post,
                "/devices",
                "registerDevice",
                "Register a device.",
                ADMIN,
            )
        },
        Op {
            params: vec![
                query_param(
                    "tenant",
                    json!({"type": "string"}),
                    "Only devices of this tenant.",
                ),
                query_param(
                    "group",
                    json!({"type": "string"}),
                    "Only members of this group (id).",
                ),
                query_param(
                    "status",
                    json!({"$ref": "#/components/schemas/DeviceStatus"}),
                    "Only devices with this status.",
                ),
                query_param(
                    "type",
                    json!({"type": "string"}),
                    "Only devices of this type.",
                ),
                query_param(
                    "after",
                    json!({"type": "string"}),
                    "Cursor: the `next` of the previous page.",
                ),
                query_param(
                    "limit",
                    json!({"type": "integer", "minimum": 1, "maximum": iotflow_devices::MAX_PAGE,
                           "default": iotflow_devices::DEFAULT_PAGE}),
                    "Page size.",
                ),
            ],
            ok: (200, "One page of devices, by id.", Some("DevicePage")),
            ..op(
                Get,
                "/devices",
                "listDevices",
                "List and filter devices, a page at a time.",
                READ,
            )
        },
        Op {
            params: vec![query_param(
                "issue_keys",
                json!({"type": "boolean", "default": false}),
                "Issue each device a first HMAC key (shown in this response only).",
            )],
            body: Some(json!({
                "required": true,
                "description": "Header `id,name,type,tenant_id,firmware_version,metadata,groups` \
                    (columns in any order; name, type and tenant_id required; groups are \
                    `;`-separated names, created when missing). All rows or none are stored.",
                "content": {"text/csv": {"schema": {"type": "string"}}}
            })),
            ok: (201, "Every device provisioned.", Some("Provisioned")),
            errors: &[404, 409],
            ..op(
                Post,
                "/devices/bulk",
                "provisionDevices",
                "Provision devices from CSV.",
                ADMIN,
            )
        },
        Op {
            params: vec![device_id()],
            ok: (200, "The device.", Some("Device")),
            errors: &[404],
            ..op(Get, "/devices/{id}", "getDevice", "Get a device.", READ)
        },
        Op {
            params: vec![device_id()],
            body: json_body("DevicePatch"),
            ok: (200, "The changed device.", Some("Device")),
            errors: &[404],
            ..op(
                Patch,
                "/devices/{id}",
                "updateDevice",
                "Change a device's firmware version and/or metadata.",
                ADMIN,
            )
        },
        Op {
            params: vec![device_id()],
            body: json_body("StatusChange"),
            ok: (200, "The changed device.", Some("Device")),
            errors: &[404],
            ..op(
                Put,
                "/devices/{id}/status",
                "setDeviceStatus",
                "Set a device's status.",
                ADMIN,
            )
        },
        Op {
            params: vec![device_id()],
            ok: (
                200,
                "The device's credentials, oldest first.",
                Some("CredentialList"),
            ),
            errors: &[404],
            ..op(
                Get,
                "/devices/{id}/credentials",
                "listCredentials",
                "List a device's credentials (never a secret).",
                READ,
            )
        },
        Op {
            params: vec![device_id()],
            ok: (
                201,
                "The new key; its secret is shown only here.",
                Some("IssuedHmacKey"),
            ),
            errors: &[404],
            ..op(
                Post,
                "/devices/{id}/credentials/hmac",
                "issueHmacKey",
                "Issue an HMAC key; earlier keys stay valid.",
                ADMIN,
            )
        },
        Op {
            params: vec![device_id()],
            ok: (
                201,
                "The new key; its secret is shown only here.",
                Some("IssuedHmacKey"),
            ),
            errors: &[404],
            ..op(
                Post,
                "/devices/{id}/credentials/hmac/rotate",
                "rotateHmacKey",
                "Issue an HMAC key and revoke the device's other HMAC keys.",
                ADMIN,
            )
        },
        Op {
            params: vec![device_id()],
            body: json_body("NewJwtKey"),
            ok: (
                201,
                "The credential; its id is the JWT `kid`.",
                Some("Credential"),
            ),
            errors: &[404],
            ..op(
                Post,
                "/devices/{id}/credentials/jwt",
                "addJwtKey",
                "Register a device's JWT public key.",
                ADMIN,
            )
        },
        Op {
            params: vec![device_id()],
            body: json_body("NewCertificate"),
            ok: (201, "The credential.", Some("Credential")),
            errors: &[404, 409],
            ..op(
                Post,
                "/devices/{id}/credentials/certificates",
                "addCertificate",
                "Register a device's mTLS client certificate.",
                ADMIN,
            )
        },
        Op {
            params: vec![path_param("id", "Credential id.")],
            ok: (204, "Revoked (revoking twice keeps the first time).", None),
            errors: &[404],
            ..op(
                Delete,
                "/credentials/{id}",
                "revokeCredential",
                "Revoke a credential.",
                ADMIN,
            )
        },
        Op {
            device: true,
            body: Some(json!({
                "required": true,
                "description": "One reading. Devices authenticate with HMAC signature headers \
                    over the exact body bytes, or a device JWT (unless `ingest.auth = \"none\"`).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reading"}}}
            })),
            ok: (
                202,
                "Queued for the pipeline (not yet stored: durable once a checkpoint holds it).",
                Some("Accepted"),
            ),
            ..op(
                Post,
                "/ingest",
                "ingestReading",
                "Post one reading of the authenticated device.",
                None,
            )
        },
        Op {
            device: true,
            body: Some(json!({
                "required": true,
                "description": "Readings of the authenticated device: a JSON array, or one JSON \
                    object per line (NDJSON, also accepted as application/json). Queued all or \
                    none. Readings with missing or invalid fields are queued and rejected by the \
                    pipeline into its dead-letter output.",
                "content": {
                    "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Reading"}}},
                    "application/x-ndjson": {"schema": {"type": "string", "description": "One Reading object per line."}}
                }
            })),
            ok: (
                202,
                "All readings queued (not yet stored: durable once a checkpoint holds them).",
                Some("Accepted"),
            ),
            ..op(
                Post,
                "/ingest/batch",
                "ingestBatch",
                "Post many readings of the authenticated device.",
                None,
            )
        },
        Op {
            ok: (200, "Ingest counters and queue depth.", Some("IngestStats")),
            ..op(
                Get,
                "/ingest/stats",
                "ingestStats",
                "HTTP ingest counters and the queue-depth gauge.",
                READ,
            )
        },
    ]
}
