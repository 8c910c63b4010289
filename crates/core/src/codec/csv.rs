//! CSV decoding: `device_id,ts,metric,value[,unit]` per line.

use iotflow_types::{DeviceId, Field, Metric, Reading, RejectReason, SmallStr, Tags};

/// Decodes CSV lines with the columns `device_id,ts,metric,value[,unit]`.
///
/// A first line starting with `device_id` is a header and is skipped.
/// Fields may be double-quoted (RFC 4180, `""` for a quote); a record must
/// fit on one line.
#[derive(Debug, Default, Clone)]
pub struct CsvDecoder {
    fields: Vec<String>,
}

impl CsvDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        CsvDecoder::default()
    }
}

/// Splits one CSV line into `out`; `false` if quotes are unbalanced.
fn split(line: &str, out: &mut Vec<String>) -> bool {
    out.clear();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    out.push(cur);
    !quoted
}

impl super::Decoder for CsvDecoder {
    fn decode(&mut self, record: &[u8]) -> Result<Reading, RejectReason> {
        let text = std::str::from_utf8(record).map_err(|_| RejectReason::InvalidUtf8)?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if !split(text, &mut self.fields) || !(4..=5).contains(&self.fields.len()) {
            return Err(RejectReason::BadCsv);
        }
        let f = &self.fields;
        let need = |i: usize, field: Field| {
            if f[i].is_empty() {
                Err(RejectReason::MissingField(field))
            } else {
                Ok(f[i].as_str())
            }
        };
        let device = need(0, Field::DeviceId)?;
        let ts_text = need(1, Field::Ts)?;
        let metric = need(2, Field::Metric)?;
        let value_text = need(3, Field::Value)?;
        let ts = if let Some(rest) = ts_text.strip_prefix('-') {
            return Err(if rest.bytes().all(|c| c.is_ascii_digit()) {
                RejectReason::BadTimestamp
            } else {
                RejectReason::WrongType(Field::Ts)
            });
        } else if ts_text.bytes().all(|c| c.is_ascii_digit()) {
            match ts_text.parse::<u64>() {
                Ok(v) if v < (1 << 62) => v,
                _ => return Err(RejectReason::BadTimestamp),
            }
        } else {
            return Err(RejectReason::WrongType(Field::Ts));
        };
        let value = super::parse_value(value_text.trim())?;
        let unit = f
            .get(4)
            .filter(|u| !u.is_empty())
            .map(|u| SmallStr::from(u.as_str()));
        Ok(Reading {
            device: DeviceId::new(device),
            ts,
            metric: Metric::new(metric),
            value,
            unit,
            tags: Tags::new(),
        })
    }

    fn is_header(&mut self, record: &[u8]) -> bool {
        record.starts_with(b"device_id,") || record.starts_with(b"\"device_id\",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decoder;

    #[test]
    fn rows() {
        let mut d = CsvDecoder::new();
        assert!(d.is_header(b"device_id,ts,metric,value,unit"));
        let r = d.decode(b"d-1,17,temp,21.5,C").expect("valid");
        assert_eq!(
            (r.device.as_str(), r.ts, r.metric.as_str(), r.value),
            ("d-1", 17, "temp", 21.5)
        );
        let r = d.decode(b"\"d,\"\"2\",17,temp,1e2").expect("valid");
        assert_eq!(r.device.as_str(), "d,\"2");
        assert_eq!(d.decode(b"d-1,17,temp").err(), Some(RejectReason::BadCsv));
        assert_eq!(
            d.decode(b"d-1,17,temp,NaN").err(),
            Some(RejectReason::NanString)
        );
        assert_eq!(
            d.decode(b"d-1,17,temp,1e999").err(),
            Some(RejectReason::NonFinite)
        );
        assert_eq!(
            d.decode(b"d-1,x,temp,1").err(),
            Some(RejectReason::WrongType(Field::Ts))
        );
        assert_eq!(
            d.decode(b"d-1,17,temp,abc").err(),
            Some(RejectReason::WrongType(Field::Value))
        );
        assert_eq!(
            d.decode(b",17,temp,1").err(),
            Some(RejectReason::MissingField(Field::DeviceId))
        );
        assert_eq!(
            d.decode(b"\"d-1,17,temp,1").err(),
            Some(RejectReason::BadCsv)
        );
    }
}
