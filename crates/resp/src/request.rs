//! [`Request`]: one client command, as the client sent it.

use std::fmt;
use std::ops::Deref;

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use crate::util::{digits, push_usize};

/// Where one argument lies in [`Request::raw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ArgSpan {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Argument spans; up to 8 arguments live inline (no heap allocation for typical commands).
pub(crate) type ArgSpans = SmallVec<[ArgSpan; 8]>;

/// One client command.
///
/// For a multibulk request, [`raw`](Request::raw) is exactly the bytes the client sent, so the proxy can forward
/// them untouched; for an inline request it is the multibulk re-encoding of the split arguments. Arguments are
/// zero-copy views into `raw`.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    raw: Bytes,
    args: ArgSpans,
    inline: bool,
}

impl Request {
    pub(crate) fn from_parts(raw: Bytes, args: ArgSpans, inline: bool) -> Request {
        Request { raw, args, inline }
    }

    pub(crate) fn with_inline(mut self, inline: bool) -> Request {
        self.inline = inline;
        self
    }

    /// Number of arguments (the command name included).
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// True if there are no arguments (never the case for a request from [`RequestDecoder`](crate::RequestDecoder)).
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i` (0 is the command name), borrowed from [`raw`](Request::raw).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        let span = self.args.get(i)?;
        self.raw.get(span.start..span.end)
    }

    /// Argument `i` as a cheap [`Bytes`] slice of [`raw`](Request::raw) (no copy).
    pub fn arg_bytes(&self, i: usize) -> Option<Bytes> {
        let span = self.args.get(i)?;
        if span.start <= span.end && span.end <= self.raw.len() {
            Some(self.raw.slice(span.start..span.end))
        } else {
            None
        }
    }

    /// All arguments, in order.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.args.iter().map(|s| self.raw.get(s.start..s.end).unwrap_or_default())
    }

    /// The command name as sent (argument 0), or empty.
    pub fn name(&self) -> &[u8] {
        self.arg(0).unwrap_or_default()
    }

    /// The command name, ASCII-uppercased, for command-table lookups. Names up to 32 bytes stay on the stack.
    pub fn name_upper(&self) -> UpperName {
        UpperName::new(self.name())
    }

    /// True if argument `i` equals `s` ignoring ASCII case (e.g. `req.arg_eq_ignore_case(1, b"GETNAME")`).
    pub fn arg_eq_ignore_case(&self, i: usize, s: &[u8]) -> bool {
        self.arg(i).is_some_and(|a| a.eq_ignore_ascii_case(s))
    }

    /// True if the client sent this command inline (plain text line) rather than as a multibulk.
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// The multibulk bytes of the request: what the client sent, or for inline requests the re-encoding.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Takes the raw bytes out.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// Builds a multibulk request from arguments (for commands the proxy sends itself, e.g. a split `MGET`).
    pub fn from_args<I: IntoIterator<Item = impl AsRef<[u8]>>>(args: I) -> Request {
        let mut raw = BytesMut::new();
        let mut spans = ArgSpans::new();
        // Collect first so the buffer can be sized exactly (one allocation).
        let items: SmallVec<[I::Item; 8]> = args.into_iter().collect();
        let mut size = 1 + digits(items.len()) + 2;
        for a in &items {
            let n = a.as_ref().len();
            size += 1 + digits(n) + 2 + n + 2;
        }
        raw.reserve(size);
        raw.extend_from_slice(b"*");
        push_usize(&mut raw, items.len());
        raw.extend_from_slice(b"\r\n");
        for a in &items {
            let a = a.as_ref();
            raw.extend_from_slice(b"$");
            push_usize(&mut raw, a.len());
            raw.extend_from_slice(b"\r\n");
            let start = raw.len();
            raw.extend_from_slice(a);
            spans.push(ArgSpan { start, end: raw.len() });
            raw.extend_from_slice(b"\r\n");
        }
        Request { raw: raw.freeze(), args: spans, inline: false }
    }

    /// Appends [`raw`](Request::raw) to `out`.
    pub fn encode_to(&self, out: &mut BytesMut) {
        out.extend_from_slice(&self.raw);
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for a in self.args() {
            list.entry(&format_args!("\"{}\"", a.escape_ascii()));
        }
        list.finish()?;
        if self.inline {
            f.write_str(" (inline)")?;
        }
        Ok(())
    }
}

/// An ASCII-uppercased command name. Dereferences to `[u8]`; names of up to 32 bytes need no allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpperName(SmallVec<[u8; 32]>);

impl UpperName {
    /// Uppercases `name` (ASCII only; other bytes unchanged).
    pub fn new(name: &[u8]) -> UpperName {
        let mut v: SmallVec<[u8; 32]> = SmallVec::from_slice(name);
        v.make_ascii_uppercase();
        UpperName(v)
    }

    /// The uppercased bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as `&str`, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl Deref for UpperName {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for UpperName {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<[u8]> for UpperName {
    fn eq(&self, other: &[u8]) -> bool {
        self.0.as_slice() == other
    }
}

impl PartialEq<&[u8]> for UpperName {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for UpperName {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.0.as_slice() == other.as_slice()
    }
}

impl PartialEq<str> for UpperName {
    fn eq(&self, other: &str) -> bool {
        self.0.as_slice() == other.as_bytes()
    }
}

impl PartialEq<&str> for UpperName {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_slice() == other.as_bytes()
    }
}

impl fmt::Debug for UpperName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_args_encodes_multibulk() {
        let r = Request::from_args(["SET", "key", "value"]);
        assert_eq!(&r.raw()[..], b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
        assert_eq!(r.len(), 3);
        assert!(!r.is_empty());
        assert_eq!(r.name(), b"SET");
        assert_eq!(r.arg(1), Some(&b"key"[..]));
        assert_eq!(r.arg_bytes(2).as_deref(), Some(&b"value"[..]));
        assert_eq!(r.arg(3), None);
        assert_eq!(r.arg_bytes(3), None);
        assert!(!r.is_inline());
        let mut out = BytesMut::from(&b"x"[..]);
        r.encode_to(&mut out);
        assert_eq!(&out[1..], &r.raw()[..]);
        assert_eq!(format!("{r:?}"), r#"["SET", "key", "value"]"#);
    }

    #[test]
    fn empty_and_binary_args() {
        let r = Request::from_args(Vec::<Vec<u8>>::new());
        assert_eq!(&r.raw()[..], b"*0\r\n");
        assert!(r.is_empty());
        assert_eq!(r.name(), b"");
        let r = Request::from_args([&b""[..], b"\r\n\x00"]);
        assert_eq!(&r.raw()[..], b"*2\r\n$0\r\n\r\n$3\r\n\r\n\x00\r\n");
        assert_eq!(r.arg(0), Some(&b""[..]));
        assert_eq!(r.arg(1), Some(&b"\r\n\x00"[..]));
    }

    #[test]
    fn name_upper() {
        let r = Request::from_args(["mGet", "a"]);
        let n = r.name_upper();
        assert_eq!(n, "MGET");
        assert_eq!(n, b"MGET");
        assert_eq!(n.as_str(), Some("MGET"));
        assert_eq!(&*n, b"MGET");
        assert!(r.arg_eq_ignore_case(0, b"mget"));
        let long = "x".repeat(100);
        assert_eq!(Request::from_args([&long]).name_upper().as_bytes(), "X".repeat(100).as_bytes());
        assert_eq!(UpperName::new(b"caf\xc3\xa9").as_bytes(), b"CAF\xc3\xa9");
    }
}
