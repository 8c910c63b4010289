//! Bulk provisioning from CSV.

use serde::Deserialize;
use sqlx::Row;

use crate::credentials::{IssuedHmacKey, NewCredential};
use crate::crypto::random_id;
use crate::error::{Error, Result};
use crate::model::{Device, NewDevice};
use crate::registry::{Registry, Store, prepare_device};

/// One provisioned device, and its HMAC key when one was asked for.
#[derive(Debug)]
pub struct Provisioned {
    /// The registered device.
    pub device: Device,
    /// Its first HMAC key: shown here once, never again.
    pub hmac_key: Option<IssuedHmacKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(rename = "type")]
    device_type: String,
    tenant_id: String,
    #[serde(default)]
    firmware_version: Option<String>,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    groups: Option<String>,
}

/// A parsed CSV row made into a device the same way for every backend; a
/// backend reports the first row (in file order) that cannot be stored.
#[derive(Debug)]
pub(crate) struct CsvDevice {
    /// 1-based line of the file.
    pub(crate) line: u64,
    /// The device, or why the row does not make one.
    pub(crate) device: Result<Device>,
    /// Names of the groups of its tenant to put it in (created when missing).
    pub(crate) groups: Vec<String>,
    /// Its first HMAC key, when asked for.
    pub(crate) key: Option<(IssuedHmacKey, NewCredential)>,
}

/// An error of a row, as the CSV error naming its line.
pub(crate) fn at_line(line: u64) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Csv { .. } | Error::Database(_) | Error::DynamoDb { .. } => e,
        other => Error::Csv {
            line,
            reason: other.to_string(),
        },
    }
}

impl Registry {
    /// Registers every device of a CSV file, all or nothing.
    ///
    /// The header names the columns, in any order: `name`, `type`,
    /// `tenant_id` (required), `id` (generated when empty),
    /// `firmware_version`, `metadata` (a JSON object) and `groups`
    /// (`;`-separated group names of the device's tenant; missing groups are
    /// created). With `issue_hmac_keys`, each device gets a first HMAC key.
    /// The whole file is checked before anything is written, and written in
    /// one transaction: a bad row stores nothing and names its line.
    ///
    /// On DynamoDB a transaction holds at most 100 writes (4 MB): a device
    /// takes 4 plus one per group, 2 more with a key, a new group 2, each
    /// tenant 1, plus 1 — about 15 devices with a group and a key. A larger
    /// file is checked whole first, then written in several transactions,
    /// each holding whole devices; should one of those fail after others
    /// committed (a concurrent writer took an id in between, or DynamoDB
    /// failed), the error is [`Error::ProvisionIncomplete`] naming the
    /// devices that were stored.
    ///
    /// ```csv
    /// id,name,type,tenant_id,firmware_version,metadata,groups
    /// pump-1,Pump 1,pump,acme,1.2.0,"{""site"":""north""}",north;pumps
    /// ,Sensor,thermo,acme,,,
    /// ```
    pub async fn provision_csv(
        &self,
        csv_data: impl std::io::Read,
        issue_hmac_keys: bool,
    ) -> Result<Vec<Provisioned>> {
        let rows = read_csv(csv_data)?;
        let now = self.now_ms();
        let mut planned = Vec::with_capacity(rows.len());
        for (line, (new, groups)) in rows {
            let device = prepare_device(new, now).map_err(at_line(line));
            let key = match (&device, issue_hmac_keys) {
                (Ok(d), true) => Some(self.new_hmac_key(&d.id)?),
                _ => None,
            };
            planned.push(CsvDevice {
                line,
                device,
                groups,
                key,
            });
        }
        match self.store() {
            Store::Sql(pool) => self.sql_provision(pool, planned).await,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.provision(planned).await,
        }
    }

    async fn sql_provision(
        &self,
        pool: &sqlx::AnyPool,
        rows: Vec<CsvDevice>,
    ) -> Result<Vec<Provisioned>> {
        let mut tx = crate::registry::begin_write(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let at_line = at_line(row.line);
            let mut device = row.device?;
            self.insert_device(&mut tx, &device)
                .await
                .map_err(&at_line)?;
            for name in row.groups {
                let group_id = self
                    .group_id_or_create(&mut tx, &device.tenant_id, &name)
                    .await
                    .map_err(&at_line)?;
                sqlx::query(
                    "INSERT INTO group_members (group_id, device_id) VALUES ($1, $2) \
                     ON CONFLICT (group_id, device_id) DO NOTHING",
                )
                .bind(&group_id)
                .bind(&device.id)
                .execute(&mut *tx)
                .await?;
                device.groups.push(group_id);
            }
            device.groups.sort();
            device.groups.dedup();
            self.record_change(&mut tx, &device.id).await?;
            let hmac_key = match row.key {
                Some((issued, cred)) => {
                    self.sql_insert_credential(&mut tx, &cred)
                        .await
                        .map_err(&at_line)?;
                    Some(issued)
                }
                None => None,
            };
            out.push(Provisioned { device, hmac_key });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn group_id_or_create(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant_id: &str,
        name: &str,
    ) -> Result<String> {
        crate::model::check_ident("group name", name)?;
        let found = sqlx::query("SELECT id FROM device_groups WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = found {
            return Ok(row.try_get("id")?);
        }
        let id = random_id()?;
        sqlx::query(
            "INSERT INTO device_groups (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(name)
        .bind(self.now_ms())
        .execute(&mut *conn)
        .await?;
        Ok(id)
    }
}

/// A parsed row: its line, the device, the names of its groups.
type ParsedRow = (u64, (NewDevice, Vec<String>));

/// Every row of the file, parsed, with its line; the first bad row fails.
fn read_csv(csv_data: impl std::io::Read) -> Result<Vec<ParsedRow>> {
    let mut rows = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv_data);
    let headers = reader
        .headers()
        .map_err(|e| Error::Csv {
            line: 1,
            reason: e.to_string(),
        })?
        .clone();
    for record in reader.records() {
        let record = record.map_err(|e| Error::Csv {
            line: e.position().map_or(0, csv::Position::line),
            reason: e.to_string(),
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let row: CsvRow = record.deserialize(Some(&headers)).map_err(|e| Error::Csv {
            line,
            reason: e.to_string(),
        })?;
        rows.push((line, parse_row(row, line)?));
    }
    Ok(rows)
}

fn parse_row(row: CsvRow, line: u64) -> Result<(NewDevice, Vec<String>)> {
    let bad = |reason: String| Error::Csv { line, reason };
    let mut new = NewDevice::new(row.tenant_id, row.name, row.device_type);
    if let Some(id) = row.id.filter(|s| !s.is_empty()) {
        new = new.with_id(id);
    }
    if let Some(v) = row.firmware_version.filter(|s| !s.is_empty()) {
        new = new.with_firmware_version(v);
    }
    if let Some(m) = row.metadata.filter(|s| !s.is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(&m).map_err(|e| bad(format!("metadata: {e}")))?;
        if !value.is_object() {
            return Err(bad("metadata: must be a JSON object".into()));
        }
        new = new.with_metadata(value);
    }
    let groups = row
        .groups
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((new, groups))
}
