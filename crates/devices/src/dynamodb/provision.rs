//! Bulk provisioning on DynamoDB: checked whole, written in as few
//! transactions as fit (one for most files: then it is all or nothing).

use std::collections::{HashMap, HashSet};

use super::credentials::credential_ops;
use super::devices::{device_ops, group_ops};
use super::tx::{MAX_BYTES, MAX_ITEMS, Outcome};
use super::{Attrs, Backoff, DynamoStore, Fail, Op, check_metadata, keys};
use crate::crypto::random_id;
use crate::error::{Error, Result};
use crate::model::{Device, Group, check_ident};
use crate::provision::{CsvDevice, Provisioned, at_line};

/// A group the file names: found, or to be created with the first device in it.
struct GroupPlan {
    group: Group,
    exists: bool,
}

/// A checked row.
struct Row {
    line: u64,
    device: Device,
    /// Indices into the group plans, distinct.
    groups: Vec<usize>,
    key: Option<(crate::IssuedHmacKey, crate::credentials::NewCredential)>,
}

/// Whole rows written by one transaction, and what else it must write.
struct Chunk {
    rows: std::ops::Range<usize>,
    /// Groups first used here: created here unless they exist by then.
    creates: Vec<usize>,
    /// Tenants of these rows, each with its first line, checked to exist.
    tenants: Vec<(String, u64)>,
}

impl Row {
    /// Writes of the row itself: the device and its indexes, memberships,
    /// key and index, change.
    fn writes(&self) -> usize {
        3 + self.groups.len() + if self.key.is_some() { 2 } else { 0 } + 1
    }

    fn bytes(&self) -> usize {
        let d = &self.device;
        let text = d.metadata.to_string().len()
            + d.name.len()
            + d.id.len()
            + d.tenant_id.len()
            + d.device_type.len()
            + d.firmware_version.as_ref().map_or(0, String::len);
        let key = self.key.as_ref().map_or(0, |(_, c)| c.material.len() + 400);
        // The device item and its change item both hold the description.
        2 * text + 64 * self.groups.len() + key + 1200
    }
}

impl DynamoStore {
    pub(crate) async fn provision(&self, rows: Vec<CsvDevice>) -> Result<Vec<Provisioned>> {
        let (mut rows, mut groups) = self.check(rows).await?;
        let chunks = plan(&rows, &groups)?;
        let mut stored: Vec<String> = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if let Err(cause) = self.write_chunk(chunk, &mut rows, &mut groups).await {
                if i == 0 {
                    return Err(cause);
                }
                return Err(Error::ProvisionIncomplete {
                    stored,
                    cause: Box::new(cause),
                });
            }
            stored.extend(rows[chunk.rows.clone()].iter().map(|r| r.device.id.clone()));
        }
        Ok(rows
            .into_iter()
            .map(|row| Provisioned {
                device: row.device,
                hmac_key: row.key.map(|(issued, _)| issued),
            })
            .collect())
    }

    /// Checks every row as the SQL backend would insert it, in file order:
    /// the first that cannot be stored fails the file with its line.
    async fn check(&self, rows: Vec<CsvDevice>) -> Result<(Vec<Row>, Vec<GroupPlan>)> {
        let prepared: Vec<&Device> = rows.iter().filter_map(|r| r.device.as_ref().ok()).collect();
        let tenant_ids: HashSet<&str> = prepared.iter().map(|d| d.tenant_id.as_str()).collect();
        let tenants: HashSet<String> = self
            .batch_get(tenant_ids.iter().map(|t| keys::tenant(t)).collect())
            .await?
            .iter()
            .map(|item| Attrs::new(item, "stored tenant").s("sk"))
            .collect::<Result<_>>()?;
        let device_ids: HashSet<&str> = prepared.iter().map(|d| d.id.as_str()).collect();
        let taken: HashSet<String> = self
            .batch_get(device_ids.iter().map(|id| keys::device(id)).collect())
            .await?
            .iter()
            .map(|item| Attrs::new(item, "stored device").s("id"))
            .collect::<Result<_>>()?;

        let now = self.now_ms();
        let mut seen = HashSet::new();
        let mut plans: Vec<GroupPlan> = Vec::new();
        let mut by_name: HashMap<(String, String), usize> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let at = at_line(row.line);
            let device = row.device?;
            if !tenants.contains(&device.tenant_id) {
                return Err(at(Error::not_found("tenant", &device.tenant_id)));
            }
            if taken.contains(&device.id) || !seen.insert(device.id.clone()) {
                return Err(at(Error::AlreadyExists {
                    what: "device",
                    id: device.id,
                }));
            }
            check_metadata(&device.metadata).map_err(&at)?;
            let mut refs = Vec::new();
            for name in row.groups {
                check_ident("group name", &name).map_err(&at)?;
                let next = plans.len();
                let i = *by_name
                    .entry((device.tenant_id.clone(), name.clone()))
                    .or_insert(next);
                if i == next {
                    plans.push(GroupPlan {
                        group: Group {
                            id: random_id()?,
                            tenant_id: device.tenant_id.clone(),
                            name,
                            created_at: now,
                        },
                        exists: false,
                    });
                }
                if !refs.contains(&i) {
                    refs.push(i);
                }
            }
            out.push(Row {
                line: row.line,
                device,
                groups: refs,
                key: row.key,
            });
        }
        let all: Vec<usize> = (0..plans.len()).collect();
        self.find_groups(&mut plans, &all).await?;
        for row in &mut out {
            row.device.groups = group_ids(&row.groups, &plans);
        }
        Ok((out, plans))
    }

    /// Takes the ids of the groups among `which` that exist by now.
    async fn find_groups(&self, plans: &mut [GroupPlan], which: &[usize]) -> Result<()> {
        let keys: Vec<_> = which
            .iter()
            .filter(|&&i| !plans[i].exists)
            .map(|&i| {
                keys::key(
                    keys::tenant_groups(&plans[i].group.tenant_id),
                    &plans[i].group.name,
                )
            })
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        for item in self.batch_get(keys).await? {
            let a = Attrs::new(&item, "stored group name");
            let (pk, name) = (a.s("pk")?, a.s("sk")?);
            for &i in which {
                let g = &mut plans[i].group;
                if keys::tenant_groups(&g.tenant_id) == pk && g.name == name {
                    g.id = a.s("group_id")?;
                    g.created_at = a.n("created_at")?;
                    plans[i].exists = true;
                }
            }
        }
        Ok(())
    }

    /// Writes one chunk in one transaction, retrying while other writers
    /// move the change counter or take a group name first.
    async fn write_chunk(
        &self,
        chunk: &Chunk,
        rows: &mut [Row],
        plans: &mut [GroupPlan],
    ) -> Result<()> {
        let mut backoff = Backoff::new("provisioning devices");
        loop {
            let seq = self.last_seq().await?;
            let now = self.now_ms();
            let mut tx = self.tx();
            for (tenant, line) in &chunk.tenants {
                tx.push(Op::check(keys::tenant(tenant)).when(
                    "attribute_exists(pk)",
                    Fail::Error(at_line(*line)(Error::not_found("tenant", tenant))),
                ));
            }
            for &g in &chunk.creates {
                if !plans[g].exists {
                    for op in group_ops(&plans[g].group, Fail::Retry) {
                        tx.push(op);
                    }
                }
            }
            for (i, row) in rows[chunk.rows.clone()].iter_mut().enumerate() {
                row.device.groups = group_ids(&row.groups, plans);
                let taken = Fail::Error(at_line(row.line)(Error::AlreadyExists {
                    what: "device",
                    id: row.device.id.clone(),
                }));
                let keys_issued = i64::from(row.key.is_some());
                // The change numbers log_changes gives the chunk's devices below.
                let change = seq + 1 + i as u64;
                for op in device_ops(&row.device, keys_issued, change, taken)? {
                    tx.push(op);
                }
                for group_id in &row.device.groups {
                    tx.push(Op::put(keys::key(keys::members(group_id), &row.device.id)));
                }
                if let Some((_, cred)) = &row.key {
                    for op in credential_ops(cred) {
                        tx.push(op);
                    }
                }
            }
            let devices: Vec<&Device> =
                rows[chunk.rows.clone()].iter().map(|r| &r.device).collect();
            tx.log_changes(seq, &devices, now)?;
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            // A group name may have been taken meanwhile: use that group.
            self.find_groups(plans, &chunk.creates).await?;
            backoff.wait().await?;
        }
    }
}

/// The sorted ids of the groups a row names.
fn group_ids(refs: &[usize], plans: &[GroupPlan]) -> Vec<String> {
    let mut ids: Vec<String> = refs.iter().map(|&i| plans[i].group.id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Packs whole rows into transactions of at most [`MAX_ITEMS`] writes and
/// [`MAX_BYTES`], in file order.
fn plan(rows: &[Row], plans: &[GroupPlan]) -> Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    let mut created: HashSet<usize> = HashSet::new();
    let mut start = 0;
    while start < rows.len() {
        let mut chunk = Chunk {
            rows: start..start,
            creates: Vec::new(),
            tenants: Vec::new(),
        };
        // The counter move.
        let (mut writes, mut bytes) = (1usize, 200usize);
        for (i, row) in rows.iter().enumerate().skip(start) {
            let new_groups: Vec<usize> = row
                .groups
                .iter()
                .copied()
                .filter(|g| !plans[*g].exists && !created.contains(g) && !chunk.creates.contains(g))
                .collect();
            let new_tenant = !chunk
                .tenants
                .iter()
                .any(|(t, _)| *t == row.device.tenant_id);
            let row_writes = row.writes() + 2 * new_groups.len() + usize::from(new_tenant);
            let row_bytes = row.bytes() + 600 * new_groups.len();
            if writes + row_writes > MAX_ITEMS || bytes + row_bytes > MAX_BYTES {
                if i == start {
                    return Err(at_line(row.line)(Error::invalid(
                        "row",
                        format!(
                            "needs {row_writes} writes, more than one DynamoDB transaction holds"
                        ),
                    )));
                }
                break;
            }
            writes += row_writes;
            bytes += row_bytes;
            chunk.creates.extend(new_groups);
            if new_tenant {
                chunk.tenants.push((row.device.tenant_id.clone(), row.line));
            }
            chunk.rows.end = i + 1;
        }
        created.extend(chunk.creates.iter().copied());
        start = chunk.rows.end;
        chunks.push(chunk);
    }
    Ok(chunks)
}
