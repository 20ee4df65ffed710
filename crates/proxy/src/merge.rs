//! Pure merging of sub-replies for commands split across groups, and the SCAN cursor
//! encoding. Each function takes the parsed sub-replies and returns the client's reply.

use bytes::{Bytes, BytesMut};
use zedis_resp::Frame;

/// Encodes `frame` as RESP2 bytes.
pub fn encode(frame: &Frame) -> Bytes {
    encode_for(frame, false)
}

/// Encodes `frame` in the client's protocol.
pub fn encode_for(frame: &Frame, resp3: bool) -> Bytes {
    let mut out = BytesMut::new();
    frame.encode(&mut out, resp3);
    out.freeze()
}

/// First error among sub-replies, if any (it is what the client sees).
pub fn first_error(replies: &[Frame]) -> Option<&Frame> {
    replies.iter().find(|f| f.is_error())
}

/// MGET: `parts[i]` answered the keys at `positions[i]` (indices into the client's key list).
pub fn mget(total: usize, parts: &[(Vec<usize>, Frame)]) -> Frame {
    let replies: Vec<Frame> = parts.iter().map(|(_, f)| f.clone()).collect();
    if let Some(e) = first_error(&replies) {
        return e.clone();
    }
    let mut out = vec![Frame::Null; total];
    for (positions, frame) in parts {
        let values = frame.as_array().unwrap_or_default();
        if values.len() != positions.len() {
            return Frame::error("ERR backend returned a malformed MGET reply");
        }
        for (pos, value) in positions.iter().zip(values) {
            if let Some(slot) = out.get_mut(*pos) {
                *slot = value.clone();
            }
        }
    }
    Frame::Array(out)
}

/// DEL, UNLINK, EXISTS, TOUCH, DBSIZE: the sum of integer replies.
pub fn sum(replies: &[Frame]) -> Frame {
    if let Some(e) = first_error(replies) {
        return e.clone();
    }
    let mut total: i64 = 0;
    for r in replies {
        match r.as_integer() {
            Some(n) => total = total.saturating_add(n),
            None => return Frame::error("ERR backend returned a non-integer reply"),
        }
    }
    Frame::Integer(total)
}

/// MSET, FLUSHALL, SCRIPT FLUSH: OK when every part is OK.
pub fn all_ok(replies: &[Frame]) -> Frame {
    first_error(replies).cloned().unwrap_or_else(Frame::ok)
}

/// KEYS: the concatenation of every part's array.
pub fn concat(replies: &[Frame]) -> Frame {
    if let Some(e) = first_error(replies) {
        return e.clone();
    }
    Frame::Array(replies.iter().flat_map(|r| r.as_array().unwrap_or_default().iter().cloned()).collect())
}

/// SCRIPT EXISTS: a script exists only if every group has it.
pub fn and_each(replies: &[Frame]) -> Frame {
    if let Some(e) = first_error(replies) {
        return e.clone();
    }
    let mut acc: Option<Vec<i64>> = None;
    for r in replies {
        let v: Vec<i64> = r.as_array().unwrap_or_default().iter().map(|f| f.as_integer().unwrap_or(0)).collect();
        acc = Some(match acc {
            None => v,
            Some(a) => a.iter().zip(v.iter()).map(|(x, y)| i64::from(*x != 0 && *y != 0)).collect(),
        });
    }
    Frame::Array(acc.unwrap_or_default().into_iter().map(Frame::Integer).collect())
}

/// SCRIPT LOAD, FUNCTION LOAD: every group must give the same answer.
pub fn same_reply(replies: &[Frame]) -> Frame {
    if let Some(e) = first_error(replies) {
        return e.clone();
    }
    match replies.split_first() {
        Some((first, rest)) if rest.iter().all(|r| r == first) => first.clone(),
        Some(_) => Frame::error("ERR groups gave different answers"),
        None => Frame::Null,
    }
}

/// SCRIPT KILL: OK if any group stopped a script, else the first error.
pub fn any_ok(replies: &[Frame]) -> Frame {
    if replies.iter().any(|r| !r.is_error()) {
        return Frame::ok();
    }
    replies.first().cloned().unwrap_or_else(Frame::ok)
}

/// RANDOMKEY: a non-null answer, looking first at group `start` (chosen at random by the
/// caller) and then at the ones after it.
pub fn any_non_null(replies: &[Frame], start: usize) -> Frame {
    if let Some(e) = first_error(replies) {
        return e.clone();
    }
    let n = replies.len().max(1);
    (0..replies.len()).map(|i| &replies[(start + i) % n]).find(|r| !r.is_null()).cloned().unwrap_or(Frame::Null)
}

/// Bits of a proxy SCAN cursor that name the group; the rest is that group's own cursor.
pub const SCAN_GROUP_BITS: u32 = 10;

/// Splits a client SCAN cursor into (group id, backend cursor). Cursor 0 starts at the first
/// group; `None` for a cursor we did not hand out.
pub fn scan_cursor_decode(cursor: u64) -> Option<(u32, u64)> {
    if cursor == 0 {
        return Some((0, 0));
    }
    let group = (cursor & ((1 << SCAN_GROUP_BITS) - 1)) as u32;
    // Group ids start at 1: a cursor naming group 0 was not handed out by us.
    (group != 0).then_some((group, cursor >> SCAN_GROUP_BITS))
}

/// The cursor to hand the client after `group` answered `backend_cursor`; `groups` are the
/// cluster's group ids in ascending order. 0 means the scan is complete.
pub fn scan_cursor_next(groups: &[u32], group: u32, backend_cursor: u64) -> Option<u64> {
    if backend_cursor != 0 {
        if backend_cursor >> (64 - SCAN_GROUP_BITS) != 0 {
            return None;
        }
        return Some((backend_cursor << SCAN_GROUP_BITS) | u64::from(group));
    }
    match groups.iter().find(|g| **g > group) {
        Some(next) => Some(u64::from(*next)),
        None => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn mget_restores_the_client_order() {
        let parts =
            vec![(vec![0, 2], Frame::Array(vec![bulk("a"), Frame::Null])), (vec![1], Frame::Array(vec![bulk("b")]))];
        assert_eq!(mget(3, &parts), Frame::Array(vec![bulk("a"), bulk("b"), Frame::Null]));
        let bad = vec![(vec![0, 1], Frame::Array(vec![bulk("a")]))];
        assert!(mget(2, &bad).is_error());
        let err = vec![(vec![0], Frame::error("ERR boom"))];
        assert_eq!(mget(1, &err), Frame::error("ERR boom"));
    }

    #[test]
    fn aggregates() {
        assert_eq!(sum(&[Frame::Integer(2), Frame::Integer(3)]), Frame::Integer(5));
        assert!(sum(&[Frame::Integer(2), Frame::error("ERR x")]).is_error());
        assert_eq!(all_ok(&[Frame::ok(), Frame::ok()]), Frame::ok());
        assert_eq!(
            concat(&[Frame::Array(vec![bulk("a")]), Frame::Array(vec![bulk("b")])]),
            Frame::Array(vec![bulk("a"), bulk("b")])
        );
        let e = |v: &[i64]| Frame::Array(v.iter().map(|n| Frame::Integer(*n)).collect());
        assert_eq!(and_each(&[e(&[1, 1, 0]), e(&[1, 0, 0])]), e(&[1, 0, 0]));
        assert_eq!(any_non_null(&[Frame::Null, bulk("k")], 0), bulk("k"));
        assert_eq!(any_non_null(&[bulk("a"), bulk("b")], 1), bulk("b"));
        assert_eq!(any_non_null(&[bulk("a"), Frame::Null], 1), bulk("a"));
    }

    #[test]
    fn scan_cursor_walks_every_group_then_ends() {
        let groups = [1, 2, 5];
        let table: &[(u32, u64, Option<u64>)] = &[
            (1, 0, Some(2)),
            (1, 7, Some((7 << SCAN_GROUP_BITS) | 1)),
            (2, 0, Some(5)),
            (5, 0, Some(0)),
            (5, 3, Some((3 << SCAN_GROUP_BITS) | 5)),
            (1, u64::MAX, None),
        ];
        for (group, backend, want) in table {
            assert_eq!(scan_cursor_next(&groups, *group, *backend), *want, "{group} {backend}");
        }
        assert_eq!(scan_cursor_decode(0), Some((0, 0)));
        assert_eq!(scan_cursor_decode((7 << SCAN_GROUP_BITS) | 1), Some((1, 7)));
        assert_eq!(scan_cursor_decode(5), Some((5, 0)));
        assert_eq!(scan_cursor_decode(1 << SCAN_GROUP_BITS), None);
    }
}
