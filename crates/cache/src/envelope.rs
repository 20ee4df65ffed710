//! The stored form of a cache entry: the value with the metadata that the decisions need.
//!
//! ```json
//! {"value":{"name":"ada"},"computed_at_ms":1718000000000,"delta_ms":12,"expires_at_ms":1718000060000}
//! ```
//! A "not found" (negative entry, tombstone) is the same without `value`. Times are Unix
//! milliseconds of the writer's clock: processes on different hosts should keep their clocks
//! in sync (NTP) for expiry and early recompute to be accurate; the physical Redis TTL, which
//! Redis itself enforces, bounds how long anything is kept regardless.

use serde::{Deserialize, Deserializer, Serialize};

/// One cache entry. `V` is the value type (`&V` to write, `V` to read,
/// [`serde::de::IgnoredAny`] to read only the metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope<V> {
    /// The value; `None` for a negative entry. Deserialized with `V`'s own rules even when
    /// the JSON is `null`, so a `V` that serializes to `null` (like `()`) round-trips.
    #[serde(
        default = "none",
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none",
        bound(deserialize = "V: Deserialize<'de>")
    )]
    pub value: Option<V>,
    /// When the load finished.
    pub computed_at_ms: u64,
    /// How long the load took (XFetch's `delta`).
    pub delta_ms: u64,
    /// When the entry stops being fresh (its logical expiry). Redis keeps it longer, as a stale
    /// copy.
    pub expires_at_ms: u64,
}

fn none<V>() -> Option<V> {
    None
}

fn present<'de, D: Deserializer<'de>, V: Deserialize<'de>>(d: D) -> Result<Option<V>, D::Error> {
    V::deserialize(d).map(Some)
}

impl<V> Envelope<V> {
    /// The metadata alone.
    pub fn meta(&self) -> Meta {
        Meta {
            negative: self.value.is_none(),
            computed_at_ms: self.computed_at_ms,
            delta_ms: self.delta_ms,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// An envelope's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub negative: bool,
    pub computed_at_ms: u64,
    pub delta_ms: u64,
    pub expires_at_ms: u64,
}

/// Reads the metadata of stored bytes without building the value.
#[cfg(test)]
pub(crate) fn decode_meta(bytes: &[u8]) -> Result<Meta, serde_json::Error> {
    serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(bytes).map(|e| e.meta())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        name: String,
    }

    fn roundtrip<V: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(value: Option<V>) {
        let envelope = Envelope { value: value.as_ref(), computed_at_ms: 10, delta_ms: 2, expires_at_ms: 99 };
        let bytes = serde_json::to_vec(&envelope).expect("encodes");
        let back: Envelope<V> = serde_json::from_slice(&bytes).expect("decodes");
        assert_eq!(back.value, value);
        assert_eq!(back.meta(), decode_meta(&bytes).expect("meta decodes"));
        assert_eq!(back.meta().negative, value.is_none());
    }

    #[test]
    fn values_and_tombstones_round_trip() {
        roundtrip(Some(User { name: "ada".into() }));
        roundtrip::<User>(None);
        roundtrip(Some(()));
        roundtrip::<()>(None);
        roundtrip(Some(Option::<u8>::None));
        roundtrip(Some(vec![1u32, 2, 3]));
    }

    #[test]
    fn tombstone_has_no_value_field() {
        let envelope = Envelope::<&u8> { value: None, computed_at_ms: 1, delta_ms: 0, expires_at_ms: 2 };
        let text = serde_json::to_string(&envelope).expect("encodes");
        assert_eq!(text, r#"{"computed_at_ms":1,"delta_ms":0,"expires_at_ms":2}"#);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_meta(b"not json").is_err());
        assert!(decode_meta(br#"{"value":1}"#).is_err());
        assert!(serde_json::from_slice::<Envelope<u8>>(
            br#"{"value":"x","computed_at_ms":1,"delta_ms":0,"expires_at_ms":2}"#
        )
        .is_err());
    }
}
