//! The JSON record each candidate node holds, and [`LeaderInfo`], what others learn from it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zookeeper_client::Stat;

use super::error::ElectionError;

/// The data of a candidate node (`zkCli.sh get` shows it as is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CandidateRecord {
    pub id: String,
    #[serde(default)]
    pub data: serde_json::Value,
    /// When the candidate joined, by its own clock.
    pub joined_ms: u64,
    /// When it began to lead, by its own clock; written by the leader once it knows it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leading_since_ms: Option<u64>,
}

impl CandidateRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and a JSON value always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(path: &str, bytes: &[u8]) -> Result<CandidateRecord, ElectionError> {
        serde_json::from_slice(bytes).map_err(|source| ElectionError::BadRecord { path: path.to_string(), source })
    }
}

/// Who leads an election, as any ZooKeeper client can see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The leader's participant id.
    pub id: String,
    /// The leader's epoch (fencing token): the czxid of its candidate node.
    pub epoch: u64,
    /// The application data it published.
    pub data: serde_json::Value,
    /// When it began to lead (milliseconds since the Unix epoch, by the leader's clock); until
    /// the leader has noticed its turn and said so, when its node was created (by ZooKeeper's).
    pub since_ms: u64,
    /// Its candidate node's name.
    pub node: String,
}

impl LeaderInfo {
    /// From a candidate node's data and stat (only `czxid` and `ctime` matter).
    pub(crate) fn from_node(path: &str, node: &str, bytes: &[u8], stat: &Stat) -> Result<LeaderInfo, ElectionError> {
        LeaderInfo::from_parts(path, node, bytes, stat.czxid, stat.ctime)
    }

    fn from_parts(path: &str, node: &str, bytes: &[u8], czxid: i64, ctime: i64) -> Result<LeaderInfo, ElectionError> {
        let record = CandidateRecord::parse(path, bytes)?;
        Ok(LeaderInfo {
            id: record.id,
            epoch: epoch_of(czxid),
            data: record.data,
            since_ms: record.leading_since_ms.unwrap_or_else(|| u64::try_from(ctime).unwrap_or(0)),
            node: node.to_string(),
        })
    }

    /// [`LeaderInfo::since_ms`] as a time.
    pub fn since(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.since_ms)
    }
}

/// A czxid as an epoch (zxids are positive).
pub(crate) fn epoch_of(czxid: i64) -> u64 {
    u64::try_from(czxid).unwrap_or(0)
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_leader_info() {
        let rec = CandidateRecord {
            id: "h:1".into(),
            data: serde_json::json!({"addr": "10.0.0.1:80"}),
            joined_ms: 5,
            leading_since_ms: None,
        };
        let bytes = rec.to_bytes();
        assert!(!String::from_utf8_lossy(&bytes).contains("leading_since_ms"));
        let info = LeaderInfo::from_parts("/e/c-1", "c-1", &bytes, 0x1_0000_0007, 1234).unwrap();
        assert_eq!(info.epoch, 0x1_0000_0007);
        assert_eq!(info.since_ms, 1234, "ctime until the leader stamps its node");
        let stamped = CandidateRecord { leading_since_ms: Some(99), ..rec }.to_bytes();
        assert_eq!(LeaderInfo::from_parts("/e/c-1", "c-1", &stamped, 0x1_0000_0007, 1234).unwrap().since_ms, 99);
    }

    #[test]
    fn foreign_data_is_an_error() {
        for bad in [&b"host-a"[..], b"", b"{\"data\":1}", b"\xff"] {
            match LeaderInfo::from_parts("/e/c-1", "c-1", bad, 1, 1) {
                Err(ElectionError::BadRecord { path, .. }) => assert_eq!(path, "/e/c-1"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
