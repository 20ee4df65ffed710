//! The message announcing that a cache entry changed, published on
//! [`CacheOptions::invalidation_channel`](crate::CacheOptions::invalidation_channel).
//!
//! ```json
//! {"origin":"5f1c0a9e3b2d4c17","key":"zedis:cache:{user:42}"}
//! ```
//! `key` is the entry's full Redis key. `origin` identifies the publishing
//! [`Cache`](crate::Cache) so that it can skip its own messages (it already updated its near
//! cache). Any client may also publish just the Redis key as the payload, without JSON, to
//! drop an entry from every near cache: `PUBLISH zedis:cache:invalidate "zedis:cache:{user:42}"`.

use serde::{Deserialize, Serialize};

/// One invalidation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InvalidationMessage {
    /// The publisher's id; empty when the payload was a bare key.
    #[serde(default)]
    pub origin: String,
    /// The entry's Redis key.
    pub key: String,
}

impl InvalidationMessage {
    pub fn encode(origin: &str, key: &str) -> Vec<u8> {
        // Serializing two strings cannot fail.
        serde_json::to_vec(&InvalidationMessage { origin: origin.to_string(), key: key.to_string() })
            .unwrap_or_else(|_| key.as_bytes().to_vec())
    }

    /// Reads a payload: our JSON, or else the whole payload as a bare key. `None` for an empty
    /// or non-UTF-8 payload (no Redis key of ours is either).
    pub fn decode(payload: &[u8]) -> Option<InvalidationMessage> {
        if payload.first() == Some(&b'{') {
            if let Ok(message) = serde_json::from_slice::<InvalidationMessage>(payload) {
                return Some(message);
            }
        }
        let key = std::str::from_utf8(payload).ok()?;
        if key.is_empty() {
            return None;
        }
        Some(InvalidationMessage { origin: String::new(), key: key.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let ours = InvalidationMessage::encode("o1", "p:{k}");
        // (payload, Some((origin, key)) or None)
        type Case<'a> = (&'a [u8], Option<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (&ours, Some(("o1", "p:{k}"))),
            (b"p:{k}", Some(("", "p:{k}"))),
            (br#"{"key":"p:{k}"}"#, Some(("", "p:{k}"))),
            // A bare key that starts with '{' and is not our JSON is still a key.
            (b"{k}:x", Some(("", "{k}:x"))),
            (b"", None),
            (&[0xff, 0xfe], None),
        ];
        for (payload, want) in cases {
            let got = InvalidationMessage::decode(payload);
            let got = got.as_ref().map(|m| (m.origin.as_str(), m.key.as_str()));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(payload));
        }
    }
}
