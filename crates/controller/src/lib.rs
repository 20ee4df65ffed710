//! The zedis controller: every instance probes every Redis server and publishes what it
//! sees; one elected leader turns the topology in ZooKeeper and those observations into
//! actions (`planner`, pure) and carries them out (`reconciler`, thin I/O).

pub mod admin;
pub mod chunk_copy;
pub mod controller;
pub mod info;
pub mod migrator;
pub mod mirrors;
pub mod observer;
pub mod planner;
pub mod reconciler;
pub mod server_ops;
pub mod switchover;

pub use controller::{default_id, run, ControllerOptions};
pub use observer::Observer;
pub use planner::{plan, Action, Plan, PlanInput};
