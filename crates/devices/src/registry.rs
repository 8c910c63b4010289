//! The registry handle: backend dispatch, migrations, tenants and devices.

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
    #[cfg(feature = "dynamodb")]
    dynamodb_client: Option<aws_sdk_dynamodb::Client>,
}

impl RegistryBuilder {
    /// A registry at `url`:
    ///
    /// - `sqlite://PATH?mode=rwc` (the file is created on first use),
    /// - `postgres://USER@HOST:PORT/DB`,
    /// - `dynamodb://TABLE[?region=REGION&endpoint=URL]` with the `dynamodb`
    ///   feature: one DynamoDB table, created on first use, through a client
    ///   configured from the environment unless `dynamodb_client` gives one
    ///   (see the crate docs).
    pub fn new(url: impl Into<String>) -> Self {
        RegistryBuilder {
            url: url.into(),
            clock: Arc::new(UnixClock),
            master_key: None,
            max_connections: None,
            #[cfg(feature = "dynamodb")]
            dynamodb_client: None,
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

    /// Pool size. Default 4 for SQLite (one writer at a time anyway), 10 for
    /// PostgreSQL. DynamoDB has no pool: the setting is ignored there.
    pub fn max_connections(&mut self, n: u32) -> &mut Self {
        self.max_connections = Some(n);
        self
    }

    /// The DynamoDB client for a `dynamodb://TABLE` url, instead of one
    /// configured from the environment by `aws-config` (credentials chain,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`). Use it for credentials, retry or
    /// timeout settings of your own; the url may then not carry `region` or
    /// `endpoint`.
    #[cfg(feature = "dynamodb")]
    pub fn dynamodb_client(&mut self, client: aws_sdk_dynamodb::Client) -> &mut Self {
        self.dynamodb_client = Some(client);
        self
    }

    /// Connects, runs the migrations (creates the DynamoDB table) and returns
    /// the registry.
    pub async fn build(&self) -> Result<Registry> {
        let master = match &self.master_key {
            Some(k) => k.clone(),
            None => MasterKey::from_env()?.ok_or_else(|| {
                Error::MasterKey(format!(
                    "none configured: set {} (base64 of 32 bytes)",
                    crate::MASTER_KEY_ENV
                ))
            })?,
        };
        let store = if self.url.starts_with("dynamodb:") {
            self.open_dynamodb().await?
        } else {
            sqlx::any::install_default_drivers();
            let sqlite = self.url.starts_with("sqlite:");
            let pool = AnyPoolOptions::new()
                .max_connections(self.max_connections.unwrap_or(if sqlite { 4 } else { 10 }))
                .connect(&self.url)
                .await?;
            MIGRATOR.run(&pool).await?;
            Store::Sql(pool)
        };
        Ok(Registry {
            inner: Arc::new(Inner {
                store,
                clock: Arc::clone(&self.clock),
                master,
            }),
        })
    }

    #[cfg(feature = "dynamodb")]
    async fn open_dynamodb(&self) -> Result<Store> {
        let store = crate::dynamodb::DynamoStore::open(
            &self.url,
            self.dynamodb_client.clone(),
            Arc::clone(&self.clock),
        )
        .await?;
        Ok(Store::Dynamo(store))
    }

    #[cfg(not(feature = "dynamodb"))]
    async fn open_dynamodb(&self) -> Result<Store> {
        Err(Error::invalid(
            "url",
            "dynamodb:// needs iotflow-devices built with its `dynamodb` feature",
        ))
    }
}

/// The device registry: tenants, devices, groups and credentials, in SQLite,
/// PostgreSQL or DynamoDB. Cheap to clone; clones share the connections.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) master: MasterKey,
}

/// Where the registry keeps its data. Every public method checks its input,
/// makes ids and times and seals secrets the same way for each backend, then
/// hands storage to the backend; both keep the same guarantees (see the crate
/// docs for what DynamoDB cannot match).
#[derive(Debug)]
pub(crate) enum Store {
    /// SQLite or PostgreSQL through sqlx's `Any` driver: one set of queries.
    Sql(AnyPool),
    /// One DynamoDB table.
    #[cfg(feature = "dynamodb")]
    Dynamo(crate::dynamodb::DynamoStore),
}

/// A change of one field of a device's description.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Status(DeviceStatus),
    Firmware(String),
    Metadata(serde_json::Value),
}

impl Field {
    /// The SQL column; a fixed name, never caller input.
    pub(crate) fn column(&self) -> &'static str {
        match self {
            Field::Status(_) => "status",
            Field::Firmware(_) => "firmware_version",
            Field::Metadata(_) => "metadata",
        }
    }

    /// The value as stored: text.
    pub(crate) fn stored(&self) -> String {
        match self {
            Field::Status(s) => s.as_str().to_owned(),
            Field::Firmware(v) => v.clone(),
            Field::Metadata(m) => m.to_string(),
        }
    }

    /// Applies the change to a device read before it.
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))]
    pub(crate) fn apply(&self, device: &mut Device) {
        match self {
            Field::Status(s) => device.status = *s,
            Field::Firmware(v) => device.firmware_version = Some(v.clone()),
            Field::Metadata(m) => device.metadata = m.clone(),
        }
    }
}

/// Now, Unix milliseconds, from `clock`.
pub(crate) fn unix_ms(clock: &dyn Clock) -> i64 {
    i64::try_from(clock.now().as_millis()).unwrap_or(i64::MAX)
}

/// Checks a new device and gives it its id and times: the same for every backend.
pub(crate) fn prepare_device(new: NewDevice, now: i64) -> Result<Device> {
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

    /// The registry at `url` ([`RegistryBuilder::new`], master key from the
    /// environment) when one is given, else the embedded one in `data_dir`
    /// ([`open_in`](Self::open_in)): how jobs and the CLI pick theirs.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Registry> {
        match url {
            Some(url) => RegistryBuilder::new(url).build().await,
            None => Registry::open_in(data_dir).await,
        }
    }

    /// Closes the pool; waits for connections in use to be returned.
    /// (Nothing to close on DynamoDB.)
    pub async fn close(&self) {
        match self.store() {
            Store::Sql(pool) => pool.close().await,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(_) => {}
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Now, Unix milliseconds, from the injected clock.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.inner.clock.as_ref())
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        check_ident("tenant id", id)?;
        let tenant = Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: self.now_ms(),
        };
        match self.store() {
            Store::Sql(pool) => {
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&tenant.id)
                    .bind(&tenant.name)
                    .bind(tenant.created_at)
                    .execute(pool)
                    .await
                    .map_err(on_conflict("tenant", id))?;
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.create_tenant(&tenant).await?,
        }
        Ok(tenant)
    }

    /// The tenant `id`.
    pub async fn tenant(&self, id: &str) -> Result<Tenant> {
        let found = match self.store() {
            Store::Sql(pool) => {
                match sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                {
                    Some(row) => Some(Tenant {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        created_at: row.try_get("created_at")?,
                    }),
                    None => None,
                }
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.tenant(id).await?,
        };
        found.ok_or_else(|| Error::not_found("tenant", id))
    }

    /// Registers one device, `active`, with a generated id unless one is given.
    pub async fn register_device(&self, new: NewDevice) -> Result<Device> {
        let device = prepare_device(new, self.now_ms())?;
        match self.store() {
            Store::Sql(pool) => {
                let mut tx = begin_write(pool).await?;
                self.insert_device(&mut tx, &device).await?;
                self.record_change(&mut tx, &device.id).await?;
                tx.commit().await?;
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.register_device(&device).await?,
        }
        Ok(device)
    }

    /// Inserts a device made by [`prepare_device`] (SQL).
    pub(crate) async fn insert_device(
        &self,
        conn: &mut AnyConnection,
        device: &Device,
    ) -> Result<()> {
        let exists = sqlx::query("SELECT id FROM tenants WHERE id = $1")
            .bind(&device.tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("tenant", &device.tenant_id));
        }
        sqlx::query(
            "INSERT INTO devices (id, tenant_id, name, device_type, status, firmware_version, \
             metadata, created_at, updated_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL)",
        )
        .bind(&device.id)
        .bind(&device.tenant_id)
        .bind(&device.name)
        .bind(&device.device_type)
        .bind(device.status.as_str())
        .bind(device.firmware_version.as_deref())
        .bind(device.metadata.to_string())
        .bind(device.created_at)
        .execute(&mut *conn)
        .await
        .map_err(on_conflict("device", &device.id))?;
        Ok(())
    }

    /// The device `id`, with its groups.
    pub async fn device(&self, id: &str) -> Result<Device> {
        let found = match self.store() {
            Store::Sql(pool) => {
                match sqlx::query(&format!("{DEVICE_COLUMNS} WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                {
                    Some(row) => {
                        let mut device = device_from_row(&row)?;
                        device.groups = sqlx::query(
                            "SELECT group_id FROM group_members WHERE device_id = $1 \
                             ORDER BY group_id",
                        )
                        .bind(id)
                        .fetch_all(pool)
                        .await?
                        .iter()
                        .map(|r| r.try_get::<String, _>("group_id"))
                        .collect::<Result<_, _>>()?;
                        Some(device)
                    }
                    None => None,
                }
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.device(id).await?,
        };
        found.ok_or_else(|| Error::not_found("device", id))
    }

    /// The devices of a tenant, by id, with their groups.
    pub async fn devices_of_tenant(&self, tenant_id: &str) -> Result<Vec<Device>> {
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.devices_of_tenant(tenant_id).await,
        };
        let rows = sqlx::query(&format!(
            "{DEVICE_COLUMNS} WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(pool)
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
        .fetch_all(pool)
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
        self.update_field(id, Field::Status(status)).await
    }

    /// Sets a device's firmware version.
    pub async fn set_firmware_version(&self, id: &str, version: &str) -> Result<()> {
        self.update_field(id, Field::Firmware(version.to_owned()))
            .await
    }

    /// Replaces a device's metadata (a JSON object).
    pub async fn set_metadata(&self, id: &str, metadata: &serde_json::Value) -> Result<()> {
        if !metadata.is_object() {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        self.update_field(id, Field::Metadata(metadata.clone()))
            .await
    }

    /// Changes one field and logs the change, in one transaction.
    async fn update_field(&self, id: &str, field: Field) -> Result<()> {
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.update_device(id, &field).await,
        };
        let mut tx = begin_write(pool).await?;
        let done = sqlx::query(&format!(
            "UPDATE devices SET {} = $1, updated_at = $2 WHERE id = $3",
            field.column()
        ))
        .bind(field.stored())
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
        let now = self.now_ms();
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.touch(id, now).await,
        };
        let done = sqlx::query("UPDATE devices SET last_seen = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(pool)
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

/// Begins a transaction that will write. On SQLite it takes the write lock
/// at once (`BEGIN IMMEDIATE`): a deferred transaction that reads first and
/// then writes fails with "database is locked" when another writer got in
/// between, instead of waiting for it.
pub(crate) async fn begin_write(
    pool: &AnyPool,
) -> std::result::Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    if pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("sqlite")
    {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}
