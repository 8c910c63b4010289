//! `/tenants` and `/groups`: the owners of devices, and named sets of them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use iotflow_devices::{Group, Tenant};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::extract::{Id, Ids, JsonBody, check_text};
use crate::routes::AppState;

/// Body of `POST /tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenantBody {
    id: String,
    name: String,
}

/// `POST /tenants` → `201` with the tenant.
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewTenantBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_text("tenant name", &body.name)?;
    let tenant = state.registry.create_tenant(&body.id, &body.name).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[derive(Debug, Serialize)]
pub(crate) struct TenantList {
    tenants: Vec<Tenant>,
}

/// `GET /tenants`.
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList {
        tenants: state.registry.list_tenants().await?,
    }))
}

/// `GET /tenants/{id}`.
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(state.registry.tenant(&id).await?))
}

/// Body of `POST /tenants/{tenant}/groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGroupBody {
    name: String,
}

/// `POST /tenants/{tenant}/groups` → `201` with the group.
pub(crate) async fn create_group(
    State(state): State<AppState>,
    Id(tenant): Id,
    JsonBody(body): JsonBody<NewGroupBody>,
) -> Result<impl IntoResponse, ApiError> {
    let group = state.registry.create_group(&tenant, &body.name).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupList {
    groups: Vec<Group>,
}

/// `GET /tenants/{tenant}/groups`, by name.
pub(crate) async fn list_groups(
    State(state): State<AppState>,
    Id(tenant): Id,
) -> Result<Json<GroupList>, ApiError> {
    // An unknown tenant is a 404, not an empty list.
    state.registry.tenant(&tenant).await?;
    Ok(Json(GroupList {
        groups: state.registry.groups_of_tenant(&tenant).await?,
    }))
}

/// A group with the ids of its members.
#[derive(Debug, Serialize)]
pub(crate) struct GroupOut {
    #[serde(flatten)]
    group: Group,
    members: Vec<String>,
}

/// `GET /groups/{id}`, with its members.
pub(crate) async fn get_group(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<GroupOut>, ApiError> {
    let group = state.registry.group(&id).await?;
    let members = state.registry.group_members(&id).await?;
    Ok(Json(GroupOut { group, members }))
}

/// `PUT /groups/{id}/devices/{device}` → `204`; adding a member twice is a no-op.
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Ids(group, device): Ids,
) -> Result<StatusCode, ApiError> {
    state.registry.add_to_group(&group, &device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /groups/{id}/devices/{device}` → `204`, or `404` when the
/// group does not exist or the device is not in it.
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Ids(group, device): Ids,
) -> Result<StatusCode, ApiError> {
    state.registry.group(&group).await?;
    if state.registry.remove_from_group(&group, &device).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "device {device:?} is not a member of group {group:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_shows_its_fields_and_members_side_by_side() {
        let out = GroupOut {
            group: Group {
                id: "g1".into(),
                tenant_id: "acme".into(),
                name: "north".into(),
                created_at: 5,
            },
            members: vec!["d1".into()],
        };
        assert_eq!(
            serde_json::to_value(&out).expect("serializes"),
            serde_json::json!({
                "id": "g1", "tenant_id": "acme", "name": "north", "created_at": 5,
                "members": ["d1"]
            })
        );
    }
}
