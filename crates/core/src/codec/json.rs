//! NDJSON decoding: a sonic-rs fast path, a serde_json path that explains.
//!
//! Measured on fleet-v1 lines (`cargo bench -p iotflow-benches --bench
//! parse`), sonic-rs into a borrowed struct is the fastest of serde_json,
//! simd-json and sonic-rs. Nearly every line is valid, so each line first
//! goes through sonic-rs into borrowed fields; only a line that fails there
//! (or carries escapes or tags) is parsed again by serde_json with `value`
//! and `ts` captured as raw text, which tells a truncated line from a bare
//! `NaN`, `"NaN"` from `"n/a"`, and turns `1e999` into a `non_finite` reject
//! instead of a generic syntax error. Both paths accept exactly the same
//! lines with the same result (tested below and by the property tests).

use std::borrow::Cow;

use iotflow_types::{DeviceId, Field, Metric, Reading, RejectReason, SmallStr, Tags};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Decodes one JSON object per line:
/// `{"device_id":"d-1","ts":1700000000123,"metric":"temp","value":21.3,"unit":"C","tags":{"site":"a"}}`.
///
/// `device_id`, `ts` (integer ms ≥ 0), `metric` and `value` (number) are
/// required; `unit` (string) and `tags` (object of strings) are optional;
/// other fields are ignored.
#[derive(Debug, Default, Clone)]
pub struct JsonDecoder {
    _priv: (),
}

impl JsonDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        JsonDecoder { _priv: () }
    }
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    device_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metric: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tags: Option<&'a RawValue>,
}

/// The shape of a plain valid line, borrowed from the input.
#[derive(Deserialize)]
struct Fast<'a> {
    #[serde(borrow)]
    device_id: &'a str,
    ts: u64,
    #[serde(borrow)]
    metric: &'a str,
    value: f64,
    #[serde(borrow, default)]
    unit: Option<&'a str>,
    #[serde(default)]
    tags: Option<serde::de::IgnoredAny>,
}

impl JsonDecoder {
    /// The fast path; `None` means "ask the explaining path".
    #[inline]
    fn decode_fast(record: &[u8]) -> Option<Reading> {
        if record.first() != Some(&b'{') {
            return None;
        }
        let f: Fast<'_> = sonic_rs::from_slice(record).ok()?;
        if f.tags.is_some()
            || f.device_id.is_empty()
            || f.metric.is_empty()
            || f.ts >= 1 << 62
            || !f.value.is_finite()
        {
            return None;
        }
        Some(Reading {
            device: DeviceId::new(f.device_id),
            ts: f.ts,
            metric: Metric::new(f.metric),
            value: f.value,
            unit: f.unit.map(SmallStr::new),
            tags: Tags::new(),
        })
    }

    /// The explaining path alone (serde_json); public for tests and benches.
    pub fn decode_slow(&mut self, record: &[u8]) -> Result<Reading, RejectReason> {
        let text = std::str::from_utf8(record).map_err(|_| RejectReason::InvalidUtf8)?;
        if !text.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => RejectReason::NotAnObject,
                Err(e) => classify(&e, text),
            });
        }
        let wire: Wire<'_> = match serde_json::from_str(text) {
            Ok(w) => w,
            Err(e) => return Err(classify(&e, text)),
        };
        let device = string_field(wire.device_id, Field::DeviceId)?;
        let ts = timestamp(wire.ts)?;
        let metric = string_field(wire.metric, Field::Metric)?;
        let value = value_field(wire.value)?;
        let unit = match wire.unit {
            Some(raw) if raw.get() != "null" => Some(SmallStr::from(
                json_str(raw)
                    .ok_or(RejectReason::WrongType(Field::Value))?
                    .as_ref(),
            )),
            _ => None,
        };
        let tags = match wire.tags {
            Some(raw) if raw.get() != "null" => parse_tags(raw)?,
            _ => Tags::new(),
        };
        Ok(Reading {
            device: DeviceId::new(&device),
            ts,
            metric: Metric::new(&metric),
            value,
            unit,
            tags,
        })
    }
}

impl super::Decoder for JsonDecoder {
    #[inline]
    fn decode(&mut self, record: &[u8]) -> Result<Reading, RejectReason> {
        match Self::decode_fast(record) {
            Some(r) => Ok(r),
            None => self.decode_slow(record),
        }
    }
}

fn classify(e: &serde_json::Error, text: &str) -> RejectReason {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => RejectReason::NotAnObject,
        Category::Syntax | Category::Eof | Category::Io => {
            if has_bare_nan(text) {
                RejectReason::NanLiteral
            } else {
                RejectReason::InvalidJson
            }
        }
    }
}

/// Whether a bare `NaN`/`Infinity` token appears outside strings.
fn has_bare_nan(text: &str) -> bool {
    let b = text.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'N' && b[i..].starts_with(b"NaN")
            || c == b'I' && b[i..].starts_with(b"Infinity")
        {
            return true;
        }
        i += 1;
    }
    false
}

fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    if !s.starts_with('"') {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

fn string_field(raw: Option<&RawValue>, field: Field) -> Result<Cow<'_, str>, RejectReason> {
    match raw {
        None => Err(RejectReason::MissingField(field)),
        Some(r) if r.get() == "null" => Err(RejectReason::MissingField(field)),
        Some(r) => match json_str(r) {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(RejectReason::MissingField(field)),
            None => Err(RejectReason::WrongType(field)),
        },
    }
}

fn timestamp(raw: Option<&RawValue>) -> Result<u64, RejectReason> {
    let raw = match raw {
        None => return Err(RejectReason::MissingField(Field::Ts)),
        Some(r) if r.get() == "null" => return Err(RejectReason::MissingField(Field::Ts)),
        Some(r) => r.get(),
    };
    if raw.starts_with('"') {
        return Err(RejectReason::WrongType(Field::Ts));
    }
    if raw.starts_with('-') {
        return if raw.bytes().skip(1).all(|c| c.is_ascii_digit()) {
            Err(RejectReason::BadTimestamp)
        } else {
            Err(RejectReason::WrongType(Field::Ts))
        };
    }
    if !raw.bytes().all(|c| c.is_ascii_digit()) {
        return Err(RejectReason::WrongType(Field::Ts));
    }
    // Bounded so that ts + window sizes can never overflow u64.
    match raw.parse::<u64>() {
        Ok(v) if v < (1 << 62) => Ok(v),
        _ => Err(RejectReason::BadTimestamp),
    }
}

fn value_field(raw: Option<&RawValue>) -> Result<f64, RejectReason> {
    let raw = match raw {
        None => return Err(RejectReason::MissingField(Field::Value)),
        Some(r) if r.get() == "null" => return Err(RejectReason::MissingField(Field::Value)),
        Some(r) => r,
    };
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => super::parse_value(text),
        Some(b'"') => {
            let s = json_str(raw).unwrap_or(Cow::Borrowed(""));
            if super::is_nan_word(&s) {
                Err(RejectReason::NanString)
            } else {
                Err(RejectReason::WrongType(Field::Value))
            }
        }
        _ => Err(RejectReason::WrongType(Field::Value)),
    }
}

fn parse_tags(raw: &RawValue) -> Result<Tags, RejectReason> {
    let map: std::collections::BTreeMap<Cow<'_, str>, &RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| RejectReason::NotAnObject)?;
    let mut tags = Tags::with_capacity(map.len());
    for (k, v) in map {
        let v = match json_str(v) {
            Some(s) => SmallStr::from(s.as_ref()),
            None => SmallStr::from(v.get()),
        };
        tags.push((SmallStr::from(k.as_ref()), v));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decoder;

    fn dec(s: &str) -> Result<Reading, RejectReason> {
        JsonDecoder::new().decode(s.as_bytes())
    }

    #[test]
    fn valid_line() {
        let r = dec(r#"{"device_id":"d-00042","ts":1700000000123,"metric":"temp","value":21.37,"unit":"C"}"#)
            .expect("valid");
        assert_eq!(r.device.as_str(), "d-00042");
        assert_eq!(r.ts, 1_700_000_000_123);
        assert_eq!(r.metric.as_str(), "temp");
        assert_eq!(r.value, 21.37);
        assert_eq!(r.unit.as_deref(), Some("C"));
    }

    #[test]
    fn fleet_malformed_kinds_map_one_to_one() {
        let cases = [
            (
                r#"{"device_id":"d-1","ts":17000"#,
                RejectReason::InvalidJson,
            ),
            (
                r#"{"device_id":"d-1","metric":"temp","value":1.0}"#,
                RejectReason::MissingField(Field::Ts),
            ),
            (
                r#"{"device_id":"d-1","ts":1,"metric":"temp","value":NaN,"unit":"C"}"#,
                RejectReason::NanLiteral,
            ),
            (
                r#"{"device_id":"d-1","ts":1,"metric":"temp","value":"NaN","unit":"C"}"#,
                RejectReason::NanString,
            ),
            (
                r#"{"device_id":"d-1","ts":1,"metric":"temp","value":"n/a","unit":"C"}"#,
                RejectReason::WrongType(Field::Value),
            ),
            (
                r#"{"device_id":"d-1","ts":1,"metric":"temp","value":1e999,"unit":"C"}"#,
                RejectReason::NonFinite,
            ),
            (r#"[1,2]"#, RejectReason::NotAnObject),
            (
                r#"{"device_id":"d-1","ts":-5,"metric":"temp","value":1}"#,
                RejectReason::BadTimestamp,
            ),
            (
                r#"{"device_id":"d-1","ts":1.5,"metric":"temp","value":1}"#,
                RejectReason::WrongType(Field::Ts),
            ),
            (
                r#"{"device_id":7,"ts":1,"metric":"temp","value":1}"#,
                RejectReason::WrongType(Field::DeviceId),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(dec(line).err(), Some(want), "{line}");
        }
        assert_eq!(
            JsonDecoder::new().decode(b"\xff\xfe").err(),
            Some(RejectReason::InvalidUtf8)
        );
    }

    #[test]
    fn fast_and_slow_paths_agree() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut lines: Vec<String> = Vec::new();
        for _ in 0..20_000 {
            let v: f64 = match rng.random_range(0..4) {
                0 => rng.random_range(-50.0..150.0),
                1 => f64::from_bits(rng.random::<u64>()),
                2 => (rng.random_range(-100_000i64..100_000) as f64) / 100.0,
                _ => rng.random_range(0.0..1e-300),
            };
            let v = if v.is_finite() { v } else { 1.5 };
            let text = match rng.random_range(0..3) {
                0 => format!("{v}"),
                1 => format!("{v:e}"),
                _ => format!("{v:.4}"),
            };
            let ts: u64 = rng.random_range(0..(1u64 << 63));
            lines.push(format!(
                r#"{{"device_id":"d-{}","ts":{ts},"metric":"temp","value":{text},"unit":"C"}}"#,
                rng.random_range(0..99)
            ));
        }
        lines.extend(
            [
                r#"{"device_id":"","ts":1,"metric":"temp","value":1}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":1,"unit":null}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":1,"tags":null}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":1,"extra":[1,{"x":2}]}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":1,"unit":5}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":1e999}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":-0}"#,
                r#"{"device_id":"a","ts":1,"ts":2,"metric":"temp","value":1}"#,
                r#" {"device_id":"a","ts":1,"metric":"temp","value":1}"#,
                r#"{"device_id":"a","ts":1,"metric":"temp","value":1} x"#,
                r#"{"device_id":"a","ts":4611686018427387904,"metric":"temp","value":1}"#,
            ]
            .map(String::from),
        );
        let mut d = JsonDecoder::new();
        for l in &lines {
            let slow = d.decode_slow(l.as_bytes());
            if let Some(fast) = JsonDecoder::decode_fast(l.as_bytes()) {
                assert_eq!(Ok(fast), slow, "{l}");
            }
            assert_eq!(d.decode(l.as_bytes()), slow, "{l}");
        }
    }

    #[test]
    fn escapes_and_tags() {
        let r = dec(r#"{"device_id":"d\"1","ts":0,"metric":"temp","value":-1,"tags":{"site":"b","fw":"1.2"}}"#)
            .expect("valid");
        assert_eq!(r.device.as_str(), "d\"1");
        assert_eq!(r.tags.len(), 2);
        assert_eq!(r.value, -1.0);
    }
}
