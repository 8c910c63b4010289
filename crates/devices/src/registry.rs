//! The registry handle: connection pool, migrations, tenants and devices.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iotflow_core::clock::Clock;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::crypto::{MasterKey, random_id};
use crate::error::{Error, Result, on_conflict};
use crate::model::{Device, DeviceStatus, NewDevice, Tenant, check_ident};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A [`Clock`] whose origin is the Unix epoch: the wall clock.
///
/// The registry stamps rows and checks message timestamps with a clock whose
/// `now()` is time since 1970-01-01 UTC; tests give it a
/// [`ManualClock`](iotflow_core::clock::ManualClock) advanced to a fixed date.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixClock;

impl Clock for UnixClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// Builds a [`Registry`]: `RegistryBuilder::new(url)…build().await`.
#[derive(Debug)]
pub struct RegistryBuilder {
    url: String,
    clock: Arc<dyn Clock>,
    master_key: Option<MasterKey>,
    max_connections: Option<u32>,
}

impl RegistryBuilder {
    /// A registry at `url`: `sqlite://PATH?mode=rwc` (the file is created on
    /// first use) or `postgres://USER@HOST:PORT/DB`.
    pub fn new(url: impl Into<String>) -> Self {
        RegistryBuilder {
            url: url.into(),
            clock: Arc::new(UnixClock),
            master_key: None,
            max_connections: None,
        }
    }

    /// The wall clock (origin: the Unix epoch). Default [`UnixClock`].
    pub fn clock(&mut self, clock: Arc<dyn Clock>) -> &mut Self {
        self.clock = clock;
        self
    }

    /// The key sealing HMAC keys at rest. Default: from
    /// [`MASTER_KEY_ENV`](crate::MASTER_KEY_ENV); building fails without one.
    pub fn master_key(&mut self, key: MasterKey) -> &mut Self {
        self.master_key = Some(key);
        self
    }

    /// Pool size. Default 4 for SQLite (one writer at a time anyway), 10 for PostgreSQL.
    pub fn max_connections(&mut self, n: u32) -> &mut Self {
        self.max_connections = Some(n);
        self
    }

    /// Connects, runs the migrations and returns the registry.
    pub async fn build(&self) -> Result<Registry> {
        sqlx::any::install_default_drivers();
        let master = match &self.master_key {
            Some(k) => k.clone(),
            None => MasterKey::from_env()?.ok_or_else(|| {
                Error::MasterKey(format!(
                    "none configured: set {} (base64 of 32 bytes)",
                    crate::MASTER_KEY_ENV
                ))
            })?,
        };
        let sqlite = self.url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(self.max_connections.unwrap_or(if sqlite { 4 } else { 10 }))
            .connect(&self.url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Registry {
            inner: Arc::new(Inner {
                pool,
                clock: Arc::clone(&self.clock),
                master,
            }),
        })
    }
}

/// The device registry: tenants, devices, groups and credentials, in SQLite
/// or PostgreSQL. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: AnyPool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) master: MasterKey,
}

/// File names under the data directory.
const DB_FILE: &str = "devices.db";
const KEY_FILE: &str = "registry.key";

impl Registry {
    /// The embedded default: `DATA_DIR/devices.db` (SQLite), created on first
    /// use, with the master key from [`MASTER_KEY_ENV`](crate::MASTER_KEY_ENV)
    /// or else from `DATA_DIR/registry.key` (created, mode 0600).
    pub async fn open_in(data_dir: &Path) -> Result<Registry> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let key = match MasterKey::from_env()? {
            Some(k) => k,
            None => MasterKey::load_or_create(&data_dir.join(KEY_FILE))?,
        };
        let url = format!("sqlite://{}?mode=rwc", data_dir.join(DB_FILE).display());
        RegistryBuilder::new(url).master_key(key).build().await
    }

    /// Closes the pool; waits for connections in use to be returned.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Now, Unix milliseconds, from the injected clock.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.inner.clock.now().as_millis()).unwrap_or(i64::MAX)
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        check_ident("tenant id", id)?;
        let now = self.now_ms();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(on_conflict("tenant", id))?;
        Ok(Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: now,
        })
    }

    /// The tenant `id`.
    pub async fn tenant(&self, id: &str) -> Result<Tenant> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        Ok(Tenant {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// Registers one device, `active`, with a generated id unless one is given.
    pub async fn register_device(&self, new: NewDevice) -> Result<Device> {
        let mut tx = self.pool().begin().await?;
        let device = self.insert_device(&mut tx, new).await?;
        self.record_change(&mut tx, &device.id).await?;
        tx.commit().await?;
        Ok(device)
    }

    pub(crate) async fn insert_device(
        &self,
        conn: &mut AnyConnection,
        new: NewDevice,
    ) -> Result<Device> {
        let id = match new.id {
            Some(id) => id,
            None => random_id()?,
        };
        check_ident("device id", &id)?;
        check_ident("device name", &new.name)?;
        check_ident("device type", &new.device_type)?;
        if !new.metadata.is_object() {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        let exists = sqlx::query("SELECT id FROM tenants WHERE id = $1")
            .bind(&new.tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("tenant", new.tenant_id));
        }
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO devices (id, tenant_id, name, device_type, status, firmware_version, \
             metadata, created_at, updated_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL)",
        )
        .bind(&id)
        .bind(&new.tenant_id)
        .bind(&new.name)
        .bind(&new.device_type)
        .bind(DeviceStatus::Active.as_str())
        .bind(new.firmware_version.as_deref())
        .bind(new.metadata.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(on_conflict("device", &id))?;
        Ok(Device {
            id,
            tenant_id: new.tenant_id,
            name: new.name,
            device_type: new.device_type,
            status: DeviceStatus::Active,
            firmware_version: new.firmware_version,
            metadata: new.metadata,
            groups: Vec::new(),
            created_at: now,
            updated_at: now,
            last_seen: None,
        })
    }

    /// The device `id`, with its groups.
    pub async fn device(&self, id: &str) -> Result<Device> {
        let row = sqlx::query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| Error::not_found("device", id))?;
        let mut device = device_from_row(&row)?;
        device.groups = sqlx::query(
            "SELECT group_id FROM group_members WHERE device_id = $1 ORDER BY group_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("group_id"))
        .collect::<Result<_, _>>()?;
        Ok(device)
    }

    /// The devices of a tenant, by id, with their groups.
    pub async fn devices_of_tenant(&self, tenant_id: &str) -> Result<Vec<Device>> {
        let rows = sqlx::query(&format!(
            "{DEVICE_COLUMNS} WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        let mut devices = rows
            .iter()
            .map(device_from_row)
            .collect::<Result<Vec<_>>>()?;
        let members = sqlx::query(
            "SELECT m.device_id, m.group_id FROM group_members m \
             JOIN devices d ON d.id = m.device_id WHERE d.tenant_id = $1 \
             ORDER BY m.device_id, m.group_id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        for m in &members {
            let device_id: String = m.try_get("device_id")?;
            if let Ok(i) = devices.binary_search_by(|d| d.id.as_str().cmp(&device_id)) {
                devices[i].groups.push(m.try_get("group_id")?);
            }
        }
        Ok(devices)
    }

    /// Sets a device's status; only `active` devices authenticate.
    pub async fn set_status(&self, id: &str, status: DeviceStatus) -> Result<()> {
        self.update_column(id, "status", status.as_str().to_owned())
            .await
    }

    /// Sets a device's firmware version.
    pub async fn set_firmware_version(&self, id: &str, version: &str) -> Result<()> {
        self.update_column(id, "firmware_version", version.to_owned())
            .await
    }

    /// Replaces a device's metadata (a JSON object).
    pub async fn set_metadata(&self, id: &str, metadata: &serde_json::Value) -> Result<()> {
        if !metadata.is_object() {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        self.update_column(id, "metadata", metadata.to_string())
            .await
    }

    /// `column` is one of the fixed names above, never caller input.
    async fn update_column(&self, id: &str, column: &'static str, value: String) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE devices SET {column} = $1, updated_at = $2 WHERE id = $3"
        ))
        .bind(value)
        .bind(self.now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("device", id));
        }
        self.record_change(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that the device was seen now (after an accepted message).
    pub async fn touch(&self, id: &str) -> Result<()> {
        let done = sqlx::query("UPDATE devices SET last_seen = $1 WHERE id = $2")
            .bind(self.now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("device", id));
        }
        Ok(())
    }
}

pub(crate) const DEVICE_COLUMNS: &str = "SELECT id, tenant_id, name, device_type, status, firmware_version, \
     metadata, created_at, updated_at, last_seen FROM devices";

pub(crate) fn device_from_row(row: &AnyRow) -> Result<Device> {
    let status: String = row.try_get("status")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(Device {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        device_type: row.try_get("device_type")?,
        status: status.parse()?,
        firmware_version: row.try_get("firmware_version")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| Error::invalid("stored metadata", e.to_string()))?,
        groups: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_seen: row.try_get("last_seen")?,
    })
}
