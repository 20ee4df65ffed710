//! Protocol errors, with the texts Redis uses.

use bytes::BytesMut;

/// A protocol violation. The connection it came from cannot be resynchronised and must be closed
/// (after replying [`ProtocolError::write_reply`] to a client, as Redis does).
///
/// `Display` gives the message without the `-ERR ` prefix. The request-side texts are the ones of Redis 7
/// `networking.c` (`processInlineBuffer`, `processMultibulkBuffer`); the reply-side texts follow the
/// hiredis reader (`read.c`) with the same `Protocol error: ` prefix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<n>` that is not a number, or larger than [`Limits::max_multibulk_len`](crate::Limits).
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$<len>` that is not a number, negative, or larger than [`Limits::max_bulk_len`](crate::Limits).
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk argument that does not start with `$`. Holds the byte found (Redis prints it with `%c`;
    /// `\r` and `\n` are shown as a space, as Redis's `addReplyErrorFormat` does).
    #[error("Protocol error: expected '$', got '{}'", printable(*.0))]
    ExpectedBulk(u8),
    /// The `*<n>` line is longer than [`Limits::max_inline_len`](crate::Limits) without a `\r`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$<len>` line is longer than [`Limits::max_inline_len`](crate::Limits) without a `\r`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline request line is longer than [`Limits::max_inline_len`](crate::Limits).
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// An inline request with an unterminated quote, or a closing quote not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// The bytes after a bulk's payload are not `\r\n`. (Redis skips these two bytes unchecked; we refuse.)
    #[error("Protocol error: expected CRLF after bulk data")]
    BulkNotTerminated,

    // ---- replies (RESP2 + RESP3) ----
    /// A reply starts with a byte that is not a RESP2/RESP3 type.
    #[error("Protocol error: invalid reply type byte '{}'", (*.0).escape_ascii())]
    InvalidReplyType(u8),
    /// A reply line (`+`, `-`, `(`, or a header line) is longer than the limit without `\r\n`.
    #[error("Protocol error: too big reply line")]
    TooBigLine,
    /// A reply line that should be complete lacks its `\r\n`.
    #[error("Protocol error: expected CRLF")]
    ExpectedCrlf,
    /// `:<n>` that is not a 64-bit integer.
    #[error("Protocol error: bad integer value")]
    BadInteger,
    /// `,<x>` that is not a double.
    #[error("Protocol error: bad double value")]
    BadDouble,
    /// `#` not followed by `t` or `f`.
    #[error("Protocol error: bad bool value")]
    BadBool,
    /// `_` followed by anything.
    #[error("Protocol error: bad nil value")]
    BadNull,
    /// `(` not followed by a decimal integer.
    #[error("Protocol error: bad big number value")]
    BadBigNumber,
    /// `=<len>` shorter than the 4 bytes of `fmt:`, or whose 4th byte is not `:`.
    #[error("Protocol error: bad verbatim string")]
    BadVerbatim,
    /// An aggregate count that is not a number, below -1, or above the limit.
    #[error("Protocol error: multi-bulk length out of range")]
    AggregateLength,
    /// Aggregates nested deeper than [`Limits::max_depth`](crate::Limits).
    #[error("Protocol error: nesting deeper than {0}")]
    TooDeep(usize),
}

fn printable(b: u8) -> char {
    match b {
        b'\r' | b'\n' => ' ',
        _ => char::from(b),
    }
}

impl ProtocolError {
    /// The full error reply line Redis sends for this error, e.g. `-ERR Protocol error: invalid bulk length\r\n`.
    pub fn write_reply(&self, out: &mut BytesMut) {
        crate::write::write_error(out, &format!("ERR {self}"));
    }

    /// True for errors that come from client request framing (as opposed to reply parsing).
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            ProtocolError::InvalidMultibulkLength
                | ProtocolError::InvalidBulkLength
                | ProtocolError::ExpectedBulk(_)
                | ProtocolError::TooBigMultibulkCount
                | ProtocolError::TooBigBulkCount
                | ProtocolError::TooBigInline
                | ProtocolError::UnbalancedQuotes
                | ProtocolError::BulkNotTerminated
        )
    }
}
