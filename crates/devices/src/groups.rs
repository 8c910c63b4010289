//! Groups: named sets of devices within one tenant.

use sqlx::Row;

use crate::crypto::random_id;
use crate::error::{Error, Result, on_conflict};
use crate::model::{Group, check_ident};
use crate::registry::{Registry, Store};

fn group_from_row(r: &sqlx::any::AnyRow) -> Result<Group> {
    Ok(Group {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Registry {
    /// Creates a group named `name` (unique within the tenant).
    pub async fn create_group(&self, tenant_id: &str, name: &str) -> Result<Group> {
        check_ident("group name", name)?;
        self.tenant(tenant_id).await?;
        let group = Group {
            id: random_id()?,
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            created_at: self.now_ms(),
        };
        match self.store() {
            Store::Sql(pool) => {
                sqlx::query(
                    "INSERT INTO device_groups (id, tenant_id, name, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&group.id)
                .bind(&group.tenant_id)
                .bind(&group.name)
                .bind(group.created_at)
                .execute(pool)
                .await
                .map_err(on_conflict("group", name))?;
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.create_group(&group).await?,
        }
        Ok(group)
    }

    /// The group `id`.
    pub async fn group(&self, id: &str) -> Result<Group> {
        let found = match self.store() {
            Store::Sql(pool) => sqlx::query(
                "SELECT id, tenant_id, name, created_at FROM device_groups WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(group_from_row)
            .transpose()?,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.group(id).await?,
        };
        found.ok_or_else(|| Error::not_found("group", id))
    }

    /// The groups of a tenant, by name.
    pub async fn groups_of_tenant(&self, tenant_id: &str) -> Result<Vec<Group>> {
        match self.store() {
            Store::Sql(pool) => sqlx::query(
                "SELECT id, tenant_id, name, created_at FROM device_groups \
                 WHERE tenant_id = $1 ORDER BY name",
            )
            .bind(tenant_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(group_from_row)
            .collect(),
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.groups_of_tenant(tenant_id).await,
        }
    }

    /// Adds a device to a group of its own tenant; adding twice is a no-op.
    pub async fn add_to_group(&self, group_id: &str, device_id: &str) -> Result<()> {
        match self.store() {
            Store::Sql(pool) => self.sql_add_to_group(pool, group_id, device_id).await,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => {
                let group = self.group(group_id).await?;
                db.add_to_group(&group, device_id).await
            }
        }
    }

    async fn sql_add_to_group(
        &self,
        pool: &sqlx::AnyPool,
        group_id: &str,
        device_id: &str,
    ) -> Result<()> {
        let mut tx = crate::registry::begin_write(pool).await?;
        let group_tenant = sqlx::query("SELECT tenant_id FROM device_groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("group", group_id))?
            .try_get::<String, _>("tenant_id")?;
        let device_tenant = sqlx::query("SELECT tenant_id FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("device", device_id))?
            .try_get::<String, _>("tenant_id")?;
        if group_tenant != device_tenant {
            return Err(different_tenants(group_id, device_id));
        }
        let done = sqlx::query(
            "INSERT INTO group_members (group_id, device_id) VALUES ($1, $2) \
             ON CONFLICT (group_id, device_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            self.record_change(&mut tx, device_id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a device from a group; returns whether it was a member.
    pub async fn remove_from_group(&self, group_id: &str, device_id: &str) -> Result<bool> {
        match self.store() {
            Store::Sql(pool) => {
                let mut tx = crate::registry::begin_write(pool).await?;
                let done =
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND device_id = $2")
                        .bind(group_id)
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                let removed = done.rows_affected() > 0;
                if removed {
                    self.record_change(&mut tx, device_id).await?;
                }
                tx.commit().await?;
                Ok(removed)
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.remove_from_group(group_id, device_id).await,
        }
    }

    /// Ids of the devices in a group, sorted.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<String>> {
        match self.store() {
            Store::Sql(pool) => sqlx::query(
                "SELECT device_id FROM group_members WHERE group_id = $1 ORDER BY device_id",
            )
            .bind(group_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("device_id")?))
            .collect(),
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.group_members(group_id).await,
        }
    }
}

/// The refusal of a device joining another tenant's group.
pub(crate) fn different_tenants(group_id: &str, device_id: &str) -> Error {
    Error::invalid(
        "group",
        format!("device {device_id:?} and group {group_id:?} belong to different tenants"),
    )
}
