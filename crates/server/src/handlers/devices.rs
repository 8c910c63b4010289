//! `/devices`: register, look up, list, change, bulk-provision.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iotflow_devices::{DeviceFilter, DeviceStatus, NewDevice};
use serde::{Deserialize, Deserializer, Serialize};

use crate::api_error::ApiError;
use crate::extract::{ApiQuery, CsvBody, Id, JsonBody, check_text};
use crate::handlers::{DeviceOut, no_store};
use crate::routes::AppState;

/// Body of `POST /devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDeviceBody {
    tenant_id: String,
    name: String,
    #[serde(rename = "type")]
    device_type: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    firmware_version: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    /// Ids of groups of the device's tenant to put it in.
    #[serde(default)]
    groups: Vec<String>,
}

/// `POST /devices` → `201` with the device.
pub(crate) async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewDeviceBody>,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    check_text("tenant_id", &body.tenant_id)?;
    let mut new = NewDevice::new(&body.tenant_id, body.name, body.device_type);
    if let Some(id) = body.id {
        new = new.with_id(id);
    }
    if let Some(v) = body.firmware_version {
        check_text("firmware_version", &v)?;
        new = new.with_firmware_version(v);
    }
    if let Some(m) = body.metadata {
        new = new.with_metadata(m);
    }
    let mut groups = body.groups;
    groups.sort();
    groups.dedup();
    // The registry registers and groups in separate calls; check the groups
    // first so that a wrong one leaves no half-made device behind.
    for g in &groups {
        check_text("group id", g)?;
        let group = registry.group(g).await?;
        if group.tenant_id != body.tenant_id {
            return Err(ApiError::invalid(format!(
                "group {g:?} belongs to tenant {:?}, not {:?}",
                group.tenant_id, body.tenant_id
            )));
        }
    }
    let mut device = registry.register_device(new).await?;
    for g in &groups {
        registry.add_to_group(g, &device.id).await?;
    }
    // `groups` is sorted and deduplicated, as `Device::groups` is.
    device.groups = groups;
    Ok((StatusCode::CREATED, Json(DeviceOut::from(device))).into_response())
}

/// `GET /devices/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<DeviceOut>, ApiError> {
    Ok(Json(state.registry.device(&id).await?.into()))
}

/// Query of `GET /devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    tenant: Option<String>,
    group: Option<String>,
    status: Option<DeviceStatus>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// One page of `GET /devices`.
#[derive(Debug, Serialize)]
pub(crate) struct DevicePageOut {
    devices: Vec<DeviceOut>,
    next: Option<String>,
}

/// `GET /devices?tenant=&group=&status=&type=&after=&limit=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DevicePageOut>, ApiError> {
    for (name, value) in [
        ("tenant", &q.tenant),
        ("group", &q.group),
        ("type", &q.device_type),
        ("after", &q.after),
    ] {
        if let Some(v) = value {
            check_text(name, v)?;
        }
    }
    let filter = DeviceFilter {
        tenant_id: q.tenant,
        group_id: q.group,
        status: q.status,
        device_type: q.device_type,
        after: q.after,
        limit: q.limit,
    };
    let page = state.registry.list_devices(&filter).await?;
    Ok(Json(DevicePageOut {
        devices: page.devices.into_iter().map(DeviceOut::from).collect(),
        next: page.next,
    }))
}

/// Body of `PUT /devices/{id}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    status: DeviceStatus,
}

/// `PUT /devices/{id}/status` → the changed device.
pub(crate) async fn set_status(
    State(state): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<StatusBody>,
) -> Result<Json<DeviceOut>, ApiError> {
    state.registry.set_status(&id, body.status).await?;
    Ok(Json(state.registry.device(&id).await?.into()))
}

/// Body of `PATCH /devices/{id}`: fields left out stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    /// `Some(None)` is an explicit `null`, which the registry cannot store.
    #[serde(default, deserialize_with = "present")]
    firmware_version: Option<Option<String>>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Tells an explicit `null` (`Some(None)`) from a missing field (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /devices/{id}` → the changed device.
pub(crate) async fn patch(
    State(state): State<AppState>,
    Id(id): Id,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<DeviceOut>, ApiError> {
    let registry = &state.registry;
    let firmware = match body.firmware_version {
        Some(None) => {
            return Err(ApiError::invalid(
                "firmware_version cannot be cleared, only replaced",
            ));
        }
        Some(Some(v)) => {
            check_text("firmware_version", &v)?;
            Some(v)
        }
        None => None,
    };
    if firmware.is_none() && body.metadata.is_none() {
        return Err(ApiError::invalid(
            "nothing to change: give firmware_version and/or metadata",
        ));
    }
    // Check everything before the first write: the registry changes one
    // field per call.
    if body.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ApiError::invalid("invalid metadata: must be a JSON object"));
    }
    if let Some(v) = &firmware {
        registry.set_firmware_version(&id, v).await?;
    }
    if let Some(m) = &body.metadata {
        registry.set_metadata(&id, m).await?;
    }
    Ok(Json(registry.device(&id).await?.into()))
}

/// Query of `POST /devices/bulk`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkQuery {
    #[serde(default)]
    issue_keys: bool,
}

#[derive(Debug, Serialize)]
struct ProvisionedOut {
    device: DeviceOut,
    hmac_key: Option<KeyOut>,
}

#[derive(Debug, Serialize)]
struct KeyOut {
    key_id: String,
    secret: String,
}

#[derive(Debug, Serialize)]
struct BulkOut {
    devices: Vec<ProvisionedOut>,
}

/// `POST /devices/bulk[?issue_keys=true]` with a CSV body → `201` with
/// every device, and its first HMAC key when asked (shown this once).
pub(crate) async fn bulk(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BulkQuery>,
    CsvBody(csv): CsvBody,
) -> Result<Response, ApiError> {
    let provisioned = state.registry.provision_csv(&csv[..], q.issue_keys).await?;
    let devices = provisioned
        .into_iter()
        .map(|p| ProvisionedOut {
            device: p.device.into(),
            hmac_key: p.hmac_key.map(|k| KeyOut {
                secret: k.secret().to_owned(),
                key_id: k.key_id,
            }),
        })
        .collect();
    Ok(no_store((StatusCode::CREATED, Json(BulkOut { devices }))))
}
