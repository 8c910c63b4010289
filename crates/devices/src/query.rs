//! Listing devices: filters and keyset pagination.

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::error::{Error, Result};
use crate::model::{Device, DeviceStatus, Tenant};
use crate::registry::{DEVICE_COLUMNS, Registry, Store, device_from_row};

/// Page size of [`Registry::list_devices`] when none is given.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page [`Registry::list_devices`] returns.
pub const MAX_PAGE: u32 = 1000;

/// Which devices [`Registry::list_devices`] returns. Every field set narrows
/// the result; the default returns all devices, a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFilter {
    /// Only devices of this tenant.
    pub tenant_id: Option<String>,
    /// Only members of this group.
    pub group_id: Option<String>,
    /// Only devices with this status.
    pub status: Option<DeviceStatus>,
    /// Only devices of this type.
    pub device_type: Option<String>,
    /// Keyset cursor: only ids greater than this ([`DevicePage::next`] of the previous page).
    pub after: Option<String>,
    /// Page size; default [`DEFAULT_PAGE`], at most [`MAX_PAGE`].
    pub limit: Option<u32>,
}

impl DeviceFilter {
    /// Only devices of `tenant_id`.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Only members of `group_id`.
    pub fn group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Only devices with `status`.
    pub fn status(mut self, status: DeviceStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only devices of `device_type`.
    pub fn device_type(mut self, device_type: impl Into<String>) -> Self {
        self.device_type = Some(device_type.into());
        self
    }

    /// Continue after this device id.
    pub fn after(mut self, id: impl Into<String>) -> Self {
        self.after = Some(id.into());
        self
    }

    /// Page size (1 to [`MAX_PAGE`]).
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

/// One page of devices, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePage {
    /// The devices, sorted by id, with their groups.
    pub devices: Vec<Device>,
    /// The cursor for the next page ([`DeviceFilter::after`]); `None` on the last page.
    pub next: Option<String>,
}

impl Registry {
    /// The devices matching `filter`, one page sorted by id.
    ///
    /// Pages are keyset-paginated: pass [`DevicePage::next`] as
    /// [`DeviceFilter::after`] to get the next one. Devices registered while
    /// paging appear on a later page if their id sorts after the cursor.
    ///
    /// On DynamoDB a page reads the index of the group, else of the tenant,
    /// else of all devices, from the cursor on, and the devices it names;
    /// status and type filters apply to what was read, so a selective filter
    /// reads (and pays for) every device it skips.
    pub async fn list_devices(&self, filter: &DeviceFilter) -> Result<DevicePage> {
        let limit = filter.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(Error::invalid(
                "limit",
                format!("must be 1 to {MAX_PAGE}, got {limit}"),
            ));
        }
        let (devices, more) = match self.store() {
            Store::Sql(pool) => list_devices_sql(pool, filter, limit).await?,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.list_devices(filter, limit).await?,
        };
        let next = if more {
            devices.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(DevicePage { devices, next })
    }

    /// Every tenant, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.list_tenants().await,
        };
        sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY id")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Tenant {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

/// Fills `groups` of `devices` (sorted by id) in one query.
async fn fill_groups(pool: &AnyPool, devices: &mut [Device]) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=devices.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT device_id, group_id FROM group_members WHERE device_id IN ({}) \
         ORDER BY device_id, group_id",
        marks.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for d in devices.iter() {
        q = q.bind(&d.id);
    }
    for m in &q.fetch_all(pool).await? {
        let device_id: String = m.try_get("device_id")?;
        if let Ok(i) = devices.binary_search_by(|d| d.id.as_str().cmp(&device_id)) {
            devices[i].groups.push(m.try_get("group_id")?);
        }
    }
    Ok(())
}

/// One page of `filter` on SQL, and whether another page follows.
async fn list_devices_sql(
    pool: &sqlx::AnyPool,
    filter: &DeviceFilter,
    limit: u32,
) -> Result<(Vec<Device>, bool)> {
    // Conditions are fixed text; every value is a bound parameter.
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut push = |cond: &str, value: String| {
        args.push(value);
        conds.push(cond.replace('?', &format!("${}", args.len())));
    };
    if let Some(t) = &filter.tenant_id {
        push("tenant_id = ?", t.clone());
    }
    if let Some(g) = &filter.group_id {
        push(
            "id IN (SELECT device_id FROM group_members WHERE group_id = ?)",
            g.clone(),
        );
    }
    if let Some(s) = filter.status {
        push("status = ?", s.as_str().to_owned());
    }
    if let Some(t) = &filter.device_type {
        push("device_type = ?", t.clone());
    }
    if let Some(a) = &filter.after {
        push("id > ?", a.clone());
    }
    let mut sql = DEVICE_COLUMNS.to_owned();
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    // One row more than the page tells whether another page follows.
    sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
    let mut q = sqlx::query(&sql);
    for a in &args {
        q = q.bind(a);
    }
    let rows = q.fetch_all(pool).await?;
    let more = rows.len() > limit as usize;
    let mut devices = rows
        .iter()
        .take(limit as usize)
        .map(device_from_row)
        .collect::<Result<Vec<_>>>()?;
    fill_groups(pool, &mut devices).await?;
    Ok((devices, more))
}
