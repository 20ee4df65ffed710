//! Small byte-level helpers shared by the request decoder, the reply scanner and the frame parser.

/// Parses a decimal `i64` exactly like Redis's `string2ll`: an optional `-`, then `0` alone or a digit 1-9
/// followed by digits. No `+`, no leading zeros, no spaces, no `-0`, at most 20 bytes, no overflow.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE in Redis is 21: "slen >= LONG_STR_SIZE" is rejected.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v = u64::from(first - b'0');
    for &c in rest {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if v == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(v).ok().map(|v| -v)
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Outcome of looking for a line terminator.
pub(crate) enum Line {
    /// The terminator starts at this offset.
    Found(usize),
    /// Not there yet; resume the search from this offset next time.
    Resume(usize),
}

/// Finds the first `"\r\n"` in `buf[from..]` (a lone `\r` is content). Returns the offset of the `\r`, or where
/// to resume searching once more bytes arrived (so nothing is scanned twice, except one trailing `\r`).
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Line {
    let mut i = from;
    while let Some(rest) = buf.get(i..) {
        match memchr::memchr(b'\r', rest) {
            None => return Line::Resume(buf.len()),
            Some(off) => {
                let r = i + off;
                match buf.get(r + 1) {
                    Some(b'\n') => return Line::Found(r),
                    Some(_) => i = r + 1,
                    None => return Line::Resume(r),
                }
            }
        }
    }
    Line::Resume(buf.len().max(from))
}

/// Appends the decimal text of `n`.
pub(crate) fn push_usize(out: &mut bytes::BytesMut, n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends the decimal text of `n`.
pub(crate) fn push_i64(out: &mut bytes::BytesMut, n: i64) {
    if n < 0 {
        out.extend_from_slice(b"-");
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Number of decimal digits of `n`.
pub(crate) fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_rules() {
        let ok: &[(&[u8], i64)] = &[
            (b"0", 0),
            (b"1", 1),
            (b"-1", -1),
            (b"1234567890", 1234567890),
            (b"9223372036854775807", i64::MAX),
            (b"-9223372036854775808", i64::MIN),
        ];
        for (s, v) in ok {
            assert_eq!(parse_i64(s), Some(*v), "{:?}", s.escape_ascii().to_string());
        }
        let bad: &[&[u8]] = &[
            b"",
            b"-",
            b"+1",
            b"01",
            b"-0",
            b"00",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"123456789012345678901",
            b"\x00",
            b"0x10",
        ];
        for s in bad {
            assert_eq!(parse_i64(s), None, "{:?}", s.escape_ascii().to_string());
        }
    }

    #[test]
    fn crlf_search_resumes() {
        assert!(matches!(find_crlf(b"abc", 0), Line::Resume(3)));
        assert!(matches!(find_crlf(b"abc\r", 0), Line::Resume(3)));
        assert!(matches!(find_crlf(b"a\rb\r\n", 0), Line::Found(3)));
        assert!(matches!(find_crlf(b"a\r\n", 5), Line::Resume(5)));
        assert!(matches!(find_crlf(b"\r\n", 0), Line::Found(0)));
    }

    #[test]
    fn number_text() {
        for n in [0usize, 9, 10, 99, 100, usize::MAX] {
            let mut b = bytes::BytesMut::new();
            push_usize(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
            assert_eq!(digits(n), n.to_string().len());
        }
        for n in [0i64, -1, 42, i64::MIN, i64::MAX] {
            let mut b = bytes::BytesMut::new();
            push_i64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }
}
