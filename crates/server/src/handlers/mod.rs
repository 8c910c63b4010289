//! The route handlers and the JSON they speak.
//!
//! Wire types live here rather than in the registry: the API names a
//! device's kind `type` (as the CSV header does), lists come wrapped in an
//! object (room for paging fields later), and secrets appear only in the
//! responses that issue them.

pub(crate) mod credentials;
pub(crate) mod devices;
pub(crate) mod tenants;

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use iotflow_devices::{Device, DeviceStatus};
use serde::Serialize;
use serde_json::json;

/// A device as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceOut {
    id: String,
    tenant_id: String,
    name: String,
    #[serde(rename = "type")]
    device_type: String,
    status: DeviceStatus,
    firmware_version: Option<String>,
    metadata: serde_json::Value,
    groups: Vec<String>,
    created_at: i64,
    updated_at: i64,
    last_seen: Option<i64>,
}

impl From<Device> for DeviceOut {
    fn from(d: Device) -> Self {
        DeviceOut {
            id: d.id,
            tenant_id: d.tenant_id,
            name: d.name,
            device_type: d.device_type,
            status: d.status,
            firmware_version: d.firmware_version,
            metadata: d.metadata,
            groups: d.groups,
            created_at: d.created_at,
            updated_at: d.updated_at,
            last_seen: d.last_seen,
        }
    }
}

/// Marks `response` not to be stored by any cache: for responses that
/// carry a secret shown once.
pub(crate) fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Json<&'static serde_json::Value> {
    Json(crate::openapi::document())
}
