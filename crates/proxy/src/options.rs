//! Proxy settings; every one is also a `zedis proxy` flag.

use std::time::Duration;

use zedis_resp::Limits;

use crate::backend::BackendOptions;

/// When a write is acknowledged to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// As Redis: once the master has it.
    Async,
    /// Once `WAIT` confirms `replicas` replicas have it, within `timeout`; else the client gets
    /// an error (the write may or may not survive a failover). With the controller promoting
    /// the replica with the greatest offset, an acknowledged write survives one failover.
    Replicated { replicas: u32, timeout: Duration },
}

/// Where reads go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// Every command to the group's master (consistent reads).
    Master,
    /// Read-only commands to a replica whose link to its master is up and whose last contact
    /// with it is at most `max_lag` old; the master when there is none.
    ReplicaPreferred { max_lag: Duration },
}

#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub durability: Durability,
    pub read_from: ReadFrom,
    /// Who may connect; empty: everyone, with full access.
    pub auth: crate::auth::AuthConfig,
    /// Address to listen on, e.g. `127.0.0.1:6380`.
    pub listen: String,
    /// Most clients at once; more are refused with an error.
    pub max_clients: usize,
    /// Replies a client may have outstanding before the proxy stops reading its requests.
    pub max_pipeline: usize,
    pub limits: Limits,
    pub backend: BackendOptions,
    /// Time a request may wait for its backend reply.
    pub request_timeout: Duration,
    /// Time a command on a migrating slot may wait for its key to become writable (a big key
    /// being copied in chunks) or, for what cannot run through the migration guard (blocking
    /// commands, transactions, scripts), for the slot to finish moving.
    pub migration_wait: Duration,
    /// Unique id, used for the proxy's registration node.
    pub id: String,
    /// Worker threads serving clients (each with its own backend connections).
    pub threads: usize,
    /// What registers in ZooKeeper: a proxy (`proxies/<id>`) or an in-process client
    /// (`clients/<id>`).
    pub role: RouterRole,
}

/// Where a router registers (both kinds report the epoch they route with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterRole {
    Proxy,
    Client,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            durability: Durability::Async,
            read_from: ReadFrom::Master,
            auth: crate::auth::AuthConfig::default(),
            listen: "127.0.0.1:6380".into(),
            max_clients: 10_000,
            max_pipeline: 1024,
            limits: Limits::default(),
            backend: BackendOptions::default(),
            request_timeout: Duration::from_secs(5),
            migration_wait: Duration::from_secs(10),
            id: format!("proxy-{}", std::process::id()),
            threads: crate::workers::default_count(),
            role: RouterRole::Proxy,
        }
    }
}
