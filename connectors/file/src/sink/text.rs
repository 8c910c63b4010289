//! Allocation-free writing of numbers and escaped strings for the text
//! formats (JSON string escaping, RFC 4180 CSV quoting, lossy UTF-8).

use std::io::{self, Write};

use iotflow_types::SmallStr;

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Writes `v` in decimal.
#[inline]
pub(crate) fn write_u64<W: Write + ?Sized>(out: &mut W, v: u64) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(v).as_bytes())
}

/// Writes `v` in decimal.
#[inline]
pub(crate) fn write_i64<W: Write + ?Sized>(out: &mut W, v: i64) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(v).as_bytes())
}

/// Writes `v` in the shortest form that parses back to the same `f64`
/// (`NaN`, `inf` and `-inf` when not finite).
#[inline]
pub(crate) fn write_f64<W: Write + ?Sized>(out: &mut W, v: f64) -> io::Result<()> {
    out.write_all(ryu::Buffer::new().format(v).as_bytes())
}

/// Writes `v` as a JSON number, or `null` when it is not finite (JSON has no
/// NaN or infinity).
#[inline]
pub(crate) fn write_json_f64<W: Write + ?Sized>(out: &mut W, v: f64) -> io::Result<()> {
    if v.is_finite() {
        out.write_all(ryu::Buffer::new().format_finite(v).as_bytes())
    } else {
        out.write_all(b"null")
    }
}

/// The escape of a byte inside a JSON string, if it needs one.
#[inline]
fn json_escape(b: u8) -> Option<&'static [u8]> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const CONTROL: [[u8; 6]; 32] = {
        let mut t = [[0u8; 6]; 32];
        let mut i = 0;
        while i < 32 {
            t[i] = [b'\\', b'u', b'0', b'0', HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        t
    };
    match b {
        b'"' => Some(b"\\\""),
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'\t' => Some(b"\\t"),
        0..=0x1f => Some(&CONTROL[b as usize]),
        _ => None,
    }
}

/// Writes the body of a JSON string (no quotes) for valid UTF-8 `s`.
fn write_json_body<W: Write + ?Sized>(out: &mut W, s: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if let Some(esc) = json_escape(b) {
            out.write_all(&s[start..i])?;
            out.write_all(esc)?;
            start = i + 1;
        }
    }
    out.write_all(&s[start..])
}

/// Writes `s` as a quoted JSON string.
#[inline]
pub(crate) fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    write_json_body(out, s.as_bytes())?;
    out.write_all(b"\"")
}

/// Writes `bytes` as a quoted JSON string of their lossy UTF-8 decoding
/// (the same text as [`String::from_utf8_lossy`]).
pub(crate) fn write_json_lossy<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    for chunk in bytes.utf8_chunks() {
        write_json_body(out, chunk.valid().as_bytes())?;
        if !chunk.invalid().is_empty() {
            out.write_all(REPLACEMENT)?;
        }
    }
    out.write_all(b"\"")
}

/// Writes `tags` as a JSON object.
pub(crate) fn write_json_tags<W: Write + ?Sized>(
    out: &mut W,
    tags: &[(SmallStr, SmallStr)],
) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_json_str(out, k)?;
        out.write_all(b":")?;
        write_json_str(out, v)?;
    }
    out.write_all(b"}")
}

/// Whether a CSV field must be quoted (RFC 4180: it holds the delimiter, a
/// quote or a line break).
#[inline]
fn csv_needs_quotes(s: &[u8]) -> bool {
    s.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// Writes the inside of a quoted CSV field: quotes doubled.
fn write_csv_quoted_body<W: Write + ?Sized>(out: &mut W, s: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == b'"' {
            // Write up to and including the quote, then the quote again.
            out.write_all(&s[start..=i])?;
            out.write_all(b"\"")?;
            start = i + 1;
        }
    }
    out.write_all(&s[start..])
}

/// Writes `s` as one CSV field, quoted only when needed.
#[inline]
pub(crate) fn write_csv_str<W: Write + ?Sized>(out: &mut W, s: &[u8]) -> io::Result<()> {
    if csv_needs_quotes(s) {
        out.write_all(b"\"")?;
        write_csv_quoted_body(out, s)?;
        out.write_all(b"\"")
    } else {
        out.write_all(s)
    }
}

/// Writes the lossy UTF-8 decoding of `bytes` as one CSV field. The bytes
/// that force quoting are ASCII, so they are never replaced and the raw
/// bytes decide.
pub(crate) fn write_csv_lossy<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    let quoted = csv_needs_quotes(bytes);
    if quoted {
        out.write_all(b"\"")?;
    }
    for chunk in bytes.utf8_chunks() {
        if quoted {
            write_csv_quoted_body(out, chunk.valid().as_bytes())?;
        } else {
            out.write_all(chunk.valid().as_bytes())?;
        }
        if !chunk.invalid().is_empty() {
            out.write_all(REPLACEMENT)?;
        }
    }
    if quoted {
        out.write_all(b"\"")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut v = Vec::new();
        write_json_str(&mut v, s).expect("write to Vec");
        String::from_utf8(v).expect("utf8")
    }

    #[test]
    fn json_escapes_parse_back() {
        for s in [
            "",
            "plain",
            "a\"b\\c",
            "line\nbreak\r\t",
            "\u{0}\u{1f}\u{7f}",
            "é✓😀",
            "\u{2028}",
        ] {
            let back: String = serde_json::from_str(&json(s)).expect("valid JSON");
            assert_eq!(back, s);
        }
        assert_eq!(json("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn json_lossy_matches_std() {
        let raw = b"ok\xff\xfe \xe2\x82 \"q\" \xf0\x9f\x98\x80";
        let mut v = Vec::new();
        write_json_lossy(&mut v, raw).expect("write to Vec");
        let back: String = serde_json::from_slice(&v).expect("valid JSON");
        assert_eq!(back, String::from_utf8_lossy(raw));
    }

    #[test]
    fn json_non_finite_is_null() {
        for (v, want) in [
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (-0.0, "-0.0"),
            (1e300, "1e300"),
        ] {
            let mut out = Vec::new();
            write_json_f64(&mut out, v).expect("write to Vec");
            assert_eq!(out, want.as_bytes());
        }
    }

    #[test]
    fn csv_quoting() {
        let cases: [(&[u8], &str); 5] = [
            (b"plain", "plain"),
            (b"a,b", "\"a,b\""),
            (b"say \"hi\"", "\"say \"\"hi\"\"\""),
            (b"two\nlines", "\"two\nlines\""),
            (b"\xff,\"", "\"\u{FFFD},\"\"\""),
        ];
        for (raw, want) in cases {
            let mut out = Vec::new();
            write_csv_lossy(&mut out, raw).expect("write to Vec");
            assert_eq!(String::from_utf8(out).expect("utf8"), want);
        }
    }
}
