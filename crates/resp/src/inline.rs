//! Splitting of inline commands, a port of Redis's `sdssplitargs` (`sds.c`).

use smallvec::SmallVec;

/// The arguments of one inline line: their bytes back to back in `data`, and `(start, end)` of each in `spans`.
#[derive(Debug, Default)]
pub(crate) struct InlineArgs {
    pub(crate) data: Vec<u8>,
    pub(crate) spans: SmallVec<[(usize, usize); 8]>,
}

impl InlineArgs {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(s, e)| self.data.get(s..e).unwrap_or_default())
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline request line (without its `\n` / `\r\n`) into arguments like Redis does:
///
/// * spaces, tabs, `\r`, `\n` (and, between arguments, `\v` `\f`) separate arguments;
/// * `"double quotes"` understand `\n \r \t \b \a \\ \"`, `\xHH`, and `\<other>` as `<other>`;
/// * `'single quotes'` understand only `\'`;
/// * a quote may start in the middle of an argument (`a"b c"` is `ab c`), but a closing quote must be
///   followed by a space or the end of the line;
/// * like the C original, the line ends at the first NUL byte (what follows it is ignored).
///
/// Returns `None` for unbalanced quotes.
pub(crate) fn split_args(line: &[u8]) -> Option<InlineArgs> {
    let line = match memchr::memchr(0, line) {
        Some(n) => line.get(..n).unwrap_or_default(),
        None => line,
    };
    // `*p` of the C code: NUL past the end.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut out = InlineArgs { data: Vec::with_capacity(line.len()), spans: SmallVec::new() };
    let mut p = 0usize;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(out);
        }
        let start = out.data.len();
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if in_double {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        out.data.push(hi * 16 + lo);
                        p += 3;
                    } else {
                        // `\x` without two hex digits: the generic escape, i.e. a literal `x`.
                        p += 1;
                        out.data.push(b'x');
                    }
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    out.data.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    out.data.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    out.data.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    out.data.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => out.data.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        out.spans.push((start, out.data.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &[u8]) -> Option<Vec<Vec<u8>>> {
        split_args(s).map(|a| a.iter().map(<[u8]>::to_vec).collect())
    }

    fn v(items: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
        Some(items.iter().map(|s| s.to_vec()).collect())
    }

    #[test]
    fn sdssplitargs_table() {
        type Split = Option<Vec<Vec<u8>>>;
        let cases: &[(&[u8], Split)] = &[
            (b"", v(&[])),
            (b"   \t  ", v(&[])),
            (b"PING", v(&[b"PING"])),
            (b"  SET  k   v ", v(&[b"SET", b"k", b"v"])),
            (b"SET\tk\rv", v(&[b"SET", b"k", b"v"])),
            (b"a\x0bb", v(&[b"a\x0bb"])),
            (b"\x0b a", v(&[b"a"])),
            (br#"SET "a b" c"#, v(&[b"SET", b"a b", b"c"])),
            (br#""""#, v(&[b""])),
            (b"''", v(&[b""])),
            (br#""\n\r\t\b\a\\\"\q""#, v(&[b"\n\r\t\x08\x07\\\"q"])),
            (br#""\x41\x7a\xFF\x00""#, v(&[b"Az\xff\x00"])),
            (br#""\x4""#, v(&[b"x4"])),
            (br#""\xZZ""#, v(&[b"xZZ"])),
            (br"'it\'s' x", v(&[b"it's", b"x"])),
            (br"'a\nb'", v(&[b"a\\nb"])),
            (br#"a"b c"d"#, None),
            (br#"a"b c" d"#, v(&[b"ab c", b"d"])),
            (br#""abc"def"#, None),
            (b"'abc'def", None),
            (br#""abc"#, None),
            (b"'abc", None),
            (br#""abc\"#, None),
            (b"GET a\x00b c", v(&[b"GET", b"a"])),
            (b"\x00GET", v(&[])),
            (b"\"a\x00\"", None),
        ];
        for (input, want) in cases {
            assert_eq!(&split(input), want, "input {:?}", input.escape_ascii().to_string());
        }
    }
}
