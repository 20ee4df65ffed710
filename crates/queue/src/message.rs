//! Messages as stored in a queue's streams, and their field layout. Pure.
//!
//! A message is one stream entry: the field `payload` (bytes) and one field `h:NAME` per
//! header, so any Redis client can read it with `XRANGE`. A dead letter carries the same
//! fields plus `dead:original-id`, `dead:deliveries`, `dead:reason` and `dead:time-ms`.

use std::collections::BTreeMap;

pub const PAYLOAD_FIELD: &str = "payload";
pub const HEADER_PREFIX: &str = "h:";
/// Fields added to a dead letter start with this; a requeued message drops them.
pub const DEAD_PREFIX: &str = "dead:";
pub const DEAD_ORIGINAL_ID: &str = "dead:original-id";
pub const DEAD_DELIVERIES: &str = "dead:deliveries";
pub const DEAD_REASON: &str = "dead:reason";
pub const DEAD_TIME_MS: &str = "dead:time-ms";

/// Field name → value, in stream order.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The stream entry id, `MILLISECONDS-SEQUENCE`; what [`crate::Queue::ack`] takes.
    pub id: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// Deliveries so far, this one included: 1 the first time, 2 after one reclaim, ...
    pub deliveries: u64,
}

/// A message moved to the dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream (what [`crate::Queue::requeue_dead`] takes).
    pub id: String,
    /// Its id in the queue when it failed.
    pub original_id: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
    /// Deliveries it had without an acknowledgement.
    pub deliveries: u64,
    pub reason: String,
    /// Wall-clock milliseconds since the Unix epoch when it was dead-lettered.
    pub time_ms: u64,
}

/// The stream fields of a new message.
pub(crate) fn encode(payload: &[u8], headers: &BTreeMap<String, String>) -> Fields {
    let mut fields = Vec::with_capacity(headers.len() + 1);
    fields.push((PAYLOAD_FIELD.as_bytes().to_vec(), payload.to_vec()));
    for (k, v) in headers {
        fields.push((format!("{HEADER_PREFIX}{k}").into_bytes(), v.as_bytes().to_vec()));
    }
    fields
}

/// Reads a message's fields. Lenient, so entries written by other producers still read: a
/// missing payload is empty, and fields that are neither the payload nor `h:` headers are
/// kept as headers under their own names.
pub(crate) fn decode(id: &str, fields: &Fields, deliveries: u64) -> Message {
    let mut payload = Vec::new();
    let mut headers = BTreeMap::new();
    for (name, value) in fields {
        let name = String::from_utf8_lossy(name);
        if name == PAYLOAD_FIELD {
            payload = value.clone();
        } else if name.starts_with(DEAD_PREFIX) {
            continue;
        } else {
            let key = name.strip_prefix(HEADER_PREFIX).unwrap_or(&name).to_string();
            headers.insert(key, String::from_utf8_lossy(value).into_owned());
        }
    }
    Message { id: id.to_string(), payload, headers, deliveries }
}

/// Reads a dead letter's fields; missing bookkeeping fields read as empty or zero.
pub(crate) fn decode_dead(id: &str, fields: &Fields) -> DeadLetter {
    let text = |field: &str| {
        fields
            .iter()
            .find(|(n, _)| n.as_slice() == field.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let message = decode(id, fields, 0);
    DeadLetter {
        id: id.to_string(),
        original_id: text(DEAD_ORIGINAL_ID),
        payload: message.payload,
        headers: message.headers,
        deliveries: text(DEAD_DELIVERIES).parse().unwrap_or(0),
        reason: text(DEAD_REASON),
        time_ms: text(DEAD_TIME_MS).parse().unwrap_or(0),
    }
}

/// Whether `id` is a stream entry id (`MS-SEQ`), checked before it reaches Redis so a typo
/// gets a clear error.
pub fn is_entry_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((ms, seq)) => ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn round_trip() {
        let headers: BTreeMap<String, String> = [("trace".to_string(), "abc".to_string())].into();
        let fields = encode(b"\x00bytes", &headers);
        assert_eq!(fields[0].0, b"payload");
        assert_eq!(fields[1], (b"h:trace".to_vec(), b"abc".to_vec()));
        let m = decode("1-0", &fields, 1);
        assert_eq!(m, Message { id: "1-0".into(), payload: b"\x00bytes".to_vec(), headers, deliveries: 1 });
    }

    #[test]
    fn lenient_decoding() {
        // (fields, want payload, want headers)
        type Case<'a> = (Fields, &'a [u8], Vec<(&'a str, &'a str)>);
        let table: Vec<Case> = vec![
            (f(&[]), b"", vec![]),
            (f(&[("data", "x")]), b"", vec![("data", "x")]),
            (f(&[("payload", "p"), ("h:a", "1"), ("dead:reason", "r")]), b"p", vec![("a", "1")]),
        ];
        for (fields, payload, headers) in table {
            let m = decode("1-1", &fields, 3);
            assert_eq!(m.payload, payload);
            let want: BTreeMap<String, String> =
                headers.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(m.headers, want);
        }
    }

    #[test]
    fn dead_letters() {
        let fields = f(&[
            ("payload", "p"),
            ("h:k", "v"),
            ("dead:original-id", "5-0"),
            ("dead:deliveries", "3"),
            ("dead:reason", "too many"),
            ("dead:time-ms", "1700"),
        ]);
        let d = decode_dead("9-0", &fields);
        assert_eq!((d.id.as_str(), d.original_id.as_str(), d.deliveries, d.time_ms), ("9-0", "5-0", 3, 1700));
        assert_eq!(d.reason, "too many");
        assert_eq!(d.payload, b"p");
        assert_eq!(d.headers.len(), 1);
        let d = decode_dead("9-1", &f(&[("dead:deliveries", "many")]));
        assert_eq!(d.deliveries, 0);
    }

    #[test]
    fn entry_ids() {
        for (id, ok) in [("1-0", true), ("1700000000000-12", true), ("1", false), ("a-1", false), ("1-", false)] {
            assert_eq!(is_entry_id(id), ok, "{id}");
        }
    }
}
