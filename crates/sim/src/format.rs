//! Byte-level formatting of the hot path: no `String`, no `format!`.

const POW10: [u64; 5] = [1, 10, 100, 1_000, 10_000];

/// Appends `v` with exactly `decimals` (0..=4) digits after the point,
/// rounding half away from zero on `v * 10^decimals` (so not always the
/// correctly rounded decimal `printf` gives, but always the same bytes for
/// the same `v`). A negative `v` gets a `-` even when it rounds to zero, as
/// with `printf`. `v` must be finite with `|v| * 10^decimals < 2^63`.
#[inline]
pub(crate) fn push_fixed(buf: &mut Vec<u8>, v: f64, decimals: u8) {
    let d = usize::from(decimals.min(4));
    let scale = POW10[d];
    debug_assert!(v.is_finite() && v.abs() * (scale as f64) < 9.2e18);
    if v < 0.0 {
        buf.push(b'-');
    }
    // In range by the contract above; `as` saturates otherwise.
    let m = (v.abs() * scale as f64).round() as u64;
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(itoa.format(m / scale).as_bytes());
    if d > 0 {
        buf.push(b'.');
        let frac = m % scale;
        let digits = itoa.format(frac).as_bytes();
        buf.extend(std::iter::repeat_n(b'0', d - digits.len()));
        buf.extend_from_slice(digits);
    }
}

/// `n` in decimal, left-padded with zeros to at least `width` digits
/// (Python's `f"{n:05d}"` for width 5).
pub(crate) fn push_zero_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut itoa = itoa::Buffer::new();
    let digits = itoa.format(n).as_bytes();
    buf.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    buf.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(v: f64, d: u8) -> String {
        let mut b = Vec::new();
        push_fixed(&mut b, v, d);
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn fixed_decimals() {
        assert_eq!(fixed(21.374, 2), "21.37");
        assert_eq!(fixed(21.375_1, 2), "21.38");
        assert_eq!(fixed(0.0, 2), "0.00");
        assert_eq!(fixed(0.0, 4), "0.0000");
        assert_eq!(fixed(0.05, 4), "0.0500");
        assert_eq!(fixed(0.000_04, 4), "0.0000");
        assert_eq!(fixed(0.000_06, 4), "0.0001");
        assert_eq!(fixed(999.999, 2), "1000.00");
        assert_eq!(fixed(1033.6, 2), "1033.60");
        assert_eq!(fixed(1.5, 0), "2");
        assert_eq!(fixed(-1.5, 2), "-1.50");
        assert_eq!(fixed(-0.001, 2), "-0.00");
        assert_eq!(fixed(12.3456, 9), "12.3456");
    }

    #[test]
    fn fixed_roundtrips_through_parse() {
        let mut v = 0.0;
        while v < 1200.0 {
            let s = fixed(v, 2);
            let back: f64 = s.parse().expect("number");
            assert!((back - v).abs() <= 0.005 + 1e-9, "{v} -> {s}");
            v += 0.123_456_7;
        }
    }

    #[test]
    fn zero_padded() {
        let mut b = Vec::new();
        push_zero_padded(&mut b, 42, 5);
        b.push(b' ');
        push_zero_padded(&mut b, 123_456, 5);
        b.push(b' ');
        push_zero_padded(&mut b, 0, 5);
        assert_eq!(b, b"00042 123456 00000");
    }
}
