//! [`ConfigRecord`]: one version of one key, as stored in ZooKeeper (the key node, each history
//! node and the canary node hold one) and as handed to readers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Result};
use super::format::Format;

/// Largest value accepted, in bytes. A write is one ZooKeeper transaction holding up to three
/// records (abandoning a canary writes the key and two history versions), JSON-escaped, and a
/// transaction must stay under ZooKeeper's 1 MiB `jute.maxbuffer`.
pub const MAX_VALUE_BYTES: usize = 128 * 1024;

/// Largest encoded record, in bytes (the value once JSON-escaped, plus metadata).
pub const MAX_RECORD_BYTES: usize = 300 * 1024;

/// One version of one key. Serialized as JSON a person can read with `zkCli.sh get`:
/// `{"value":"...","format":"json","version":3,"time_ms":...,"author":"...","comment":"..."}`.
///
/// A delete is a version too (`deleted: true`, empty value): versions of a key never restart,
/// so "never older than what was seen" holds across a delete and a re-create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub value: String,
    #[serde(default)]
    pub format: Format,
    /// 1 for the first publish, +1 for each change (publish, delete, rollback, canary).
    pub version: u64,
    /// When it was written, by the writer's clock (ms since the Unix epoch).
    pub time_ms: u64,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub comment: String,
    /// This version deletes the key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Set on canary versions: who may see it and what became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryInfo>,
}

/// The canary side of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryInfo {
    /// Clients whose labels include every one of these see the candidate.
    pub selector: BTreeMap<String, String>,
    pub state: CanaryState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryState {
    /// Published to matching clients only.
    Candidate,
    /// Released to everyone (the record is the released version).
    Promoted,
    /// Dropped; matching clients went back to the released value (kept in the history).
    Abandoned,
}

impl ConfigRecord {
    /// Parses a stored record; `path` names it in the error.
    pub fn parse(path: &str, data: &[u8]) -> Result<ConfigRecord> {
        let record: ConfigRecord = serde_json::from_slice(data)
            .map_err(|e| ConfigError::BadRecord { path: path.to_string(), reason: e.to_string() })?;
        if record.version == 0 {
            return Err(ConfigError::BadRecord { path: path.to_string(), reason: "version 0".to_string() });
        }
        Ok(record)
    }

    /// The JSON stored in ZooKeeper.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let data = serde_json::to_vec(self)
            .map_err(|e| ConfigError::BadRecord { path: String::new(), reason: e.to_string() })?;
        if data.len() > MAX_RECORD_BYTES {
            return Err(ConfigError::TooLarge { size: data.len(), limit: MAX_RECORD_BYTES });
        }
        Ok(data)
    }

    /// Whether this is a canary candidate (seen only by clients whose labels match).
    pub fn is_canary_candidate(&self) -> bool {
        self.canary.as_ref().is_some_and(|c| c.state == CanaryState::Candidate)
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_readable() {
        let r = ConfigRecord {
            value: "{\"a\":1}".into(),
            format: Format::Json,
            version: 3,
            time_ms: 1,
            author: "me".into(),
            comment: "why".into(),
            deleted: false,
            canary: None,
        };
        let data = r.to_json().unwrap();
        let text = String::from_utf8(data.clone()).unwrap();
        assert!(text.contains("\"version\":3") && !text.contains("deleted") && !text.contains("canary"), "{text}");
        assert_eq!(ConfigRecord::parse("/p", &data).unwrap(), r);
    }

    #[test]
    fn bad_records_are_errors() {
        for bad in [&b"nope"[..], b"{}", b"{\"value\":\"x\",\"version\":0,\"time_ms\":1}"] {
            assert!(matches!(ConfigRecord::parse("/p", bad), Err(ConfigError::BadRecord { .. })));
        }
        // Older or hand-written records without the optional fields still parse.
        let r = ConfigRecord::parse("/p", b"{\"value\":\"x\",\"version\":2,\"time_ms\":1}").unwrap();
        assert_eq!((r.format, r.deleted, r.canary), (Format::Text, false, None));
    }
}
