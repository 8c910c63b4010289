//! The DynamoDB backend (feature `dynamodb`): the whole registry in one table.
//!
//! # Table layout
//!
//! One table, created on first use (on-demand capacity) with a string
//! partition key `pk` and a string sort key `sk`, and TTL on `expires_at`.
//! There are **no GSIs**: GSI reads are only eventually consistent, and the
//! SQL backends promise that what a call wrote the next call reads. Each
//! listing instead has *index items*, written in the same transaction as the
//! item they point to and read with strongly consistent queries.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | tenant | `tenant` | tenant id | `name`, `created_at` |
//! | device | `device#{id}` | `device` | `id`, `tenant_id`, `name`, `device_type`, `status`, `firmware_version`?, `metadata` (JSON text), `groups` (list of group ids), `created_at`, `updated_at`, `last_seen`?, `cred_version`, `seq` (its last change) |
//! | index: every device | `devices` | device id | |
//! | index: a tenant's devices | `tenant_devices#{tenant}` | device id | |
//! | group | `group#{id}` | `group` | `id`, `tenant_id`, `name`, `created_at` |
//! | a tenant's group by name (unique name, listing by name) | `tenant_groups#{tenant}` | group name | `group_id`, `created_at` |
//! | group membership | `members#{group}` | device id | |
//! | credential | `credential#{id}` | `credential` | `id`, `device_id`, `kind`, `material` (HMAC key sealed with the master key, JWT PEM, or fingerprint), `fingerprint`?, `created_at`, `revoked_at`? |
//! | index: a device's credentials | `device_credentials#{device}` | credential id | |
//! | certificate fingerprint (unique across devices) | `fingerprint#{hex}` | `fingerprint` | `credential_id` |
//! | accepted HMAC nonce | `nonce#{device}` | nonce | `msg_ts`, `expires_at` (TTL) |
//! | change counter | `change_seq` | `change_seq` | `n` |
//! | prune mark | `change_seq` | `pruned` | `through`: highest change number pruned |
//! | change | `changes` | seq, 20 digits | `seq`, `device_id`, `changed_at`, `info` (JSON) |
//!
//! Tenants, the every-device index and the change log each live in one
//! partition; that is what gives them a sort order (DynamoDB sorts only
//! within a partition). They are written at registry speed (registrations,
//! changes), not per message: a partition takes about 1000 writes/s. What
//! happens per message — [`touch`](crate::Registry::touch), nonces,
//! credential reads — is spread over partitions per device.
//!
//! # How the SQL guarantees are kept
//!
//! - **Uniqueness** (tenant, device and credential ids, group names within a
//!   tenant, certificate fingerprints): puts on condition
//!   `attribute_not_exists(pk)`, inside the transaction that writes the rest.
//! - **The change log**: every change is one `TransactWriteItems` holding the
//!   device update, its change item numbered n + 1, and the counter item
//!   moved from n to n + 1 on condition it still holds n. (A transaction
//!   cannot return an `ADD`'s new value, and numbers taken before the
//!   transaction would commit out of order.) The counter is read, then the
//!   device, then the transaction is sent: any other change committed in
//!   between fails the condition and the change is tried again (with
//!   backoff, a bounded number of times). So sequence order is commit order
//!   and each logged description is exactly the device after that change,
//!   as on SQL, whose counter row lock serializes writers the same way.
//! - **Reading the log**: DynamoDB's queries are only *read-committed*
//!   across items: while a transaction is being applied, a query may see
//!   some of its items and not others, so change N + 1 may show before N.
//!   [`changes_since`](crate::Registry::changes_since) therefore stops
//!   before a missing number unless the prune mark says it was pruned, and
//!   a [snapshot](crate::Registry::snapshot) re-reads the last changes up
//!   to its number (waiting until they are all there) and lays any newer
//!   than a device item over it. A reader that has seen N has seen every
//!   change before N, as on SQL.
//! - **Nonces**: a put on condition that the nonce is new *or* its message
//!   timestamp left the replay window; TTL removes old ones (only clean-up:
//!   correctness never waits on TTL).
//! - **Key rotation**: the device's `cred_version` counts its credentials;
//!   rotation revokes what it read on condition the count did not move.
//!
//! # What differs
//!
//! - **Provisioning** is atomic for a file that fits one transaction (100
//!   writes, 4 MB); a larger one is checked whole, then written in several
//!   transactions of whole devices (see
//!   [`Registry::provision_csv`](crate::Registry::provision_csv) and
//!   [`Error::ProvisionIncomplete`]).
//! - **Sizes**: device metadata is at most [`MAX_METADATA_BYTES`] as JSON
//!   (an item holds at most 400 KB, and the change log copies it); a
//!   rotation revokes at most [`MAX_ROTATE_REVOKES`] keys at once.
//! - **Contention**: changes to the registry are serialized on the counter
//!   item, as on SQL, but by retrying rather than waiting; under heavy
//!   concurrent writing a change may fail with a transient
//!   [`Error::DynamoDb`] after its retries.
//! - **Costs**: listings read index items and then the devices they name
//!   (`BatchGetItem`); status and type filters apply after reading, so a
//!   selective filter pays for every device it skips. A snapshot reads every
//!   device. Pruning the change log reads what it deletes.
//! - **Order**: ids sort by their UTF-8 bytes (as SQLite does; PostgreSQL
//!   sorts by its collation, which agrees for ASCII ids).

/// The AWS SDK for DynamoDB this backend is built with, for
/// [`RegistryBuilder::dynamodb_client`](crate::RegistryBuilder::dynamodb_client).
pub use aws_sdk_dynamodb as sdk;

mod changes;
mod credentials;
mod devices;
mod item;
mod provision;
mod table;
#[cfg(test)]
mod tests;
mod tx;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use iotflow_core::clock::Clock;

use crate::crypto::random_bytes;
use crate::error::{Error, Result};
use crate::registry::unix_ms;

pub(crate) use item::{Attrs, check_metadata, keys, n, s};
pub(crate) use tx::{Fail, Op, Tx};

/// Largest device metadata, as JSON text, the DynamoDB backend stores.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Most HMAC keys one [`Registry::rotate_hmac_key`](crate::Registry::rotate_hmac_key)
/// revokes on DynamoDB (one transaction).
pub const MAX_ROTATE_REVOKES: usize = 90;

/// How often, and how many times, opening polls a new table until it is active.
const TABLE_WAIT_POLL: Duration = Duration::from_millis(500);
const TABLE_WAIT_POLLS: u32 = 240;

/// The TTL attribute of nonce items.
const TTL_ATTRIBUTE: &str = "expires_at";

/// An item, or a key.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The registry's table.
#[derive(Debug)]
pub(crate) struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

/// An SDK error as the crate's error, transient when a retry may help.
pub(crate) fn sdk_error<E, R>(operation: &'static str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Debug,
{
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => matches!(
            e.code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "ThrottlingException"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException"
                    | "TransactionConflictException"
                    | "TransactionInProgressException"
            )
        ),
        _ => false,
    };
    Error::DynamoDb {
        operation,
        message: DisplayErrorContext(&e).to_string(),
        transient,
    }
}

pub(crate) fn build_error(e: BuildError) -> Error {
    Error::DynamoDb {
        operation: "building a request",
        message: e.to_string(),
        transient: false,
    }
}

/// Retries with jittered exponential backoff, a bounded number of times.
pub(crate) struct Backoff {
    operation: &'static str,
    attempt: u32,
}

impl Backoff {
    const ATTEMPTS: u32 = 40;

    pub(crate) fn new(operation: &'static str) -> Self {
        Backoff {
            operation,
            attempt: 0,
        }
    }

    /// Sleeps before the next attempt; fails (transient) when there is none.
    pub(crate) async fn wait(&mut self) -> Result<()> {
        self.attempt += 1;
        if self.attempt >= Self::ATTEMPTS {
            return Err(Error::DynamoDb {
                operation: self.operation,
                message: format!(
                    "gave up after {} attempts: other writers kept changing the registry",
                    Self::ATTEMPTS
                ),
                transient: true,
            });
        }
        let cap_ms = (5u64 << self.attempt.min(6)).min(250);
        let jitter = u64::from(u16::from_le_bytes(random_bytes::<2>()?)) % cap_ms;
        tokio::time::sleep(Duration::from_millis(cap_ms / 2 + jitter / 2)).await;
        Ok(())
    }
}

impl DynamoStore {
    pub(crate) fn now_ms(&self) -> i64 {
        unix_ms(self.clock.as_ref())
    }

    pub(crate) fn tx(&self) -> Tx {
        Tx::new(&self.table)
    }

    /// One item, read strongly consistent.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?
            .item)
    }

    /// The items of partition `pk` whose sort key is greater than `after`,
    /// in sort-key order, at most `limit` (all without one), read strongly
    /// consistent.
    pub(crate) async fn query(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(a) => q
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", s(a)),
                None => q.key_condition_expression("pk = :pk"),
            };
            if let Some(limit) = limit {
                let left = limit.saturating_sub(out.len()).max(1);
                q = q.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            let page = q.send().await.map_err(|e| sdk_error("Query", e))?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        if let Some(limit) = limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// The sort keys of a whole partition, in order.
    pub(crate) async fn sort_keys(&self, pk: &str) -> Result<Vec<String>> {
        self.query(pk, None, None)
            .await?
            .iter()
            .map(|item| Attrs::new(item, "index item").s("sk"))
            .collect()
    }

    /// The items with these (distinct) keys that exist, in no order, read
    /// strongly consistent.
    pub(crate) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            let mut backoff = Backoff::new("BatchGetItem");
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                if let Some(items) = got.responses.and_then(|mut r| r.remove(&self.table)) {
                    out.extend(items);
                }
                pending = got
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff.wait().await?;
                }
            }
        }
        Ok(out)
    }

    /// Deletes the items with these (distinct) keys.
    pub(crate) async fn batch_delete(&self, keys: Vec<Item>) -> Result<()> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        for chunk in keys.chunks(25) {
            let mut pending = chunk
                .iter()
                .map(|k| {
                    Ok(WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(k.clone()))
                                .build()
                                .map_err(build_error)?,
                        )
                        .build())
                })
                .collect::<Result<Vec<_>>>()?;
            let mut backoff = Backoff::new("BatchWriteItem");
            while !pending.is_empty() {
                let done = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                pending = done
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff.wait().await?;
                }
            }
        }
        Ok(())
    }

    /// The number of the last change: the counter item, 0 before the first.
    pub(crate) async fn last_seq(&self) -> Result<u64> {
        match self.get(keys::counter()).await? {
            Some(item) => {
                Ok(u64::try_from(Attrs::new(&item, "change counter").n("n")?).unwrap_or(0))
            }
            None => Ok(0),
        }
    }
}
