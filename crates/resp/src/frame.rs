//! [`Frame`]: a decoded RESP2/RESP3 reply value.

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::limits::Limits;
use crate::scanner::{aggregate_len, bulk_len, ReplyScanner};
use crate::util::{find_crlf, parse_i64, push_i64, push_usize, Line};
use crate::write::push_line_sanitized;

/// A decoded reply value, for the few places the proxy must look inside a reply (merging `MGET`, `INFO`,
/// `SCAN` cursors). Byte payloads are zero-copy slices of the parsed buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR message` (the payload includes the error code).
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc`
    Bulk(Bytes),
    /// RESP2 `$-1` / `*-1`, RESP3 `_`.
    Null,
    /// `*<n>`
    Array(Vec<Frame>),
    /// RESP3 `%<n>`: key/value pairs in wire order (duplicates kept).
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~<n>`
    Set(Vec<Frame>),
    /// RESP3 `,<double>`, kept as its text (`1.5`, `inf`, `-inf`, `nan`, ...).
    Double(Bytes),
    /// RESP3 `#t` / `#f`
    Boolean(bool),
    /// RESP3 `(<digits>`, kept as text.
    BigNumber(Bytes),
    /// RESP3 `=<len>\r\n<fmt>:<text>`
    Verbatim {
        /// The 3-byte format, e.g. `txt` or `mkd`.
        format: [u8; 3],
        /// The text after `fmt:`.
        text: Bytes,
    },
    /// RESP3 `><n>`: out-of-band push data.
    Push(Vec<Frame>),
    /// RESP3 `!<len>\r\n<error>`
    BulkError(Bytes),
    /// RESP3 `|<n>` attribute pairs annotating the value that follows them.
    Attribute {
        /// The attribute key/value pairs.
        attrs: Vec<(Frame, Frame)>,
        /// The annotated value.
        value: Box<Frame>,
    },
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// An error reply; `msg` includes its code, e.g. `Frame::error("ERR unknown command")`.
    pub fn error(msg: &str) -> Frame {
        Frame::Error(Bytes::copy_from_slice(msg.as_bytes()))
    }

    /// A simple string reply.
    pub fn simple(s: &str) -> Frame {
        Frame::Simple(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A bulk string reply.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// Parses one complete reply from the front of `buf` with the default [`Limits`].
    ///
    /// `Ok(Some((frame, n)))`: `buf[..n]` was the reply. `Ok(None)`: incomplete. Byte payloads in the frame are
    /// slices of `buf` (no copy).
    pub fn parse(buf: &Bytes) -> Result<Option<(Frame, usize)>, ProtocolError> {
        Frame::parse_with_limits(buf, &Limits::default())
    }

    /// [`Frame::parse`] with explicit limits. `limits.max_depth` also bounds the parser's recursion.
    pub fn parse_with_limits(buf: &Bytes, limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
        // Validate and find the end first (no allocation), then build.
        let mut scanner = ReplyScanner::new(limits.clone());
        let Some(len) = scanner.scan(buf)? else {
            return Ok(None);
        };
        let reply = buf.slice(..len);
        let mut builder = Builder { buf: &reply, pos: 0, limits };
        let frame = builder.value(0)?;
        Ok(Some((frame, builder.pos)))
    }

    /// Appends the wire form. With `resp3 == false` RESP3-only types are downgraded the way Redis does for
    /// RESP2 clients: `Null` → `$-1`, `Map` → flat array, `Set`/`Push` → array, `Double`/`BigNumber` → bulk
    /// string, `Boolean` → `:1`/`:0`, `Verbatim` → bulk of the text, `BulkError` → `-` line, attributes dropped.
    /// Line payloads (`Simple`, `Error`, `Double`, `BigNumber`) have `\r`/`\n` replaced by spaces.
    pub fn encode(&self, out: &mut BytesMut, resp3: bool) {
        match self {
            Frame::Simple(s) => line(out, b'+', s),
            Frame::Error(e) => line(out, b'-', e),
            Frame::Integer(n) => {
                out.extend_from_slice(b":");
                push_i64(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Bulk(b) => blob(out, b'$', b),
            Frame::Null => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Frame::Array(items) => aggregate(out, b'*', items, resp3),
            Frame::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, resp3),
            Frame::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, resp3),
            Frame::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len().saturating_mul(2));
                }
                pairs_encode(out, pairs, resp3);
            }
            Frame::Double(t) if resp3 => line(out, b',', t),
            Frame::BigNumber(t) if resp3 => line(out, b'(', t),
            Frame::Double(t) | Frame::BigNumber(t) => blob(out, b'$', t),
            Frame::Boolean(b) => out.extend_from_slice(match (resp3, b) {
                (true, true) => b"#t\r\n",
                (true, false) => b"#f\r\n",
                (false, true) => b":1\r\n",
                (false, false) => b":0\r\n",
            }),
            Frame::Verbatim { format, text } => {
                if resp3 {
                    header(out, b'=', text.len().saturating_add(4));
                    out.extend_from_slice(format);
                    out.extend_from_slice(b":");
                    out.extend_from_slice(text);
                    out.extend_from_slice(b"\r\n");
                } else {
                    blob(out, b'$', text);
                }
            }
            Frame::BulkError(e) => {
                if resp3 {
                    blob(out, b'!', e);
                } else {
                    line(out, b'-', e);
                }
            }
            Frame::Attribute { attrs, value } => {
                if resp3 {
                    header(out, b'|', attrs.len());
                    pairs_encode(out, attrs, resp3);
                }
                value.encode(out, resp3);
            }
        }
    }

    /// The wire form as new [`Bytes`].
    pub fn to_bytes(&self, resp3: bool) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out, resp3);
        out.freeze()
    }

    /// True for `Error` and `BulkError` (looking through attributes).
    pub fn is_error(&self) -> bool {
        matches!(self.without_attributes(), Frame::Error(_) | Frame::BulkError(_))
    }

    /// The message of an `Error` / `BulkError`.
    pub fn error_message(&self) -> Option<&[u8]> {
        match self.without_attributes() {
            Frame::Error(e) | Frame::BulkError(e) => Some(e),
            _ => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self.without_attributes(), Frame::Null)
    }

    /// The value, skipping any attributes around it.
    pub fn without_attributes(&self) -> &Frame {
        let mut f = self;
        while let Frame::Attribute { value, .. } = f {
            f = value;
        }
        f
    }

    /// The bytes of a `Bulk`, `Simple` or `Verbatim` (its text).
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self.without_attributes() {
            Frame::Bulk(b) | Frame::Simple(b) | Frame::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }

    /// The value of an `Integer`.
    pub fn as_integer(&self) -> Option<i64> {
        match self.without_attributes() {
            Frame::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// An `Integer`, or a `Bulk`/`Simple` holding a decimal integer (e.g. a `SCAN` cursor).
    pub fn to_integer(&self) -> Option<i64> {
        match self.without_attributes() {
            Frame::Integer(n) => Some(*n),
            Frame::Bulk(b) | Frame::Simple(b) => parse_i64(b),
            _ => None,
        }
    }

    /// The elements of an `Array`, `Set` or `Push`.
    pub fn as_array(&self) -> Option<&[Frame]> {
        match self.without_attributes() {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }

    /// The elements of an `Array`, `Set` or `Push`, by value (attributes dropped).
    pub fn into_array(self) -> Option<Vec<Frame>> {
        match self {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Some(v),
            Frame::Attribute { value, .. } => value.into_array(),
            _ => None,
        }
    }
}

fn header(out: &mut BytesMut, kind: u8, n: usize) {
    out.extend_from_slice(&[kind]);
    push_usize(out, n);
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.extend_from_slice(&[kind]);
    push_line_sanitized(out, text);
    out.extend_from_slice(b"\r\n");
}

fn blob(out: &mut BytesMut, kind: u8, data: &[u8]) {
    out.reserve(data.len() + 16);
    header(out, kind, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, kind: u8, items: &[Frame], resp3: bool) {
    header(out, kind, items.len());
    for item in items {
        item.encode(out, resp3);
    }
}

fn pairs_encode(out: &mut BytesMut, pairs: &[(Frame, Frame)], resp3: bool) {
    for (k, v) in pairs {
        k.encode(out, resp3);
        v.encode(out, resp3);
    }
}

/// Builds a [`Frame`] from one reply that [`ReplyScanner`] already validated as complete.
struct Builder<'a> {
    buf: &'a Bytes,
    pos: usize,
    limits: &'a Limits,
}

impl Builder<'_> {
    /// Reads the type byte and the line after it; returns `(kind, line start, line end)`.
    fn line(&mut self) -> Result<(u8, usize, usize), ProtocolError> {
        let kind = *self.buf.get(self.pos).ok_or(ProtocolError::ExpectedCrlf)?;
        let start = self.pos + 1;
        match find_crlf(self.buf, start) {
            Line::Found(cr) => {
                self.pos = cr + 2;
                Ok((kind, start, cr))
            }
            Line::Resume(_) => Err(ProtocolError::ExpectedCrlf),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Result<Bytes, ProtocolError> {
        if start <= end && end <= self.buf.len() {
            Ok(self.buf.slice(start..end))
        } else {
            Err(ProtocolError::BulkNotTerminated)
        }
    }

    fn capacity(&self, count: usize) -> usize {
        // Every element takes at least 3 bytes: never trust a declared count for allocation.
        count.min(self.buf.len().saturating_sub(self.pos) / 3)
    }

    fn value(&mut self, depth: usize) -> Result<Frame, ProtocolError> {
        let (kind, start, end) = self.line()?;
        let text = self.buf.get(start..end).unwrap_or_default();
        Ok(match kind {
            b'+' => Frame::Simple(self.slice(start, end)?),
            b'-' => Frame::Error(self.slice(start, end)?),
            b':' => Frame::Integer(parse_i64(text).ok_or(ProtocolError::BadInteger)?),
            b'_' => Frame::Null,
            b',' => Frame::Double(self.slice(start, end)?),
            b'(' => Frame::BigNumber(self.slice(start, end)?),
            b'#' => match text {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(ProtocolError::BadBool),
            },
            b'$' | b'!' | b'=' => match bulk_len(text, self.limits)? {
                None => Frame::Null,
                Some(len) => {
                    let data_start = self.pos;
                    let data_end = data_start.checked_add(len).ok_or(ProtocolError::InvalidBulkLength)?;
                    if self.buf.get(data_end..data_end + 2) != Some(&b"\r\n"[..]) {
                        return Err(ProtocolError::BulkNotTerminated);
                    }
                    self.pos = data_end + 2;
                    match kind {
                        b'$' => Frame::Bulk(self.slice(data_start, data_end)?),
                        b'!' => Frame::BulkError(self.slice(data_start, data_end)?),
                        _ => {
                            let data = self.buf.get(data_start..data_end).unwrap_or_default();
                            match data {
                                [a, b, c, b':', ..] => Frame::Verbatim {
                                    format: [*a, *b, *c],
                                    text: self.slice(data_start + 4, data_end)?,
                                },
                                _ => return Err(ProtocolError::BadVerbatim),
                            }
                        }
                    }
                }
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => match aggregate_len(kind, text, self.limits)? {
                None => Frame::Null,
                Some(count) => {
                    let inner = if count > 0 {
                        if depth >= self.limits.max_depth {
                            return Err(ProtocolError::TooDeep(self.limits.max_depth));
                        }
                        depth + 1
                    } else {
                        depth
                    };
                    match kind {
                        b'%' => Frame::Map(self.pairs(count / 2, inner)?),
                        b'|' => {
                            let attrs = self.pairs(count / 2, inner)?;
                            let value = self.value(depth)?;
                            Frame::Attribute { attrs, value: Box::new(value) }
                        }
                        _ => {
                            let mut items = Vec::with_capacity(self.capacity(count));
                            for _ in 0..count {
                                items.push(self.value(inner)?);
                            }
                            match kind {
                                b'*' => Frame::Array(items),
                                b'~' => Frame::Set(items),
                                _ => Frame::Push(items),
                            }
                        }
                    }
                }
            },
            other => return Err(ProtocolError::InvalidReplyType(other)),
        })
    }

    fn pairs(&mut self, n: usize, depth: usize) -> Result<Vec<(Frame, Frame)>, ProtocolError> {
        let mut pairs = Vec::with_capacity(self.capacity(n.saturating_mul(2)) / 2);
        for _ in 0..n {
            let k = self.value(depth)?;
            let v = self.value(depth)?;
            pairs.push((k, v));
        }
        Ok(pairs)
    }
}
