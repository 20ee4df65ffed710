//! Reading the stream commands' replies from [`redis::Value`], RESP2 or RESP3 alike. Pure,
//! and never panics: a reply of another shape is an `Err` that names what was wrong.

use redis::Value;

use crate::message::Fields;

/// One stream entry; `fields` is `None` for an entry that was deleted while pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: String,
    pub fields: Option<Fields>,
}

/// `XAUTOCLAIM`'s reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AutoClaim {
    /// Where the next scan starts; `0-0` when this one reached the end.
    pub next: String,
    pub claimed: Vec<Entry>,
    /// Pending entries no longer in the stream (trimmed); Redis dropped them from the PEL.
    pub deleted: Vec<String>,
}

/// One entry of `XPENDING key group [IDLE ms] start end count [consumer]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub id: String,
    pub consumer: String,
    pub idle_ms: u64,
    pub deliveries: u64,
}

/// The consumer group's line of `XINFO GROUPS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupInfo {
    pub consumers: u64,
    pub pending: u64,
    /// Entries not yet delivered to the group, when Redis can tell (7.0+).
    pub lag: Option<u64>,
    pub last_delivered_id: String,
}

pub(crate) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

pub(crate) fn string(v: &Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => string(other).and_then(|s| s.parse().ok()),
    }
}

fn uint(v: &Value) -> Option<u64> {
    int(v).and_then(|i| u64::try_from(i).ok())
}

pub(crate) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// A flat `[k1, v1, k2, v2, ...]` array or a RESP3 map, as pairs.
fn pairs(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(m) => Some(m.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(items) if items.len() & 1 == 0 => Some(items.chunks(2).map(|c| (&c[0], &c[1])).collect()),
        _ => None,
    }
}

fn fields(v: &Value) -> Result<Fields, String> {
    let pairs = pairs(v).ok_or_else(|| format!("entry fields are not field/value pairs: {v:?}"))?;
    pairs
        .into_iter()
        .map(|(k, v)| match (bytes(k), bytes(v)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(format!("entry field is not a string: {k:?} {v:?}")),
        })
        .collect()
}

/// `[id, [field, value, ...]]`, or `[id, nil]` for a deleted entry.
pub(crate) fn entry(v: &Value) -> Result<Entry, String> {
    let items = array(v).filter(|a| a.len() == 2).ok_or_else(|| format!("not an [id, fields] entry: {v:?}"))?;
    let id = string(&items[0]).ok_or_else(|| format!("entry id is not a string: {:?}", items[0]))?;
    let fields = match &items[1] {
        Value::Nil => None,
        other => Some(fields(other)?),
    };
    Ok(Entry { id, fields })
}

/// An array of entries; nil (no entries) reads as empty. Nil items (deleted entries in
/// replies of Redis 6) are skipped.
pub(crate) fn entries(v: &Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        other => array(other)
            .ok_or_else(|| format!("not an array of entries: {other:?}"))?
            .iter()
            .filter(|e| !matches!(e, Value::Nil))
            .map(entry)
            .collect(),
    }
}

/// `[next-cursor, [entries], [deleted ids]]` (the third element is Redis 7's).
pub(crate) fn autoclaim(v: &Value) -> Result<AutoClaim, String> {
    let items = array(v).filter(|a| a.len() >= 2).ok_or_else(|| format!("not [cursor, entries, ...]: {v:?}"))?;
    let next = string(&items[0]).ok_or_else(|| format!("cursor is not a string: {:?}", items[0]))?;
    let claimed = entries(&items[1])?;
    let deleted = match items.get(2) {
        None | Some(Value::Nil) => Vec::new(),
        Some(d) => array(d)
            .ok_or_else(|| format!("deleted ids are not an array: {d:?}"))?
            .iter()
            .map(|x| string(x).ok_or_else(|| format!("deleted id is not a string: {x:?}")))
            .collect::<Result<_, _>>()?,
    };
    Ok(AutoClaim { next, claimed, deleted })
}

/// `XREADGROUP` on one stream: nil when nothing came, else `[[key, entries]]` (RESP2) or
/// `{key: entries}` (RESP3).
pub(crate) fn read_group(v: &Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => {
            let mut out = Vec::new();
            for (_, e) in m {
                out.extend(entries(e)?);
            }
            Ok(out)
        }
        other => {
            let mut out = Vec::new();
            for stream in array(other).ok_or_else(|| format!("not an array of streams: {other:?}"))? {
                let pair =
                    array(stream).filter(|p| p.len() == 2).ok_or_else(|| format!("not [key, entries]: {stream:?}"))?;
                out.extend(entries(&pair[1])?);
            }
            Ok(out)
        }
    }
}

/// The extended form of `XPENDING`: `[[id, consumer, idle-ms, deliveries], ...]`.
pub(crate) fn pending(v: &Value) -> Result<Vec<Pending>, String> {
    let items = match v {
        Value::Nil => return Ok(Vec::new()),
        other => array(other).ok_or_else(|| format!("not an array of pending entries: {other:?}"))?,
    };
    items
        .iter()
        .map(|p| {
            let f = array(p).filter(|f| f.len() == 4).ok_or_else(|| format!("not a pending entry: {p:?}"))?;
            match (string(&f[0]), string(&f[1]), uint(&f[2]), uint(&f[3])) {
                (Some(id), Some(consumer), Some(idle_ms), Some(deliveries)) => {
                    Ok(Pending { id, consumer, idle_ms, deliveries })
                }
                _ => Err(format!("bad pending entry: {p:?}")),
            }
        })
        .collect()
}

/// Finds `group` in `XINFO GROUPS`; `None` if the stream has no such group.
pub(crate) fn group_info(v: &Value, group: &str) -> Result<Option<GroupInfo>, String> {
    let groups = array(v).ok_or_else(|| format!("not an array of groups: {v:?}"))?;
    for g in groups {
        let fields = pairs(g).ok_or_else(|| format!("group info is not field/value pairs: {g:?}"))?;
        let get = |name: &str| fields.iter().find(|(k, _)| string(k).as_deref() == Some(name)).map(|(_, v)| *v);
        if get("name").and_then(string).as_deref() != Some(group) {
            continue;
        }
        return Ok(Some(GroupInfo {
            consumers: get("consumers").and_then(uint).unwrap_or(0),
            pending: get("pending").and_then(uint).unwrap_or(0),
            // Nil when Redis cannot tell (entries deleted in the range it would count).
            lag: get("lag").and_then(uint),
            last_delivered_id: get("last-delivered-id").and_then(string).unwrap_or_default(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::BulkString(x.as_bytes().to_vec())
    }

    fn arr(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    fn e(id: &str, fv: &[&str]) -> Value {
        arr(vec![s(id), arr(fv.iter().map(|x| s(x)).collect())])
    }

    #[test]
    fn entries_and_read_group() {
        let got = read_group(&arr(vec![arr(vec![s("k"), arr(vec![e("1-0", &["payload", "a"])])])])).unwrap();
        assert_eq!(got, vec![Entry { id: "1-0".into(), fields: Some(vec![(b"payload".to_vec(), b"a".to_vec())]) }]);
        let resp3 = Value::Map(vec![(s("k"), arr(vec![e("2-0", &[])]))]);
        assert_eq!(read_group(&resp3).unwrap()[0].id, "2-0");
        assert!(read_group(&Value::Nil).unwrap().is_empty());
        let deleted = arr(vec![s("3-0"), Value::Nil]);
        assert_eq!(entry(&deleted).unwrap(), Entry { id: "3-0".into(), fields: None });
        for bad in [
            s("x"),
            arr(vec![s("k")]),
            arr(vec![arr(vec![s("k"), s("not entries")])]),
            arr(vec![arr(vec![s("k"), arr(vec![e("1-0", &["odd"])])])]),
            arr(vec![arr(vec![s("k"), arr(vec![arr(vec![Value::Nil, arr(vec![])])])])]),
        ] {
            assert!(read_group(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn autoclaim_replies() {
        let v = arr(vec![s("0-0"), arr(vec![e("1-0", &["payload", "x"]), Value::Nil]), arr(vec![s("2-0")])]);
        let got = autoclaim(&v).unwrap();
        assert_eq!(got.next, "0-0");
        assert_eq!(got.claimed.len(), 1);
        assert_eq!(got.deleted, vec!["2-0".to_string()]);
        // Redis 6.2 has no third element.
        assert!(autoclaim(&arr(vec![s("5-0"), arr(vec![])])).unwrap().deleted.is_empty());
        for bad in [Value::Nil, arr(vec![s("0-0")]), arr(vec![s("0-0"), arr(vec![]), s("x")])] {
            assert!(autoclaim(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pending_replies() {
        let v = arr(vec![arr(vec![s("1-0"), s("c1"), Value::Int(1500), Value::Int(2)])]);
        assert_eq!(
            pending(&v).unwrap(),
            vec![Pending { id: "1-0".into(), consumer: "c1".into(), idle_ms: 1500, deliveries: 2 }]
        );
        assert!(pending(&arr(vec![])).unwrap().is_empty());
        for bad in [
            arr(vec![arr(vec![s("1-0"), s("c1"), Value::Int(-1), Value::Int(2)])]),
            arr(vec![arr(vec![s("1-0"), s("c1")])]),
            s("x"),
        ] {
            assert!(pending(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_info_replies() {
        let g = |name: &str, lag: Value| {
            arr(vec![
                s("name"),
                s(name),
                s("consumers"),
                Value::Int(2),
                s("pending"),
                Value::Int(3),
                s("last-delivered-id"),
                s("7-0"),
                s("entries-read"),
                Value::Int(7),
                s("lag"),
                lag,
            ])
        };
        let v = arr(vec![g("other", Value::Int(0)), g("workers", Value::Int(4))]);
        let want = GroupInfo { consumers: 2, pending: 3, lag: Some(4), last_delivered_id: "7-0".into() };
        assert_eq!(group_info(&v, "workers").unwrap(), Some(want));
        assert_eq!(group_info(&v, "nobody").unwrap(), None);
        let v = arr(vec![g("workers", Value::Nil)]);
        assert_eq!(group_info(&v, "workers").unwrap().unwrap().lag, None);
        let resp3 = arr(vec![Value::Map(vec![(s("name"), s("workers")), (s("pending"), Value::Int(1))])]);
        assert_eq!(group_info(&resp3, "workers").unwrap().unwrap().pending, 1);
        assert!(group_info(&s("x"), "workers").is_err());
    }
}
