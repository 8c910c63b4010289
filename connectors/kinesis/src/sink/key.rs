//! Partition keys of outgoing records.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::PartitionKey;

/// Kinesis's limit on a partition key, in Unicode characters.
const MAX_KEY_CHARS: usize = 256;

/// A [`PartitionKey`] rule with its round-robin counter.
#[derive(Debug)]
pub(super) struct KeyRule {
    rule: PartitionKey,
    next: u64,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    device_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    device: Option<&'a RawValue>,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
}

impl KeyRule {
    pub(super) fn new(rule: &PartitionKey) -> Self {
        KeyRule {
            rule: rule.clone(),
            next: 0,
        }
    }

    /// A key for a serialized JSON record, by the rule.
    pub(super) fn of_json(&mut self, json: &[u8]) -> String {
        let found = match &self.rule {
            PartitionKey::Device => device_of(json),
            PartitionKey::Pointer(p) => serde_json::from_slice::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v.pointer(p).and_then(scalar_value)),
            PartitionKey::RoundRobin => None,
        };
        match found {
            Some(k) => self.fixed(k),
            None => self.round_robin(),
        }
    }

    /// `key` made valid: cut to 256 characters; round-robin when empty.
    pub(super) fn fixed(&mut self, key: String) -> String {
        if key.is_empty() {
            return self.round_robin();
        }
        match key.char_indices().nth(MAX_KEY_CHARS) {
            Some((cut, _)) => key[..cut].to_owned(),
            None => key,
        }
    }

    fn round_robin(&mut self) -> String {
        self.next = self.next.wrapping_add(1);
        format!("rr-{}", self.next)
    }
}

/// The `device_id` field (readings on the wire), else `device` (readings,
/// alerts as iotflow serializes them), else `key.device` (window results),
/// as a string.
fn device_of(json: &[u8]) -> Option<String> {
    let probe: Probe<'_> = serde_json::from_slice(json).ok()?;
    if let Some(d) = probe.device_id.or(probe.device).and_then(scalar_raw) {
        return Some(d);
    }
    let inner: Probe<'_> = serde_json::from_str(probe.key?.get()).ok()?;
    inner.device.and_then(scalar_raw)
}

/// A JSON string's text or a number's digits.
fn scalar_raw(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(raw.get())
        .ok()
        .as_ref()
        .and_then(scalar_value)
}

fn scalar_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys_from_readings_and_window_results() {
        let mut k = KeyRule::new(&PartitionKey::Device);
        assert_eq!(k.of_json(br#"{"device":"d-1","ts":5,"value":1.0}"#), "d-1");
        assert_eq!(
            k.of_json(br#"{"device_id":"d-9","ts":5,"value":1.0}"#),
            "d-9"
        );
        assert_eq!(
            k.of_json(br#"{"key":{"device":"d-2","metric":"t"},"stats":{}}"#),
            "d-2"
        );
        assert_eq!(k.of_json(br#"{"device":42}"#), "42");
        // No device: round robin, never the same key twice in a row.
        let a = k.of_json(br#"{"other":1}"#);
        let b = k.of_json(b"not json");
        assert!(a.starts_with("rr-") && b.starts_with("rr-") && a != b);
    }

    #[test]
    fn pointer_and_round_robin_rules() {
        let mut k = KeyRule::new(&PartitionKey::Pointer("/meta/site".into()));
        assert_eq!(k.of_json(br#"{"meta":{"site":"lyon"}}"#), "lyon");
        assert!(k.of_json(br#"{"meta":{}}"#).starts_with("rr-"));
        let mut rr = KeyRule::new(&PartitionKey::RoundRobin);
        assert_ne!(
            rr.of_json(br#"{"device":"d"}"#),
            rr.of_json(br#"{"device":"d"}"#)
        );
    }

    #[test]
    fn keys_are_cut_to_256_characters() {
        let mut k = KeyRule::new(&PartitionKey::Device);
        let long = "é".repeat(300);
        let cut = k.fixed(long);
        assert_eq!(cut.chars().count(), 256);
        assert!(k.fixed(String::new()).starts_with("rr-"));
    }
}
