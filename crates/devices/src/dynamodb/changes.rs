//! The change log and device listings on DynamoDB.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use iotflow_types::DeviceInfo;

use super::devices::device_from_item;
use super::{Attrs, Backoff, DynamoStore, Item, keys, n, sdk_error};
use crate::changes::{ChangeRow, device_info};
use crate::error::Result;
use crate::model::Device;
use crate::query::DeviceFilter;

/// Index items read per query while listing.
const INDEX_PAGE: usize = 1000;

/// Changes a snapshot reads again, in case their transactions were still
/// being applied while it read the devices.
const SNAPSHOT_TAIL: u64 = 256;

fn change_from_item(item: &Item) -> Result<ChangeRow> {
    let a = Attrs::new(item, "stored change");
    Ok(ChangeRow {
        seq: a.n("seq")?,
        device_id: a.s("device_id")?,
        changed_at: a.n("changed_at")?,
        info: a.opt_s("info")?,
    })
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl DynamoStore {
    /// The highest change number pruning has deleted (or is deleting).
    async fn pruned_through(&self) -> Result<u64> {
        match self.get(keys::pruned()).await? {
            Some(item) => Ok(to_u64(Attrs::new(&item, "prune mark").n("through")?)),
            None => Ok(0),
        }
    }

    /// Up to `limit` changes after `after`, in order, stopping before the
    /// first number that is missing and was not pruned.
    ///
    /// A query sees each item's committed value but not a transaction's items
    /// all at once: while a change is being applied its item may be missing
    /// though a later one is there. Stopping at the gap keeps the promise
    /// that a reader who has seen N has seen every change before N; the rest
    /// comes with the next read.
    async fn contiguous_changes(&self, after: u64, limit: usize) -> Result<Vec<ChangeRow>> {
        let items = self
            .query(keys::CHANGES, Some(&keys::change_sk(after)), Some(limit))
            .await?;
        let mut out: Vec<ChangeRow> = Vec::with_capacity(items.len());
        let mut pruned = None;
        let mut expected = after + 1;
        for item in &items {
            let change = change_from_item(item)?;
            let seq = to_u64(change.seq);
            if seq != expected {
                let through = match pruned {
                    Some(t) => t,
                    None => *pruned.insert(self.pruned_through().await?),
                };
                if seq - 1 > through {
                    break;
                }
            }
            expected = seq + 1;
            out.push(change);
        }
        Ok(out)
    }

    pub(crate) async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRow>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.contiguous_changes(after, limit as usize).await
    }

    /// Every device's description as of change `seq` or later (the counter
    /// was read first, as on SQL).
    ///
    /// Device items are read with their `seq`, the change that wrote them
    /// last. A change up to `seq` whose transaction was still being applied
    /// may not show in its device item (or the index) yet: the last
    /// [`SNAPSHOT_TAIL`] changes up to `seq` are read once they are all
    /// there, and any newer than its device item replaces it.
    pub(crate) async fn snapshot(&self, seq: u64) -> Result<Vec<Arc<DeviceInfo>>> {
        let ids = self.sort_keys(keys::ALL_DEVICES).await?;
        let items = self
            .batch_get(ids.iter().map(|id| keys::device(id)).collect())
            .await?;
        let mut devices: BTreeMap<String, (u64, Arc<DeviceInfo>)> = BTreeMap::new();
        for item in &items {
            let device = device_from_item(item)?;
            let written = to_u64(Attrs::new(item, "stored device").opt_n("seq")?.unwrap_or(0));
            devices.insert(device.id.clone(), (written, Arc::new(device_info(&device))));
        }
        let from = seq.saturating_sub(SNAPSHOT_TAIL);
        let mut backoff = Backoff::new("reading the change log for a snapshot");
        let tail = loop {
            let tail = self
                .contiguous_changes(from, SNAPSHOT_TAIL as usize)
                .await?;
            let complete = tail.last().is_some_and(|c| to_u64(c.seq) >= seq)
                || seq <= from
                || self.pruned_through().await? >= seq;
            if complete {
                break tail;
            }
            backoff.wait().await?;
        };
        for change in tail {
            let at = to_u64(change.seq);
            if at > seq
                || devices
                    .get(&change.device_id)
                    .is_some_and(|(w, _)| *w >= at)
            {
                continue;
            }
            match change.info {
                Some(text) => {
                    let info = crate::changes::parse_info(&text)?;
                    devices.insert(change.device_id, (at, Arc::new(info)));
                }
                None => {
                    devices.remove(&change.device_id);
                }
            }
        }
        Ok(devices.into_values().map(|(_, info)| info).collect())
    }

    /// Deletes the oldest changes up to the first one at or after
    /// `before_ms`: change times grow with sequence numbers (each change
    /// reads the time after the counter it moves), so that is every change
    /// before `before_ms`. The highest number deleted is recorded first, so
    /// that readers tell a pruned gap from a change still being applied.
    pub(crate) async fn prune_changes(&self, before_ms: i64) -> Result<u64> {
        let mut deleted = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .query(keys::CHANGES, after.as_deref(), Some(INDEX_PAGE))
                .await?;
            let full = page.len() == INDEX_PAGE;
            let mut old = Vec::new();
            let mut through = 0;
            let mut reached = false;
            for item in &page {
                let change = change_from_item(item)?;
                if change.changed_at >= before_ms {
                    reached = true;
                    break;
                }
                through = change.seq;
                old.push(keys::key(
                    keys::CHANGES,
                    keys::change_sk(to_u64(change.seq)),
                ));
            }
            after = old
                .last()
                .map(|key| Attrs::new(key, "change key").s("sk"))
                .transpose()?;
            if !old.is_empty() {
                self.mark_pruned(through).await?;
                deleted += old.len() as u64;
                self.batch_delete(old).await?;
            }
            if reached || !full {
                return Ok(deleted);
            }
        }
    }

    /// Raises the prune mark to `through` (never lowers it).
    pub(super) async fn mark_pruned(&self, through: i64) -> Result<()> {
        let done = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::pruned()))
            .update_expression("SET through = :t")
            .condition_expression("attribute_not_exists(through) OR through < :t")
            .expression_attribute_values(":t", n(through))
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    /// One page of [`Registry::list_devices`](crate::Registry::list_devices):
    /// up to `limit` devices by id, and whether more match.
    ///
    /// Reads the index of the group, else of the tenant, else of every
    /// device, from the cursor on; then the devices it names, keeping those
    /// that pass the other filters, until `limit + 1` did or the index ends.
    pub(crate) async fn list_devices(
        &self,
        filter: &DeviceFilter,
        limit: u32,
    ) -> Result<(Vec<Device>, bool)> {
        let (index, tenant_check) = match (&filter.group_id, &filter.tenant_id) {
            (Some(g), t) => (keys::members(g), t.as_deref()),
            (None, Some(t)) => (keys::tenant_devices(t), None),
            (None, None) => (keys::ALL_DEVICES.to_owned(), None),
        };
        let filtered =
            tenant_check.is_some() || filter.status.is_some() || filter.device_type.is_some();
        let keep = |d: &Device| {
            tenant_check.is_none_or(|t| d.tenant_id == t)
                && filter.status.is_none_or(|s| d.status == s)
                && filter
                    .device_type
                    .as_deref()
                    .is_none_or(|t| d.device_type == t)
        };
        let want = limit as usize + 1;
        let mut found: Vec<Device> = Vec::new();
        let mut after = filter.after.clone();
        'index: loop {
            // Without filters every index entry is a device of the page:
            // read no more of either than the page needs.
            let page = if filtered {
                INDEX_PAGE
            } else {
                want - found.len()
            };
            let ids = self
                .query(&index, after.as_deref(), Some(page))
                .await?
                .iter()
                .map(|item| Attrs::new(item, "index item").s("sk"))
                .collect::<Result<Vec<_>>>()?;
            let end = ids.len() < page;
            after = ids.last().cloned();
            for chunk in ids.chunks(100) {
                for device in self.devices_by_id(chunk).await? {
                    if keep(&device) {
                        found.push(device);
                        if found.len() == want {
                            break 'index;
                        }
                    }
                }
            }
            if end {
                break;
            }
        }
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        Ok((found, more))
    }
}
