//! Operator requests that only the controller leader may apply to the topology; the CLI
//! queues them in ZooKeeper and waits for the leader's outcome.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::group::{GroupId, Server};
use crate::migration::{MigrationAction, MigrationId};
use crate::settings::ClusterSettings;
use crate::slot::Slot;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminOp {
    AddGroup {
        servers: Vec<Server>,
    },
    AddServer {
        group: GroupId,
        server: Server,
    },
    RemoveServer {
        addr: String,
    },
    SetPriority {
        addr: String,
        priority: u32,
    },
    /// Planned switchover that loses no acknowledged write.
    Failover {
        group: GroupId,
        to: Option<String>,
    },
    SetSettings {
        settings: ClusterSettings,
    },
    /// Operator Redis settings for every server, added or replaced (`cluster config set`);
    /// names and values as the operator gave them, validated by the leader again.
    SetRedisConfig {
        settings: BTreeMap<String, String>,
    },
    /// Stop enforcing these operator Redis settings (`cluster config unset`).
    UnsetRedisConfig {
        names: Vec<String>,
    },
    /// Move slot ranges (inclusive) to a group (`cluster migrate`).
    Migrate {
        ranges: Vec<(Slot, Slot)>,
        to: GroupId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u32>,
    },
    /// Pause, resume or cancel a migration (`cluster migration pause|resume|cancel ID`).
    Migration {
        id: MigrationId,
        action: MigrationAction,
    },
    /// Spread the slots over the groups by weight (`cluster rebalance`); groups not named
    /// weigh 1, weight 0 empties a group.
    Rebalance {
        #[serde(default, with = "weight_pairs")]
        weights: BTreeMap<GroupId, u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u32>,
    },
}

impl AdminOp {
    /// Servers this request brings into the cluster (checked for reachability first).
    pub fn new_servers(&self) -> Vec<&str> {
        match self {
            AdminOp::AddGroup { servers } => servers.iter().map(|s| s.addr.as_str()).collect(),
            AdminOp::AddServer { server, .. } => vec![server.addr.as_str()],
            _ => Vec::new(),
        }
    }
}

/// Weights as `[[group, weight], ...]`: requests are read through `#[serde(flatten)]`, which
/// cannot turn JSON object keys back into numbers.
mod weight_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::group::GroupId;

    pub fn serialize<S: Serializer>(weights: &BTreeMap<GroupId, u32>, s: S) -> Result<S::Ok, S::Error> {
        weights.iter().map(|(g, w)| (*g, *w)).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<GroupId, u32>, D::Error> {
        Ok(Vec::<(GroupId, u32)>::deserialize(d)?.into_iter().collect())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
    /// Topology epoch after the request, when it changed the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    pub by: String,
    pub time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    #[serde(flatten)]
    pub op: AdminOp,
    pub by: String,
    pub time_ms: u64,
    /// The controller that took the request; once taken it is no longer withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<String>,
    /// Topology epoch when it was taken, so a successor can tell whether it already took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_well_as_json() {
        let r = AdminRequest {
            op: AdminOp::Failover { group: 2, to: Some("h:1".into()) },
            by: "cli".into(),
            time_ms: 5,
            taken_by: None,
            taken_epoch: None,
            outcome: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"op":"failover","group":2,"to":"h:1","by":"cli","time_ms":5}"#);
        assert_eq!(serde_json::from_str::<AdminRequest>(&json).unwrap(), r);

        let op = AdminOp::SetRedisConfig { settings: [("maxmemory".to_string(), "64mb".to_string())].into() };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, r#"{"op":"set_redis_config","settings":{"maxmemory":"64mb"}}"#);
        assert_eq!(serde_json::from_str::<AdminOp>(&json).unwrap(), op);
        let r = AdminRequest {
            op: AdminOp::Rebalance { weights: [(3, 2), (1, 0)].into(), rate: Some(500) },
            by: "cli".into(),
            time_ms: 5,
            taken_by: None,
            taken_epoch: None,
            outcome: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"op":"rebalance","weights":[[1,0],[3,2]],"rate":500,"by":"cli","time_ms":5}"#);
        assert_eq!(serde_json::from_str::<AdminRequest>(&json).unwrap(), r, "read back through flatten");
        let op = AdminOp::UnsetRedisConfig { names: vec!["maxmemory".into()] };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, r#"{"op":"unset_redis_config","names":["maxmemory"]}"#);
    }
}
