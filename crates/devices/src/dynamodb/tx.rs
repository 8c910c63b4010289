//! Transactions: a list of conditional writes, each saying what its failed
//! condition means, and the change-log items with the counter move.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use super::{DynamoStore, Item, build_error, keys, n, s, sdk_error};
use crate::error::{Error, Result};
use crate::model::Device;

/// What a failed condition of one write means.
#[derive(Debug)]
pub(crate) enum Fail {
    /// What the caller read has changed since: read again and retry.
    Retry,
    /// The caller's request cannot succeed: this error.
    Error(Error),
}

#[derive(Debug)]
enum Kind {
    Put(Item),
    Update(Item, String),
    Delete(Item),
    Check(Item),
}

/// One write of a transaction.
#[derive(Debug)]
pub(crate) struct Op {
    kind: Kind,
    condition: Option<(String, Fail)>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Op {
    fn of(kind: Kind) -> Op {
        Op {
            kind,
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// Writes the whole item.
    pub(crate) fn put(item: Item) -> Op {
        Op::of(Kind::Put(item))
    }

    /// Updates the item at `key` with an update expression.
    pub(crate) fn update(key: Item, expression: &str) -> Op {
        Op::of(Kind::Update(key, expression.to_owned()))
    }

    /// Deletes the item at `key`.
    pub(crate) fn delete(key: Item) -> Op {
        Op::of(Kind::Delete(key))
    }

    /// Writes nothing; only its condition counts.
    pub(crate) fn check(key: Item) -> Op {
        Op::of(Kind::Check(key))
    }

    /// The write happens only if `condition` holds; otherwise the whole
    /// transaction is cancelled and `fail` says why.
    pub(crate) fn when(mut self, condition: &str, fail: Fail) -> Op {
        self.condition = Some((condition.to_owned(), fail));
        self
    }

    /// `#placeholder` stands for attribute `name` (many names are reserved words).
    pub(crate) fn name(mut self, placeholder: &str, name: &str) -> Op {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }

    /// `:placeholder` stands for `value`.
    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Op {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// Roughly the bytes this write sends, for the 4 MB transaction limit.
    fn size(&self) -> usize {
        let item = match &self.kind {
            Kind::Put(i) | Kind::Update(i, _) | Kind::Delete(i) | Kind::Check(i) => i,
        };
        let attrs: usize = item
            .iter()
            .chain(self.values.iter())
            .map(|(k, v)| k.len() + value_size(v))
            .sum();
        attrs + 100
    }

    fn build(self, table: &str) -> Result<(TransactWriteItem, Option<Fail>)> {
        let (condition, fail) = match self.condition {
            Some((c, f)) => (Some(c), Some(f)),
            None => (None, None),
        };
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        let item = match self.kind {
            Kind::Put(item) => TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(item))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?,
            ),
            Kind::Update(key, expression) => TransactWriteItem::builder().update(
                Update::builder()
                    .table_name(table)
                    .set_key(Some(key))
                    .update_expression(expression)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?,
            ),
            Kind::Delete(key) => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(table)
                    .set_key(Some(key))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?,
            ),
            Kind::Check(key) => TransactWriteItem::builder().condition_check(
                ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(key))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(build_error)?,
            ),
        };
        Ok((item.build(), fail))
    }
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::L(list) => list.iter().map(value_size).sum::<usize>() + 3,
        _ => 8,
    }
}

/// The writes of one `TransactWriteItems`: all happen, or none.
#[derive(Debug)]
pub(crate) struct Tx {
    table: String,
    ops: Vec<Op>,
}

/// What became of a transaction that DynamoDB answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Committed,
    /// A condition marked [`Fail::Retry`] failed, or another transaction
    /// touched the same items: read again and retry.
    Retry,
}

/// Most writes in one transaction.
pub(crate) const MAX_ITEMS: usize = 100;
/// Most bytes in one transaction (DynamoDB: 4 MB), with a margin for the
/// estimate.
pub(crate) const MAX_BYTES: usize = 3_500_000;

impl Tx {
    pub(crate) fn new(table: &str) -> Tx {
        Tx {
            table: table.to_owned(),
            ops: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Puts the change-log items of `devices` (each as it is after this
    /// transaction) numbered from `seq + 1`, and moves the counter from `seq`
    /// on condition it still holds `seq` ([`Fail::Retry`] otherwise).
    pub(crate) fn log_changes(&mut self, seq: u64, devices: &[&Device], now: i64) -> Result<()> {
        let mut next = seq;
        for device in devices {
            next += 1;
            let info = crate::changes::info_json(device)?;
            let mut item = keys::key(keys::CHANGES, keys::change_sk(next));
            item.insert("seq".into(), n(i64::try_from(next).unwrap_or(i64::MAX)));
            item.insert("device_id".into(), s(&device.id));
            item.insert("changed_at".into(), n(now));
            item.insert("info".into(), s(info));
            self.push(Op::put(item));
        }
        let old = i64::try_from(seq).unwrap_or(i64::MAX);
        let new = i64::try_from(next).unwrap_or(i64::MAX);
        self.push(
            Op::update(keys::counter(), "SET #n = :new")
                .when("attribute_not_exists(pk) OR #n = :old", Fail::Retry)
                .name("#n", "n")
                .value(":new", n(new))
                .value(":old", n(old)),
        );
        Ok(())
    }
}

impl DynamoStore {
    /// Sends the transaction. A failed condition marked [`Fail::Error`] is
    /// returned as its error, unless one marked [`Fail::Retry`] failed too
    /// (then what was read is stale, and the error may be an artefact of it).
    pub(crate) async fn commit(&self, tx: Tx) -> Result<Outcome> {
        if tx.ops.is_empty() {
            return Ok(Outcome::Committed);
        }
        let count = tx.ops.len();
        let bytes: usize = tx.ops.iter().map(Op::size).sum();
        if count > MAX_ITEMS || bytes > MAX_BYTES {
            return Err(Error::DynamoDb {
                operation: "TransactWriteItems",
                message: format!(
                    "{count} writes of about {bytes} bytes do not fit one transaction \
                     ({MAX_ITEMS} writes, 4 MB)"
                ),
                transient: false,
            });
        }
        let mut items = Vec::with_capacity(count);
        let mut fails = Vec::with_capacity(count);
        for op in tx.ops {
            let (item, fail) = op.build(&tx.table)?;
            items.push(item);
            fails.push(fail);
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let e = match sent {
            Ok(_) => return Ok(Outcome::Committed),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            e.as_service_error()
        {
            let mut first_error = None;
            let mut other = None;
            for (i, reason) in cancelled.cancellation_reasons().iter().enumerate() {
                match reason.code() {
                    None | Some("None") => {}
                    Some("ConditionalCheckFailed") => match fails.get(i) {
                        Some(Some(Fail::Retry)) => return Ok(Outcome::Retry),
                        Some(Some(Fail::Error(_))) => {
                            first_error.get_or_insert(i);
                        }
                        _ => {
                            other.get_or_insert(format!("write {i}: condition failed"));
                        }
                    },
                    Some("TransactionConflict") => return Ok(Outcome::Retry),
                    Some(code) => {
                        other.get_or_insert(format!(
                            "write {i}: {code}: {}",
                            reason.message().unwrap_or_default()
                        ));
                    }
                }
            }
            if let Some(i) = first_error
                && let Some(Fail::Error(error)) = fails.swap_remove(i)
            {
                return Err(error);
            }
            if let Some(message) = other {
                let transient = message.contains("Throttl")
                    || message.contains("ProvisionedThroughputExceeded");
                return Err(Error::DynamoDb {
                    operation: "TransactWriteItems",
                    message,
                    transient,
                });
            }
        }
        if e.as_service_error()
            .is_some_and(|e| e.is_transaction_in_progress_exception())
        {
            return Ok(Outcome::Retry);
        }
        Err(sdk_error("TransactWriteItems", e))
    }
}
