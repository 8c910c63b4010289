//! Reading bodies at the door: JSON shape only, then one compact line per
//! reading.
//!
//! The pipeline's decoder validates readings fully and sends bad ones to
//! the dead-letter output with their reason, so the door checks only what
//! the decoder cannot: that the body is JSON (one object, an array of
//! objects, or one object per line), and, when devices authenticate, that
//! no reading names another device. A reading whose fields are missing,
//! of the wrong type or out of range is forwarded as it is, to be
//! rejected downstream with its reason.
//!
//! Each reading is forwarded as its own text with the whitespace between
//! tokens removed: numbers keep their exact spelling (`1e999` still reaches
//! the decoder, which rejects it as `non_finite`), and no line holds a
//! newline (a JSON string cannot hold a raw one).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::queue::Batch;

/// How a body holds its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// One JSON object (`POST /ingest`).
    One,
    /// A JSON array of objects, or (when it does not start with `[`) one
    /// object per line.
    JsonBatch,
    /// One object per line (NDJSON); blank lines are skipped.
    Lines,
}

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not JSON of the expected shape (400).
    Malformed(String),
    /// A reading names another device than the authenticated one (403).
    WrongDevice {
        /// 1-based reading number in the body.
        reading: usize,
        /// The device it names.
        found: String,
    },
}

/// Parses `body` into one compact line per reading. With `device`, every
/// reading's `device_id` (each of them, should one appear twice) must be
/// that device; a reading without a string `device_id` is forwarded (the
/// decoder rejects it).
pub(crate) fn parse(body: &[u8], form: Form, device: Option<&str>) -> Result<Batch, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::Malformed(format!("body is not UTF-8: {e}")))?;
    let mut batch = Batch {
        data: Vec::with_capacity(body.len() + 16),
        count: 0,
    };
    let mut add = |raw: &str, what: &dyn Fn() -> String| -> Result<(), BodyError> {
        batch.count += 1;
        push_reading(&mut batch.data, raw, batch.count, device, what)
    };
    let starts_array = text.trim_start().starts_with('[');
    match form {
        Form::One => {
            let raw: &RawValue = serde_json::from_str(text)
                .map_err(|e| BodyError::Malformed(format!("body is not one JSON object: {e}")))?;
            add(raw.get(), &|| "body".to_owned())?;
        }
        Form::JsonBatch if starts_array => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
                BodyError::Malformed(format!("body is not a JSON array of readings: {e}"))
            })?;
            for (i, raw) in items.iter().enumerate() {
                add(raw.get(), &|| format!("array element {}", i + 1))?;
            }
        }
        Form::JsonBatch | Form::Lines => {
            for (i, line) in text.split('\n').enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let raw: &RawValue = serde_json::from_str(line).map_err(|e| {
                    BodyError::Malformed(format!("line {}: not one JSON object: {e}", i + 1))
                })?;
                add(raw.get(), &|| format!("line {}", i + 1))?;
            }
        }
    }
    Ok(batch)
}

/// Appends `raw` (one valid JSON value) to `out` as a compact line, after
/// checking that it is an object and, with `device`, whose it is.
fn push_reading(
    out: &mut Vec<u8>,
    raw: &str,
    reading: usize,
    device: Option<&str>,
    what: &dyn Fn() -> String,
) -> Result<(), BodyError> {
    if !raw.trim_start().starts_with('{') {
        return Err(BodyError::Malformed(format!(
            "{}: a reading must be a JSON object",
            what()
        )));
    }
    if let Some(expected) = device {
        let mut de = serde_json::Deserializer::from_str(raw);
        let found = DeviceIds { expected }
            .deserialize(&mut de)
            .map_err(|e| BodyError::Malformed(format!("{}: {e}", what())))?;
        if let Some(found) = found {
            return Err(BodyError::WrongDevice { reading, found });
        }
    }
    compact_into(out, raw);
    out.push(b'\n');
    Ok(())
}

/// Copies valid JSON text without the whitespace between its tokens.
fn compact_into(out: &mut Vec<u8>, json: &str) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
}

/// Reads an object's `device_id` fields without building the object:
/// yields the first one that is a string other than `expected`. Other
/// values are skipped unparsed (`IgnoredAny` does not convert numbers, so
/// `1e999` elsewhere does not fail here).
struct DeviceIds<'e> {
    expected: &'e str,
}

impl<'de> DeserializeSeed<'de> for DeviceIds<'_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeviceIds<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut wrong = None;
        while let Some(is_device_id) = map.next_key_seed(IsDeviceId)? {
            if !is_device_id {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw: &RawValue = map.next_value()?;
            // Only a string can name a device; the decoder rejects the rest.
            if raw.get().starts_with('"') {
                let id: String = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
                if id != self.expected && wrong.is_none() {
                    wrong = Some(id);
                }
            }
        }
        Ok(wrong)
    }
}

/// A key, decoded (escapes included), compared with `device_id`.
struct IsDeviceId;

impl<'de> DeserializeSeed<'de> for IsDeviceId {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IsDeviceId {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == "device_id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(batch: &Batch) -> Vec<&str> {
        std::str::from_utf8(&batch.data)
            .expect("utf-8")
            .lines()
            .collect()
    }

    fn malformed(r: Result<Batch, BodyError>) -> String {
        match r {
            Err(BodyError::Malformed(m)) => m,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    const R1: &str =
        r#"{"device_id":"d-1","ts":1700000000123,"metric":"temp","value":21.37,"unit":"C"}"#;

    #[test]
    fn one_reading_becomes_one_compact_line() {
        let body = "{ \"device_id\" : \"d-1\",\n \"ts\": 1700000000123, \"metric\": \"temp\",\r\n\t\"value\": 21.37, \"unit\": \"C\" }\n";
        let b = parse(body.as_bytes(), Form::One, None).expect("parsed");
        assert_eq!((b.count, lines(&b)), (1, vec![R1]));
    }

    #[test]
    fn whitespace_inside_strings_and_escapes_is_kept() {
        let body = r#"{"device_id": "d 1\"x\\", "tag": "a  b\n"}"#;
        let b = parse(body.as_bytes(), Form::One, None).expect("parsed");
        assert_eq!(
            lines(&b),
            vec![r#"{"device_id":"d 1\"x\\","tag":"a  b\n"}"#]
        );
    }

    #[test]
    fn arrays_and_lines_give_one_line_per_reading() {
        let array = format!("[\n  {R1},\n  {R1}\n]");
        let b = parse(array.as_bytes(), Form::JsonBatch, None).expect("array");
        assert_eq!((b.count, lines(&b)), (2, vec![R1, R1]));
        let ndjson = format!("{R1}\n\n  \r\n{R1}\r\n{R1}");
        for form in [Form::Lines, Form::JsonBatch] {
            let b = parse(ndjson.as_bytes(), form, None).expect("lines");
            assert_eq!((b.count, lines(&b)), (3, vec![R1, R1, R1]));
        }
        let empty = parse(b"[]", Form::JsonBatch, None).expect("empty array");
        assert_eq!(empty, Batch::default());
        assert_eq!(
            parse(b"\n\n", Form::Lines, None).expect("blank lines"),
            Batch::default()
        );
    }

    #[test]
    fn individually_invalid_readings_are_forwarded_verbatim() {
        let bad = [
            r#"{"device_id":"d-1","metric":"temp","value":1.0}"#,
            r#"{"device_id":"d-1","ts":1,"metric":"temp","value":1e999,"unit":"C"}"#,
            r#"{"device_id":"d-1","ts":1,"metric":"temp","value":"NaN"}"#,
            r#"{"device_id":7,"ts":1,"metric":"temp","value":1}"#,
            r#"{"ts":1,"metric":"wind","value":1}"#,
            r#"{}"#,
        ];
        let body = bad.join("\n");
        let b = parse(body.as_bytes(), Form::Lines, Some("d-1")).expect("forwarded");
        assert_eq!(lines(&b), bad.to_vec());
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_refused() {
        let m = malformed(parse(b"{\"device_id\":\"d-1\",\"ts\":17", Form::One, None));
        assert!(m.contains("not one JSON object"), "{m}");
        let m = malformed(parse(b"[1, 2]", Form::JsonBatch, None));
        assert!(
            m.contains("array element 1: a reading must be a JSON object"),
            "{m}"
        );
        let m = malformed(parse(b"[{}, {}", Form::JsonBatch, None));
        assert!(m.contains("not a JSON array"), "{m}");
        let body = format!("{R1}\n{{\"value\":NaN}}\n");
        let m = malformed(parse(body.as_bytes(), Form::Lines, None));
        assert!(m.starts_with("line 2:"), "{m}");
        let m = malformed(parse(b"{} {}", Form::One, None));
        assert!(m.contains("not one JSON object"), "{m}");
        let m = malformed(parse(b"\xff", Form::One, None));
        assert!(m.contains("UTF-8"), "{m}");
        let m = malformed(parse(b"\"text\"", Form::One, None));
        assert!(m.contains("must be a JSON object"), "{m}");
    }

    #[test]
    fn another_devices_reading_is_found_however_it_is_spelled() {
        let cases = [
            (r#"{"device_id":"d-2"}"#, "d-2"),
            (r#"{"device\u005fid":"d-2"}"#, "d-2"),
            (r#"{"device_id":"d\u002d2"}"#, "d-2"),
            (r#"{"device_id":"d-1","device_id":"d-3"}"#, "d-3"),
        ];
        for (reading, found) in cases {
            let body = format!("{R1}\n{reading}");
            assert_eq!(
                parse(body.as_bytes(), Form::Lines, Some("d-1")),
                Err(BodyError::WrongDevice {
                    reading: 2,
                    found: found.to_owned()
                }),
                "{reading}"
            );
        }
        // Escaped spellings of the right device pass.
        let ok =
            r#"{"device_id":"d\u002d1","nested":{"device_id":"x"},"list":[{"device_id":"y"}]}"#;
        let b = parse(ok.as_bytes(), Form::One, Some("d-1")).expect("own device");
        assert_eq!(b.count, 1);
    }
}
