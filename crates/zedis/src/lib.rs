//! zedis: a highly available, sharded Redis service run from ZooKeeper, as a library.
//!
//! The parts live in their own crates and are re-exported here under their role names.

pub use zedis_cache as cache;
pub use zedis_controller as controller;
pub use zedis_coord as coord;
pub use zedis_proxy as proxy;
pub use zedis_queue as queue;
pub use zedis_recipes as recipes;
pub use zedis_resp as resp;
pub use zedis_topology as topology;

/// A client that routes each command straight to its group's master, from the topology in
/// ZooKeeper, with the proxy's own routing code.
pub use zedis_proxy::{Cluster, ClusterError, ClusterOptions};
