//! Records as lines of a chunk.

/// Appends `payload` to `out` as one line: `\n` and `\r` become spaces, and
/// an empty or whitespace-only payload becomes the single byte `0x00` (the
/// decoder would skip a blank line; `0x00` is rejected as `invalid_json`
/// into the dead-letter output instead). Returns whether the payload was
/// empty.
pub(crate) fn push_line(out: &mut Vec<u8>, payload: &[u8]) -> bool {
    let empty = payload.iter().all(u8::is_ascii_whitespace);
    if empty {
        out.push(0);
    } else {
        out.extend(
            payload
                .iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
    }
    out.push(b'\n');
    empty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_become_spaces_and_blank_payloads_a_nul() {
        let mut out = Vec::new();
        assert!(!push_line(&mut out, b"{\"a\":\n1}\r\n"));
        assert!(push_line(&mut out, b""));
        assert!(push_line(&mut out, b" \t\r\n"));
        assert!(!push_line(&mut out, b"x"));
        assert_eq!(out, b"{\"a\": 1}  \n\0\n\0\nx\n");
    }
}
