//! Bulk provisioning from CSV.

use serde::Deserialize;
use sqlx::Row;

use crate::credentials::IssuedHmacKey;
use crate::crypto::random_id;
use crate::error::{Error, Result};
use crate::model::{Device, NewDevice};
use crate::registry::Registry;

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

        let mut tx = self.pool().begin().await?;
        let mut out = Vec::with_capacity(rows.len());
        for (line, (new, groups)) in rows {
            let at_line = |e: Error| match e {
                Error::Database(_) => e,
                other => Error::Csv {
                    line,
                    reason: other.to_string(),
                },
            };
            let mut device = self.insert_device(&mut tx, new).await.map_err(at_line)?;
            for name in groups {
                let group_id = self
                    .group_id_or_create(&mut tx, &device.tenant_id, &name)
                    .await
                    .map_err(at_line)?;
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
            let hmac_key = if issue_hmac_keys {
                Some(
                    self.insert_hmac_key(&mut tx, &device.id)
                        .await
                        .map_err(at_line)?,
                )
            } else {
                None
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
