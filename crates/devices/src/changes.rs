//! The change log: how pipelines follow the registry while they run.
//!
//! Every change of what a pipeline knows about a device (registration,
//! status, firmware, metadata, groups) appends a row to `device_changes` in
//! the same transaction, with a sequence number and the device's new
//! description (on DynamoDB: an item, written in the transaction that moves
//! the counter item from n to n + 1 on condition it still holds n).
//! [`Registry::snapshot`] gives every device's current description and the
//! sequence number it is current as of;
//! [`Registry::changes_since`] then gives what happened after. Together they
//! are a [`DeviceUpdate`] stream, which [`registry_updates`](crate::registry_updates)
//! feeds into a dataflow.

use std::sync::Arc;

use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, SmallStr, Tags, Timestamp};
use sqlx::{AnyConnection, Row};

use crate::error::{Error, Result};
use crate::model::Device;
use crate::registry::{DEVICE_COLUMNS, Registry, Store, device_from_row};

/// Every device's description at one point of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The devices, sorted by id.
    pub devices: Vec<Arc<DeviceInfo>>,
    /// The last change the snapshot includes: follow with
    /// [`Registry::changes_since`]`(seq)`.
    pub seq: u64,
}

impl Snapshot {
    /// The snapshot as updates valid from event time `at` on.
    pub fn into_updates(self, at: Timestamp) -> Vec<DeviceUpdate> {
        let seq = self.seq;
        self.devices
            .into_iter()
            .map(|info| DeviceUpdate {
                at,
                seq,
                device: info.device.clone(),
                info: Some(info),
            })
            .collect()
    }
}

/// A device as a pipeline sees it: metadata flattened one level, sorted.
pub fn device_info(device: &Device) -> DeviceInfo {
    let mut metadata: Tags = match &device.metadata {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => SmallStr::new(s),
                    other => SmallStr::from(other.to_string()),
                };
                (SmallStr::new(k), v)
            })
            .collect(),
        _ => Tags::new(),
    };
    metadata.sort();
    DeviceInfo {
        device: DeviceId::new(&device.id),
        tenant: SmallStr::new(&device.tenant_id),
        name: SmallStr::new(&device.name),
        device_type: SmallStr::new(&device.device_type),
        status: device.status,
        firmware: device.firmware_version.as_deref().map(SmallStr::new),
        groups: device.groups.iter().map(|g| SmallStr::new(g)).collect(),
        metadata,
    }
}

/// The change-log form of `device`'s description (both backends store it).
pub(crate) fn info_json(device: &Device) -> Result<String> {
    serde_json::to_string(&device_info(device))
        .map_err(|e| Error::invalid("device info", e.to_string()))
}

/// A description read back from the change log.
pub(crate) fn parse_info(text: &str) -> Result<DeviceInfo> {
    serde_json::from_str(text).map_err(|e| Error::invalid("stored change", e.to_string()))
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Registry {
    /// Appends the current description of `device_id` to the change log.
    /// Call inside the transaction that changed it, after the change.
    pub(crate) async fn record_change(
        &self,
        conn: &mut AnyConnection,
        device_id: &str,
    ) -> Result<()> {
        let row = sqlx::query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
            .bind(device_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::not_found("device", device_id))?;
        let mut device = device_from_row(&row)?;
        device.groups = sqlx::query(
            "SELECT group_id FROM group_members WHERE device_id = $1 ORDER BY group_id",
        )
        .bind(device_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("group_id"))
        .collect::<Result<_, _>>()?;
        let info = info_json(&device)?;
        // Bumping the counter locks its row until commit: sequence order is
        // commit order. The time is read after the lock, so it grows with seq.
        let seq: i64 = sqlx::query("UPDATE registry_seq SET n = n + 1 WHERE id = 1 RETURNING n")
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        sqlx::query(
            "INSERT INTO device_changes (seq, device_id, changed_at, info) VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(device_id)
        .bind(self.now_ms())
        .bind(info)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The sequence number of the last change.
    pub async fn last_change(&self) -> Result<u64> {
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.last_seq().await,
        };
        let n: i64 = sqlx::query("SELECT n FROM registry_seq WHERE id = 1")
            .fetch_one(pool)
            .await?
            .try_get("n")?;
        Ok(to_u64(n))
    }

    /// Every device's current description, and the change it is current as of.
    ///
    /// The sequence number is read first: a change committed while the
    /// snapshot is read may be in it *and* in `changes_since(seq)`, never in
    /// neither. Applying it twice gives the same description.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let seq = self.last_change().await?;
        let devices: Vec<Device> = match self.store() {
            Store::Sql(pool) => {
                let rows = sqlx::query(&format!("{DEVICE_COLUMNS} ORDER BY id"))
                    .fetch_all(pool)
                    .await?;
                let mut devices = rows
                    .iter()
                    .map(device_from_row)
                    .collect::<Result<Vec<_>>>()?;
                let members = sqlx::query(
                    "SELECT device_id, group_id FROM group_members ORDER BY device_id, group_id",
                )
                .fetch_all(pool)
                .await?;
                for m in &members {
                    let device_id: String = m.try_get("device_id")?;
                    if let Ok(i) = devices.binary_search_by(|d| d.id.as_str().cmp(&device_id)) {
                        devices[i].groups.push(m.try_get("group_id")?);
                    }
                }
                devices
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => {
                return Ok(Snapshot {
                    devices: db.snapshot(seq).await?,
                    seq,
                });
            }
        };
        Ok(Snapshot {
            devices: devices.iter().map(|d| Arc::new(device_info(d))).collect(),
            seq,
        })
    }

    /// Up to `limit` changes after sequence number `after`, in sequence
    /// order, each valid from its change time (Unix ms) on.
    pub async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<DeviceUpdate>> {
        let rows = match self.store() {
            Store::Sql(pool) => sqlx::query(
                "SELECT seq, device_id, changed_at, info FROM device_changes \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ChangeRow {
                    seq: r.try_get("seq")?,
                    device_id: r.try_get("device_id")?,
                    changed_at: r.try_get("changed_at")?,
                    info: r.try_get("info")?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.changes_since(after, limit).await?,
        };
        rows.into_iter().map(ChangeRow::into_update).collect()
    }

    /// Deletes change-log rows older than `before_ms` (Unix ms) that a
    /// follower no longer needs; returns how many. A follower that is behind
    /// by more than that must start again from a [`snapshot`](Self::snapshot).
    pub async fn prune_changes(&self, before_ms: i64) -> Result<u64> {
        match self.store() {
            Store::Sql(pool) => Ok(
                sqlx::query("DELETE FROM device_changes WHERE changed_at < $1")
                    .bind(before_ms)
                    .execute(pool)
                    .await?
                    .rows_affected(),
            ),
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.prune_changes(before_ms).await,
        }
    }
}

/// One stored change, as every backend reads it.
#[derive(Debug)]
pub(crate) struct ChangeRow {
    pub(crate) seq: i64,
    pub(crate) device_id: String,
    pub(crate) changed_at: i64,
    /// The description after the change as JSON; `None` for a removal.
    pub(crate) info: Option<String>,
}

impl ChangeRow {
    fn into_update(self) -> Result<DeviceUpdate> {
        let info = match self.info {
            Some(text) => Some(Arc::new(parse_info(&text)?)),
            None => None,
        };
        Ok(DeviceUpdate {
            at: to_u64(self.changed_at),
            seq: to_u64(self.seq),
            device: DeviceId::from(self.device_id),
            info,
        })
    }
}
