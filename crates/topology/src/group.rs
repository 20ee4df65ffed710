//! A replication group: one master and its replicas.

use serde::{Deserialize, Serialize};

/// Group ids are small positive integers, allocated from 1.
pub type GroupId = u32;

/// Default promotion priority, as Redis's `replica-priority`: lower wins, 0 never promotes.
pub const DEFAULT_PRIORITY: u32 = 100;

/// One Redis server of a group, by `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub addr: String,
    /// Promotion priority: lower is preferred, 0 means never promote (as Redis's `replica-priority`).
    #[serde(default = "default_priority")]
    pub priority: u32,
}

fn default_priority() -> u32 {
    DEFAULT_PRIORITY
}

impl Server {
    pub fn new(addr: impl Into<String>) -> Server {
        Server { addr: addr.into(), priority: DEFAULT_PRIORITY }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    /// Address of the master; always one of `servers`.
    pub master: String,
    /// Every server of the group, master included.
    pub servers: Vec<Server>,
}

impl Group {
    pub fn replicas(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(move |s| s.addr != self.master)
    }

    pub fn replica_addrs(&self) -> Vec<String> {
        self.replicas().map(|s| s.addr.clone()).collect()
    }

    pub fn server(&self, addr: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.addr == addr)
    }

    pub fn contains(&self, addr: &str) -> bool {
        self.server(addr).is_some()
    }
}
