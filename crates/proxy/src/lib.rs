//! The zedis proxy: speaks the Redis protocol to any client and routes each command by hash
//! slot to its group's current master, following topology changes from ZooKeeper live.
//!
//! `session` (per client: decode, dispatch, reply in order) → `dispatch` (decide per command,
//! from `command_table`) → `backend` (multiplexed pipelined connections per server), with the
//! `route_table` snapshot kept current by `follower`.

pub mod auth;
pub mod backend;
pub mod cluster_client;
pub mod command_table;
pub mod dedicated;
pub mod dispatch;
pub mod fence;
pub mod follower;
pub mod http;
pub mod local;
pub mod merge;
pub mod metrics;
pub mod migrating;
pub mod options;
pub mod pubsub;
pub mod replica_health;
pub mod route_table;
pub mod server;
pub mod session;
pub mod state;
pub mod tx;
pub mod workers;
pub mod zk_contact;

pub use cluster_client::{Cluster, ClusterError, ClusterOptions};
pub use options::ProxyOptions;
pub use state::ProxyState;
