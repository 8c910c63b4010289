//! Items: the keys of the table layout, and typed attribute values.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Item, MAX_METADATA_BYTES};
use crate::error::{Error, Result};

/// Item keys: the table layout of the module docs, in one place.
pub(crate) mod keys {
    use super::super::Item;
    use super::s;

    pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
        Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
    }

    pub(crate) const TENANTS: &str = "tenant";
    pub(crate) const ALL_DEVICES: &str = "devices";
    pub(crate) const CHANGES: &str = "changes";

    pub(crate) fn tenant(id: &str) -> Item {
        key(TENANTS, id)
    }
    pub(crate) fn device(id: &str) -> Item {
        key(format!("device#{id}"), "device")
    }
    pub(crate) fn tenant_devices(tenant: &str) -> String {
        format!("tenant_devices#{tenant}")
    }
    pub(crate) fn group(id: &str) -> Item {
        key(format!("group#{id}"), "group")
    }
    pub(crate) fn tenant_groups(tenant: &str) -> String {
        format!("tenant_groups#{tenant}")
    }
    pub(crate) fn members(group: &str) -> String {
        format!("members#{group}")
    }
    pub(crate) fn credential(id: &str) -> Item {
        key(format!("credential#{id}"), "credential")
    }
    pub(crate) fn device_credentials(device: &str) -> String {
        format!("device_credentials#{device}")
    }
    pub(crate) fn fingerprint(hex: &str) -> Item {
        key(format!("fingerprint#{hex}"), "fingerprint")
    }
    pub(crate) fn nonce(device: &str, nonce: &str) -> Item {
        key(format!("nonce#{device}"), nonce)
    }
    pub(crate) fn counter() -> Item {
        key("change_seq", "change_seq")
    }
    /// The highest change number pruned.
    pub(crate) fn pruned() -> Item {
        key("change_seq", "pruned")
    }
    /// Zero-padded so that string order is number order.
    pub(crate) fn change_sk(seq: u64) -> String {
        format!("{seq:020}")
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Typed reads of a stored item; a missing or mistyped attribute is an
/// [`Error::Invalid`] naming what was read.
pub(crate) struct Attrs<'a> {
    item: &'a Item,
    what: &'static str,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(item: &'a Item, what: &'static str) -> Self {
        Attrs { item, what }
    }

    fn bad(&self, name: &str, expected: &str) -> Error {
        Error::invalid(self.what, format!("attribute {name:?} is not {expected}"))
    }

    pub(crate) fn opt_s(&self, name: &str) -> Result<Option<String>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(self.bad(name, "a string")),
        }
    }

    pub(crate) fn s(&self, name: &str) -> Result<String> {
        self.opt_s(name)?.ok_or_else(|| self.bad(name, "a string"))
    }

    pub(crate) fn opt_n(&self, name: &str) -> Result<Option<i64>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.bad(name, "an integer")),
            Some(_) => Err(self.bad(name, "a number")),
        }
    }

    pub(crate) fn n(&self, name: &str) -> Result<i64> {
        self.opt_n(name)?.ok_or_else(|| self.bad(name, "a number"))
    }

    /// A list of strings; missing is empty.
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.item.get(name) {
            None => Ok(Vec::new()),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.clone()),
                    _ => Err(self.bad(name, "a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.bad(name, "a list of strings")),
        }
    }
}

/// The metadata limit of this backend.
pub(crate) fn check_metadata(metadata: &serde_json::Value) -> Result<()> {
    let len = metadata.to_string().len();
    if len > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            "metadata",
            format!(
                "{len} bytes of JSON; the DynamoDB backend stores at most {MAX_METADATA_BYTES}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::keys;

    #[test]
    fn change_keys_sort_as_numbers() {
        let mut seqs = [10u64, 9, 100, 1, u64::MAX];
        let mut keys: Vec<String> = seqs.iter().map(|&s| keys::change_sk(s)).collect();
        seqs.sort();
        keys.sort();
        assert_eq!(keys, seqs.map(keys::change_sk));
    }
}
