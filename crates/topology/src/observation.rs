//! What one controller saw of every server, published at
//! `/<root>/clusters/<cluster>/controllers/observers/<id>` for the leader to decide on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Replica,
}

/// One observer's view of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerObservation {
    /// The last probe succeeded.
    pub ok: bool,
    /// No good probe for the cluster's `down_after_ms`: this observer votes the server down.
    pub down: bool,
    /// Milliseconds since the last good probe, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok_ago_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// For a replica: the master it replicates from, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// For a replica: `master_link_status:up`.
    #[serde(default)]
    pub link_up: bool,
    /// For a replica whose link is down: how long, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_down_ms: Option<u64>,
    /// Replication offset: `master_repl_offset` of a master, `slave_repl_offset` of a replica.
    #[serde(default)]
    pub offset: i64,
    #[serde(default)]
    pub connected_replicas: u32,
    /// The managed settings as the server reports them (`CONFIG GET`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Everything one controller observed, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserverReport {
    pub observer: String,
    /// Wall-clock time of the report, for people; freshness is judged by the reader's clock.
    pub time_ms: u64,
    /// Topology epoch the observer was probing for.
    pub epoch: u64,
    pub servers: BTreeMap<String, ServerObservation>,
}
