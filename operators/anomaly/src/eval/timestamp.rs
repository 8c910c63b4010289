//! Timestamps of outside CSV files, to ms since the Unix epoch.

/// Parses a timestamp in one of the accepted forms (see
/// [`read_series`](super::read_series)); `None` if it is none of them.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !s[1..].contains('-') {
        // An integer: epoch seconds, or ms from 1e11 on (1e11 s would be
        // the year 5138; 1e11 ms is March 1973).
        let n: i64 = s.parse().ok()?;
        return if n.unsigned_abs() >= 100_000_000_000 {
            Some(n)
        } else {
            n.checked_mul(1000)
        };
    }
    if let Ok(x) = s.parse::<f64>() {
        // Fractional epoch seconds.
        if !x.is_finite() || x.abs() >= 1e11 {
            return None;
        }
        return Some((x * 1000.0).round() as i64);
    }
    parse_datetime(s)
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|±HH[:MM]]`, UTC when no offset.
fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let mut i = 10;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b' ' && b[i] != b't' {
            return None;
        }
        let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || h > 23 || m > 59 {
            return None;
        }
        ms += (h * 3600 + m * 60) * 1000;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 60 {
                return None;
            }
            ms += sec * 1000;
            i += 3;
            if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                // Milliseconds, rounded down.
                let digits = &s[start..i.min(start + 3)];
                let frac: i64 = digits.parse().ok()?;
                ms += frac * 10i64.pow(3 - digits.len() as u32);
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                let om = match b.len() - (i + 3) {
                    0 => 0,
                    3 if b[i + 3] == b':' => num(i + 4, 2)?,
                    2 => num(i + 3, 2)?,
                    _ => return None,
                };
                let off = (oh * 60 + om) * 60_000;
                ms += if sign == b'+' { -off } else { off };
            }
            _ => return None,
        }
    }
    Some(ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms_agree() {
        let ms = 1_700_000_000_000;
        assert_eq!(parse_timestamp("1700000000"), Some(ms));
        assert_eq!(parse_timestamp("1700000000000"), Some(ms));
        assert_eq!(parse_timestamp("1700000000.25"), Some(ms + 250));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z"), Some(ms));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20.5Z"), Some(ms + 500));
        assert_eq!(parse_timestamp("2023-11-14T23:13:20+01:00"), Some(ms));
        assert_eq!(parse_timestamp("2023-11-14T21:13:20-0100"), Some(ms));
        assert_eq!(parse_timestamp("2023-11-14 22:13:20"), Some(ms));
        assert_eq!(parse_timestamp("2023-11-14 22:13"), Some(ms - 20_000));
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(
            parse_timestamp("2000-02-29 00:00:00"),
            Some(951_782_400_000)
        );
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for s in [
            "",
            "x",
            "2023-13-01",
            "2023-02-30",
            "2023-11-14X22:13:20",
            "2023-11-14T25:00",
            "2023-11-14T22:13:20Q",
            "2023-11-14T22:13:20.",
            "1e400",
            "nan",
            "-",
            "2023-11-14T22:13:20+1",
            "٣",
            "2023-1-14",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s:?}");
        }
    }
}
