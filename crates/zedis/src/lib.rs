//! zedis: a highly available, sharded Redis service run from ZooKeeper, as a library.
//!
//! The parts live in their own crates and are re-exported here under their role names.

pub use zedis_controller as controller;
pub use zedis_coord as coord;
pub use zedis_topology as topology;
