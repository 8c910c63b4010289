//! Tenants, devices and groups on DynamoDB.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::tx::Outcome;
use super::{Attrs, Backoff, DynamoStore, Fail, Item, Op, check_metadata, keys, n, s, sdk_error};
use crate::error::{Error, Result};
use crate::groups::different_tenants;
use crate::model::{Device, Group, Tenant};
use crate::registry::Field;

fn already(what: &'static str, id: &str) -> Error {
    Error::AlreadyExists {
        what,
        id: id.to_owned(),
    }
}

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(s).collect())
}

/// The device item of a new device, registered by change `seq`.
pub(crate) fn device_item(d: &Device, cred_version: i64, seq: u64) -> Result<Item> {
    check_metadata(&d.metadata)?;
    let mut item = keys::device(&d.id);
    item.insert("id".into(), s(&d.id));
    item.insert("tenant_id".into(), s(&d.tenant_id));
    item.insert("name".into(), s(&d.name));
    item.insert("device_type".into(), s(&d.device_type));
    item.insert("status".into(), s(d.status.as_str()));
    if let Some(v) = &d.firmware_version {
        item.insert("firmware_version".into(), s(v));
    }
    item.insert("metadata".into(), s(d.metadata.to_string()));
    item.insert("groups".into(), strings(&d.groups));
    item.insert("created_at".into(), n(d.created_at));
    item.insert("updated_at".into(), n(d.updated_at));
    if let Some(t) = d.last_seen {
        item.insert("last_seen".into(), n(t));
    }
    item.insert("cred_version".into(), n(cred_version));
    item.insert("seq".into(), n(seq_n(seq)));
    Ok(item)
}

/// A change number as stored.
pub(crate) fn seq_n(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(crate) fn device_from_item(item: &Item) -> Result<Device> {
    let a = Attrs::new(item, "stored device");
    let mut groups = a.strings("groups")?;
    groups.sort();
    Ok(Device {
        id: a.s("id")?,
        tenant_id: a.s("tenant_id")?,
        name: a.s("name")?,
        device_type: a.s("device_type")?,
        status: a.s("status")?.parse()?,
        firmware_version: a.opt_s("firmware_version")?,
        metadata: serde_json::from_str(&a.s("metadata")?)
            .map_err(|e| Error::invalid("stored metadata", e.to_string()))?,
        groups,
        created_at: a.n("created_at")?,
        updated_at: a.n("updated_at")?,
        last_seen: a.opt_n("last_seen")?,
    })
}

fn group_from_item(item: &Item) -> Result<Group> {
    let a = Attrs::new(item, "stored group");
    Ok(Group {
        id: a.s("id")?,
        tenant_id: a.s("tenant_id")?,
        name: a.s("name")?,
        created_at: a.n("created_at")?,
    })
}

/// The items of a new group: the group, and its name within the tenant
/// (unique: [`Fail`] on condition it is new).
pub(crate) fn group_ops(g: &Group, name_taken: Fail) -> [Op; 2] {
    let mut by_id = keys::group(&g.id);
    by_id.insert("id".into(), s(&g.id));
    by_id.insert("tenant_id".into(), s(&g.tenant_id));
    by_id.insert("name".into(), s(&g.name));
    by_id.insert("created_at".into(), n(g.created_at));
    let mut by_name = keys::key(keys::tenant_groups(&g.tenant_id), &g.name);
    by_name.insert("group_id".into(), s(&g.id));
    by_name.insert("created_at".into(), n(g.created_at));
    [
        Op::put(by_name).when("attribute_not_exists(pk)", name_taken),
        Op::put(by_id).when("attribute_not_exists(pk)", Fail::Retry),
    ]
}

/// The writes registering a new device by change `seq`: the item (on
/// condition its id is free) and its index items.
pub(crate) fn device_ops(
    d: &Device,
    cred_version: i64,
    seq: u64,
    id_taken: Fail,
) -> Result<[Op; 3]> {
    Ok([
        Op::put(device_item(d, cred_version, seq)?).when("attribute_not_exists(pk)", id_taken),
        Op::put(keys::key(keys::ALL_DEVICES, &d.id)),
        Op::put(keys::key(keys::tenant_devices(&d.tenant_id), &d.id)),
    ])
}

impl DynamoStore {
    pub(crate) async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        let mut item = keys::tenant(&t.id);
        item.insert("name".into(), s(&t.name));
        item.insert("created_at".into(), n(t.created_at));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed_put(&e) => Err(already("tenant", &t.id)),
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    pub(crate) async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.get(keys::tenant(id))
            .await?
            .map(|item| tenant_from_item(&item))
            .transpose()
    }

    pub(crate) async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.query(keys::TENANTS, None, None)
            .await?
            .iter()
            .map(tenant_from_item)
            .collect()
    }

    pub(crate) async fn register_device(&self, d: &Device) -> Result<()> {
        let mut backoff = Backoff::new("registering a device");
        loop {
            let seq = self.last_seq().await?;
            let now = self.now_ms();
            let mut tx = self.tx();
            tx.push(Op::check(keys::tenant(&d.tenant_id)).when(
                "attribute_exists(pk)",
                Fail::Error(Error::not_found("tenant", &d.tenant_id)),
            ));
            for op in device_ops(d, 0, seq + 1, Fail::Error(already("device", &d.id)))? {
                tx.push(op);
            }
            tx.log_changes(seq, &[d], now)?;
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    pub(crate) async fn device(&self, id: &str) -> Result<Option<Device>> {
        self.get(keys::device(id))
            .await?
            .map(|item| device_from_item(&item))
            .transpose()
    }

    /// The devices with these ids that exist, in the order given.
    pub(crate) async fn devices_by_id(&self, ids: &[String]) -> Result<Vec<Device>> {
        let items = self
            .batch_get(ids.iter().map(|id| keys::device(id)).collect())
            .await?;
        let mut by_id: HashMap<String, Device> = items
            .iter()
            .map(|item| device_from_item(item).map(|d| (d.id.clone(), d)))
            .collect::<Result<_>>()?;
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    pub(crate) async fn devices_of_tenant(&self, tenant_id: &str) -> Result<Vec<Device>> {
        let ids = self.sort_keys(&keys::tenant_devices(tenant_id)).await?;
        self.devices_by_id(&ids).await
    }

    pub(crate) async fn update_device(&self, id: &str, field: &Field) -> Result<()> {
        if let Field::Metadata(m) = field {
            check_metadata(m)?;
        }
        let mut backoff = Backoff::new("changing a device");
        loop {
            // Counter first, then the device: a change committed after these
            // reads moves the counter and fails this transaction.
            let seq = self.last_seq().await?;
            let now = self.now_ms();
            let mut device = self
                .device(id)
                .await?
                .ok_or_else(|| Error::not_found("device", id))?;
            field.apply(&mut device);
            device.updated_at = now;
            let mut tx = self.tx();
            tx.push(
                Op::update(
                    keys::device(id),
                    "SET #f = :v, updated_at = :now, #seq = :seq",
                )
                .when("attribute_exists(pk)", Fail::Retry)
                .name("#f", field.column())
                .name("#seq", "seq")
                .value(":seq", n(seq_n(seq + 1)))
                .value(":v", s(field.stored()))
                .value(":now", n(now)),
            );
            tx.log_changes(seq, &[&device], now)?;
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    pub(crate) async fn touch(&self, id: &str, now: i64) -> Result<()> {
        let done = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::device(id)))
            .update_expression("SET last_seen = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed_update(&e) => Err(Error::not_found("device", id)),
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    pub(crate) async fn create_group(&self, g: &Group) -> Result<()> {
        let mut backoff = Backoff::new("creating a group");
        loop {
            let mut tx = self.tx();
            for op in group_ops(g, Fail::Error(already("group", &g.name))) {
                tx.push(op);
            }
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    pub(crate) async fn group(&self, id: &str) -> Result<Option<Group>> {
        self.get(keys::group(id))
            .await?
            .map(|item| group_from_item(&item))
            .transpose()
    }

    pub(crate) async fn groups_of_tenant(&self, tenant_id: &str) -> Result<Vec<Group>> {
        self.query(&keys::tenant_groups(tenant_id), None, None)
            .await?
            .iter()
            .map(|item| {
                let a = Attrs::new(item, "stored group name");
                Ok(Group {
                    id: a.s("group_id")?,
                    tenant_id: tenant_id.to_owned(),
                    name: a.s("sk")?,
                    created_at: a.n("created_at")?,
                })
            })
            .collect()
    }

    pub(crate) async fn group_members(&self, group_id: &str) -> Result<Vec<String>> {
        self.sort_keys(&keys::members(group_id)).await
    }

    pub(crate) async fn add_to_group(&self, group: &Group, device_id: &str) -> Result<()> {
        let mut backoff = Backoff::new("adding a device to a group");
        loop {
            let seq = self.last_seq().await?;
            let now = self.now_ms();
            let mut device = self
                .device(device_id)
                .await?
                .ok_or_else(|| Error::not_found("device", device_id))?;
            if device.tenant_id != group.tenant_id {
                return Err(different_tenants(&group.id, device_id));
            }
            if device.groups.contains(&group.id) {
                return Ok(());
            }
            device.groups.push(group.id.clone());
            device.groups.sort();
            let mut tx = self.tx();
            tx.push(
                Op::put(keys::key(keys::members(&group.id), device_id))
                    .when("attribute_not_exists(pk)", Fail::Retry),
            );
            tx.push(set_groups(&device, seq + 1));
            tx.log_changes(seq, &[&device], now)?;
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    pub(crate) async fn remove_from_group(&self, group_id: &str, device_id: &str) -> Result<bool> {
        let mut backoff = Backoff::new("removing a device from a group");
        loop {
            let seq = self.last_seq().await?;
            let now = self.now_ms();
            let Some(mut device) = self.device(device_id).await? else {
                return Ok(false);
            };
            let Some(at) = device.groups.iter().position(|g| g == group_id) else {
                return Ok(false);
            };
            device.groups.remove(at);
            let mut tx = self.tx();
            tx.push(
                Op::delete(keys::key(keys::members(group_id), device_id))
                    .when("attribute_exists(pk)", Fail::Retry),
            );
            tx.push(set_groups(&device, seq + 1));
            tx.log_changes(seq, &[&device], now)?;
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(true);
            }
            backoff.wait().await?;
        }
    }
}

/// Writes a device's group list as read and changed by the caller, in change `seq`.
fn set_groups(device: &Device, seq: u64) -> Op {
    Op::update(keys::device(&device.id), "SET #g = :g, #seq = :seq")
        .when("attribute_exists(pk)", Fail::Retry)
        .name("#g", "groups")
        .name("#seq", "seq")
        .value(":g", strings(&device.groups))
        .value(":seq", n(seq_n(seq)))
}

fn tenant_from_item(item: &Item) -> Result<Tenant> {
    let a = Attrs::new(item, "stored tenant");
    Ok(Tenant {
        id: a.s("sk")?,
        name: a.s("name")?,
        created_at: a.n("created_at")?,
    })
}

fn is_condition_failed_put<R>(e: &aws_sdk_dynamodb::error::SdkError<PutItemError, R>) -> bool {
    e.as_service_error()
        .is_some_and(PutItemError::is_conditional_check_failed_exception)
}

fn is_condition_failed_update<R>(
    e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>,
) -> bool {
    e.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}
