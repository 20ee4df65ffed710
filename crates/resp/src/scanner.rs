//! [`ReplyScanner`]: finds where one complete RESP2/RESP3 reply ends, resumably and without allocating.

use crate::error::ProtocolError;
use crate::limits::Limits;
use crate::util::{find_crlf, parse_i64, Line};

#[derive(Clone, Copy, Debug)]
struct Level {
    /// Elements still to come in this aggregate.
    remaining: usize,
    /// An attribute (`|`): when it completes, the value it annotates still follows at the parent level.
    attribute: bool,
}

#[derive(Clone, Copy, Debug)]
struct PendingBulk {
    /// Where the payload starts.
    start: usize,
    /// Where the payload ends (its `\r\n` follows).
    end: usize,
    verbatim: bool,
}

/// Resumable scanner that finds where one complete reply ends.
///
/// Types: RESP2 `+ - : $ *` and RESP3 `_ , # ! = ( % ~ > |`. An attribute (`|`) precedes the value it annotates
/// and is part of the same reply; a push (`>`) is a reply of its own (check the first byte to tell it apart).
/// Streamed RESP3 strings/aggregates (`$?`, `*?`) are not supported (Redis never sends them): they are
/// protocol errors.
///
/// The scanner keeps only a small stack of open aggregates (at most [`Limits::max_depth`] entries, reused across
/// replies) and where it stopped, so a reply arriving in small pieces is scanned once. Between calls the caller
/// may only append to the buffer; once a reply is found the caller removes it and the scanner starts afresh.
///
/// Validation: integers follow `string2ll` (as Redis emits them), doubles must parse as `f64` (`inf`, `-inf`,
/// `nan` included), booleans are `t`/`f`, nulls `_` are empty, big numbers are `[+-]?[0-9]+`, verbatim strings
/// have a 3-byte format and a `:`, bulks end in `\r\n`. `-1` counts are nulls for `$ ! = * % ~ >` (as hiredis).
#[derive(Debug)]
pub struct ReplyScanner {
    limits: Limits,
    pos: usize,
    scanned: usize,
    bulk: Option<PendingBulk>,
    stack: Vec<Level>,
}

impl Default for ReplyScanner {
    fn default() -> Self {
        ReplyScanner::new(Limits::default())
    }
}

impl ReplyScanner {
    /// A scanner enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        ReplyScanner { limits, pos: 0, scanned: 0, bulk: None, stack: Vec::new() }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets a partially scanned reply.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.scanned = 0;
        self.bulk = None;
        self.stack.clear();
    }

    /// True if part of a reply has been seen and the rest is awaited.
    pub fn is_pending(&self) -> bool {
        self.pos > 0 || self.bulk.is_some() || !self.stack.is_empty()
    }

    /// While a bulk payload is pending: the buffer length it needs (payload and `\r\n`) — `needed_len - buf.len()`
    /// more bytes. `None` otherwise.
    pub fn needed_len(&self) -> Option<usize> {
        self.bulk.map(|b| b.end.saturating_add(2))
    }

    /// Looks for the end of the first reply in `buf`.
    ///
    /// `Ok(Some(n))`: `buf[..n]` is one complete reply; the scanner is reset for the next one (which starts at
    /// `buf[n]`, so the caller should split the reply off before scanning again). `Ok(None)`: incomplete, call
    /// again with more bytes appended. `Err`: protocol error; the scanner is reset.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        match self.run(buf) {
            Ok(Some(n)) => {
                self.reset();
                Ok(Some(n))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }

    fn run(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            if let Some(bulk) = self.bulk {
                let end = bulk.end.checked_add(2).ok_or(ProtocolError::InvalidBulkLength)?;
                if buf.len() < end {
                    return Ok(None);
                }
                if buf.get(bulk.end..end) != Some(&b"\r\n"[..]) {
                    return Err(ProtocolError::BulkNotTerminated);
                }
                if bulk.verbatim && buf.get(bulk.start + 3) != Some(&b':') {
                    return Err(ProtocolError::BadVerbatim);
                }
                self.bulk = None;
                self.pos = end;
                if self.complete_element() {
                    return Ok(Some(end));
                }
                continue;
            }

            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            let line_limit = match kind {
                b'+' | b'-' | b'(' => self.limits.max_bulk_len,
                b':' | b'$' | b'*' | b'_' | b',' | b'#' | b'!' | b'=' | b'%' | b'~' | b'>' | b'|' => {
                    self.limits.max_inline_len
                }
                other => return Err(ProtocolError::InvalidReplyType(other)),
            };
            let start = self.pos + 1;
            let window_end = start.saturating_add(line_limit).saturating_add(2);
            let window = buf.get(..buf.len().min(window_end)).unwrap_or_default();
            let cr = match find_crlf(window, self.scanned.max(start)) {
                Line::Found(r) => r,
                Line::Resume(at) => {
                    if buf.len() >= window_end {
                        return Err(ProtocolError::TooBigLine);
                    }
                    self.scanned = at;
                    return Ok(None);
                }
            };
            let line = buf.get(start..cr).unwrap_or_default();
            let next = cr + 2;
            match kind {
                b'+' | b'-' => {}
                b'(' => check_big_number(line)?,
                b':' => {
                    parse_i64(line).ok_or(ProtocolError::BadInteger)?;
                }
                b'_' => {
                    if !line.is_empty() {
                        return Err(ProtocolError::BadNull);
                    }
                }
                b',' => check_double(line)?,
                b'#' => {
                    if line != b"t" && line != b"f" {
                        return Err(ProtocolError::BadBool);
                    }
                }
                b'$' | b'!' | b'=' => match bulk_len(line, &self.limits)? {
                    None => {}
                    Some(len) => {
                        if kind == b'=' && len < 4 {
                            return Err(ProtocolError::BadVerbatim);
                        }
                        let end = next.checked_add(len).ok_or(ProtocolError::InvalidBulkLength)?;
                        self.bulk = Some(PendingBulk { start: next, end, verbatim: kind == b'=' });
                        self.pos = next;
                        self.scanned = next;
                        continue;
                    }
                },
                _ => {
                    // Aggregates: * ~ > % |
                    if let Some(count) = aggregate_len(kind, line, &self.limits)? {
                        if count > 0 || kind == b'|' {
                            self.pos = next;
                            self.scanned = next;
                            if count == 0 {
                                // `|0`: no attributes; the annotated value follows.
                                continue;
                            }
                            if self.stack.len() >= self.limits.max_depth {
                                return Err(ProtocolError::TooDeep(self.limits.max_depth));
                            }
                            self.stack.push(Level { remaining: count, attribute: kind == b'|' });
                            continue;
                        }
                    }
                }
            }
            // A complete scalar (or null, or empty aggregate) ends at `next`.
            self.pos = next;
            self.scanned = next;
            if self.complete_element() {
                return Ok(Some(next));
            }
        }
    }

    /// One element just completed: count it in the enclosing aggregates. True if the whole reply is complete.
    fn complete_element(&mut self) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return true;
            };
            top.remaining -= 1;
            if top.remaining > 0 {
                return false;
            }
            let attribute = top.attribute;
            self.stack.pop();
            if attribute {
                return false;
            }
        }
    }
}

/// `$`/`!`/`=` length: `None` for `-1` (null).
pub(crate) fn bulk_len(line: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    let n = parse_i64(line).ok_or(ProtocolError::InvalidBulkLength)?;
    if n == -1 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| ProtocolError::InvalidBulkLength)?;
    if n > limits.max_bulk_len {
        return Err(ProtocolError::InvalidBulkLength);
    }
    Ok(Some(n))
}

/// Aggregate element count (pairs count twice for `%` and `|`): `None` for `-1` (null; not allowed for `|`).
pub(crate) fn aggregate_len(kind: u8, line: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    let n = parse_i64(line).ok_or(ProtocolError::AggregateLength)?;
    if n == -1 && kind != b'|' {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| ProtocolError::AggregateLength)?;
    if n > limits.max_multibulk_len {
        return Err(ProtocolError::AggregateLength);
    }
    if kind == b'%' || kind == b'|' {
        n.checked_mul(2).map(Some).ok_or(ProtocolError::AggregateLength)
    } else {
        Ok(Some(n))
    }
}

pub(crate) fn check_double(line: &[u8]) -> Result<(), ProtocolError> {
    match std::str::from_utf8(line).ok().map(str::parse::<f64>) {
        Some(Ok(_)) => Ok(()),
        _ => Err(ProtocolError::BadDouble),
    }
}

pub(crate) fn check_big_number(line: &[u8]) -> Result<(), ProtocolError> {
    let digits = match line.split_first() {
        Some((b'-' | b'+', rest)) => rest,
        _ => line,
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(ProtocolError::BadBigNumber)
    }
}
