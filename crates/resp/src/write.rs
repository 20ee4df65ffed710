//! Direct reply writers, for replies the proxy produces itself without building a [`Frame`](crate::Frame).

use bytes::BytesMut;

use crate::util::{push_i64, push_usize};

/// Appends `line` with every `\r` and `\n` replaced by a space, so it cannot break the framing
/// (Redis does the same in `addReplyErrorLength`/`addReplyStatusLength` callers).
pub(crate) fn push_line_sanitized(out: &mut BytesMut, line: &[u8]) {
    if memchr::memchr2(b'\r', b'\n', line).is_none() {
        out.extend_from_slice(line);
    } else {
        out.extend(line.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    }
}

/// Appends an error reply `-<msg>\r\n`. `msg` carries its own code, e.g. `"ERR unknown command"` or
/// `"MOVED 3999 127.0.0.1:6381"`; `\r`/`\n` in it become spaces.
pub fn write_error(out: &mut BytesMut, msg: &str) {
    out.reserve(msg.len() + 3);
    out.extend_from_slice(b"-");
    push_line_sanitized(out, msg.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a simple string reply `+<s>\r\n` (`\r`/`\n` in it become spaces).
pub fn write_simple(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 3);
    out.extend_from_slice(b"+");
    push_line_sanitized(out, s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `+OK\r\n`.
pub fn write_ok(out: &mut BytesMut) {
    out.extend_from_slice(b"+OK\r\n");
}

/// Appends an integer reply `:<n>\r\n`.
pub fn write_integer(out: &mut BytesMut, n: i64) {
    out.extend_from_slice(b":");
    push_i64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string reply `$<len>\r\n<data>\r\n`.
pub fn write_bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    out.extend_from_slice(b"$");
    push_usize(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends a null reply: `_\r\n` for RESP3, `$-1\r\n` for RESP2.
pub fn write_null(out: &mut BytesMut, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// Appends an aggregate header `<kind><n>\r\n`, e.g. `write_header(out, b'*', 3)` for a 3-element array.
pub fn write_header(out: &mut BytesMut, kind: u8, n: usize) {
    out.extend_from_slice(&[kind]);
    push_usize(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends an array header `*<n>\r\n`.
pub fn write_array_header(out: &mut BytesMut, n: usize) {
    write_header(out, b'*', n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers() {
        let mut b = BytesMut::new();
        write_error(&mut b, "ERR bad\r\nthing");
        write_simple(&mut b, "PONG");
        write_ok(&mut b);
        write_integer(&mut b, -42);
        write_bulk(&mut b, b"hi");
        write_null(&mut b, false);
        write_null(&mut b, true);
        write_array_header(&mut b, 2);
        assert_eq!(&b[..], &b"-ERR bad  thing\r\n+PONG\r\n+OK\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n_\r\n*2\r\n"[..]);
    }
}
