//! [`RequestDecoder`]: resumable framing of client requests (multibulk and inline).

use bytes::{Buf, BytesMut};

use crate::error::ProtocolError;
use crate::inline::split_args;
use crate::limits::Limits;
use crate::request::{ArgSpan, ArgSpans, Request};
use crate::util::parse_i64;

/// What the decoder is in the middle of. Offsets are from the front of the caller's buffer, where the pending
/// request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Between requests.
    Idle,
    /// Looking for the `\n` ending an inline line; `scanned` bytes are known to contain none.
    Inline,
    /// Looking for the `\r` ending the `*<n>` line.
    Count,
    /// Looking for the `\r` ending a `$<len>` line that starts at `pos`.
    BulkHeader,
    /// Waiting for `bulk_len + 2` bytes at `pos`.
    BulkData,
}

/// Resumable request decoder.
///
/// It keeps its position between calls, so a 512 MiB bulk or a million-argument command arriving in small pieces
/// is scanned once: every call does work proportional to the newly arrived bytes (plus at most one header line).
///
/// Contract: between calls the caller only *appends* to the buffer; the decoder removes bytes from its front
/// itself. Use [`reset`](RequestDecoder::reset) if the buffer is replaced.
///
/// Rules (those of Redis 7 `networking.c`):
/// * A request whose first byte is `*` is a multibulk: `*<n>\r\n` then `n` times `$<len>\r\n<len bytes>\r\n`.
///   `n <= 0` (`*0`, `*-1`, ...) is no command and is skipped. Numbers follow Redis's `string2ll`
///   (no `+`, no leading zeros, no overflow).
/// * Anything else is an inline line ending at `\n` (a `\r` before it is dropped), split like `sdssplitargs`;
///   an empty line is skipped.
///
/// Deliberate differences from Redis, all stricter or chunking-independent:
/// * the two bytes after a bulk payload must be `\r\n` (Redis skips them unchecked);
/// * a `*`/`$` header line must end in `\r\n` (Redis accepts `\r` plus any byte);
/// * the line limits apply to the line's length however the bytes arrive (Redis checks the buffered amount
///   while no terminator has been seen), so the outcome never depends on chunking;
/// * an inline line's `\n` is found past NUL bytes (Redis's `strchr` stops at a NUL); the split still ends at
///   the first NUL, as in Redis;
/// * Redis's "unauthenticated multibulk/bulk length" limits are not applied here: authentication is the
///   proxy's business.
///
/// # Errors
/// A [`ProtocolError`] means the stream cannot be resynchronised: reply the error and close the connection.
/// On error the buffer still starts at the offending request (nothing of it is consumed) and the decoder is
/// reset, so decoding the same bytes again gives the same error.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    phase: Phase,
    /// Next unparsed byte of the pending request.
    pos: usize,
    /// Line search resumes here (bytes before it hold no terminator).
    scanned: usize,
    /// Arguments still to read.
    remaining: usize,
    /// Declared length of the bulk being read.
    bulk_len: usize,
    /// Buffer length seen by the last call (for [`needed`](RequestDecoder::needed)).
    seen: usize,
    args: ArgSpans,
}

enum Step {
    NeedMore,
    /// Drop this many bytes: a request that is no command.
    Skip(usize),
    /// A multibulk request of this many bytes is complete.
    Multibulk(usize),
    /// An inline request; the line takes this many bytes.
    Inline(usize, Request),
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            phase: Phase::Idle,
            pos: 0,
            scanned: 0,
            remaining: 0,
            bulk_len: 0,
            seen: 0,
            args: ArgSpans::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any partially decoded request.
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
        self.pos = 0;
        self.scanned = 0;
        self.remaining = 0;
        self.bulk_len = 0;
        self.args.clear();
    }

    /// True if part of a request has been seen and the rest is awaited.
    pub fn is_pending(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// While the payload of a bulk of known length is pending: how many more bytes are needed to complete it
    /// (payload and its `\r\n`), so the caller can reserve buffer space. `None` otherwise.
    pub fn needed(&self) -> Option<usize> {
        if self.phase != Phase::BulkData {
            return None;
        }
        let end = self.pos.saturating_add(self.bulk_len).saturating_add(2);
        Some(end.saturating_sub(self.seen)).filter(|&n| n > 0)
    }

    /// Tries to take one complete request from the front of `buf`.
    ///
    /// * `Ok(Some(req))`: the request's bytes were split off the front of `buf` (zero copy).
    /// * `Ok(None)`: more bytes are needed; the partial request stays in `buf` and the decoder remembers how far
    ///   it got. Requests that are no command (empty inline lines, `*0`, `*-1`) in front of it have been removed.
    /// * `Err(e)`: protocol error, see the type docs.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            let step = self.step(buf);
            self.seen = buf.len();
            match step {
                Ok(Step::NeedMore) => return Ok(None),
                Ok(Step::Skip(n)) => {
                    buf.advance(n.min(buf.len()));
                    self.reset();
                }
                Ok(Step::Multibulk(n)) => {
                    let raw = buf.split_to(n.min(buf.len())).freeze();
                    let args = std::mem::take(&mut self.args);
                    self.reset();
                    self.seen = buf.len();
                    return Ok(Some(Request::from_parts(raw, args, false)));
                }
                Ok(Step::Inline(n, req)) => {
                    buf.advance(n.min(buf.len()));
                    self.reset();
                    self.seen = buf.len();
                    return Ok(Some(req));
                }
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
            }
        }
    }

    fn step(&mut self, buf: &[u8]) -> Result<Step, ProtocolError> {
        loop {
            match self.phase {
                Phase::Idle => match buf.first() {
                    None => return Ok(Step::NeedMore),
                    Some(b'*') => {
                        self.phase = Phase::Count;
                        self.pos = 0;
                        self.scanned = 1;
                    }
                    Some(_) => {
                        self.phase = Phase::Inline;
                        self.pos = 0;
                        self.scanned = 0;
                    }
                },
                Phase::Inline => return self.inline(buf),
                Phase::Count => {
                    let Some(r) = self.header_line(buf, ProtocolError::TooBigMultibulkCount)? else {
                        return Ok(Step::NeedMore);
                    };
                    if buf.get(r + 1) != Some(&b'\n') {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    let n = buf.get(1..r).and_then(parse_i64).ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if n <= 0 {
                        return Ok(Step::Skip(r + 2));
                    }
                    let n = usize::try_from(n).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
                    if n > self.limits.max_multibulk_len {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    self.remaining = n;
                    self.args.clear();
                    // Never trust the declared count for allocation.
                    self.args.reserve(n.min(1024));
                    self.pos = r + 2;
                    self.scanned = self.pos;
                    self.phase = Phase::BulkHeader;
                }
                Phase::BulkHeader => {
                    let Some(r) = self.header_line(buf, ProtocolError::TooBigBulkCount)? else {
                        return Ok(Step::NeedMore);
                    };
                    let first = buf.get(self.pos).copied().unwrap_or(b'\r');
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedBulk(first));
                    }
                    if buf.get(r + 1) != Some(&b'\n') {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    let len = buf.get(self.pos + 1..r).and_then(parse_i64).ok_or(ProtocolError::InvalidBulkLength)?;
                    let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
                    if len > self.limits.max_bulk_len {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    self.bulk_len = len;
                    self.pos = r + 2;
                    self.phase = Phase::BulkData;
                }
                Phase::BulkData => {
                    let data_end = self.pos.checked_add(self.bulk_len).ok_or(ProtocolError::InvalidBulkLength)?;
                    let end = data_end.checked_add(2).ok_or(ProtocolError::InvalidBulkLength)?;
                    if buf.len() < end {
                        return Ok(Step::NeedMore);
                    }
                    if buf.get(data_end..end) != Some(&b"\r\n"[..]) {
                        return Err(ProtocolError::BulkNotTerminated);
                    }
                    self.args.push(ArgSpan { start: self.pos, end: data_end });
                    self.pos = end;
                    self.remaining -= 1;
                    if self.remaining == 0 {
                        return Ok(Step::Multibulk(end));
                    }
                    self.scanned = end;
                    self.phase = Phase::BulkHeader;
                }
            }
        }
    }

    /// Finds the `\r` of the header line starting at `self.pos`, resuming at `self.scanned`. Like Redis, a line
    /// without `\r` longer than `max_inline_len` is `too_big`. `Ok(Some(r))` also guarantees `buf[r + 1]` exists.
    fn header_line(&mut self, buf: &[u8], too_big: ProtocolError) -> Result<Option<usize>, ProtocolError> {
        let limit_end = self.pos.saturating_add(self.limits.max_inline_len).saturating_add(1);
        let end = buf.len().min(limit_end);
        let from = self.scanned.max(self.pos);
        let found = buf.get(from..end).and_then(|s| memchr::memchr(b'\r', s)).map(|i| from + i);
        match found {
            Some(r) if r + 1 < buf.len() => Ok(Some(r)),
            Some(r) => {
                self.scanned = r;
                Ok(None)
            }
            None if buf.len() >= limit_end => Err(too_big),
            None => {
                self.scanned = end.max(from);
                Ok(None)
            }
        }
    }

    fn inline(&mut self, buf: &[u8]) -> Result<Step, ProtocolError> {
        let limit_end = self.limits.max_inline_len.saturating_add(1);
        let end = buf.len().min(limit_end);
        let from = self.scanned;
        let Some(nl) = buf.get(from..end).and_then(|s| memchr::memchr(b'\n', s)).map(|i| from + i) else {
            if buf.len() >= limit_end {
                return Err(ProtocolError::TooBigInline);
            }
            self.scanned = end.max(from);
            return Ok(Step::NeedMore);
        };
        let mut line = buf.get(..nl).unwrap_or_default();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
        if args.spans.is_empty() {
            return Ok(Step::Skip(nl + 1));
        }
        Ok(Step::Inline(nl + 1, Request::from_args(args.iter()).with_inline(true)))
    }
}
