//! MQTT payloads as lines of a chunk.

/// Appends `payload` to `buf` as one line; returns whether it was empty.
///
/// The pipeline splits chunks at `\n`, so every `\n` and `\r` inside the
/// payload becomes a space (valid for JSON, whose strings cannot hold raw
/// newlines). An empty or whitespace-only payload would vanish as a blank
/// line: it becomes a single 0x00 byte instead, which the decoder rejects
/// (`invalid_json`) into the dead-letter output, so it is counted, not lost.
pub(crate) fn push_line(buf: &mut Vec<u8>, payload: &[u8]) -> bool {
    let blank = payload
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if blank {
        buf.extend_from_slice(b"\0\n");
        return true;
    }
    buf.reserve(payload.len() + 1);
    let mut rest = payload;
    while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        buf.extend_from_slice(&rest[..i]);
        buf.push(b' ');
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
    buf.push(b'\n');
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_payload_one_line() {
        let mut buf = Vec::new();
        assert!(!push_line(&mut buf, br#"{"a":1}"#));
        assert!(!push_line(&mut buf, b"{\"a\":\r\n2}\n"));
        assert_eq!(buf, b"{\"a\":1}\n{\"a\":  2} \n");
    }

    #[test]
    fn empty_and_blank_payloads_become_a_nul_line() {
        let mut buf = Vec::new();
        assert!(push_line(&mut buf, b""));
        assert!(push_line(&mut buf, b" \r\n\t"));
        assert!(!push_line(&mut buf, b"x"));
        assert_eq!(buf, b"\0\n\0\nx\n");
        assert_eq!(
            buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(),
            3
        );
    }
}
