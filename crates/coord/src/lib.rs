//! Everything zedis says to ZooKeeper: sessions, the path layout, the topology record,
//! leader election, the observers' board, the operator request queue and the event history.
//!
//! Nothing here decides anything about Redis; it stores and fetches what others decide.

pub mod election;
pub mod error;
pub mod event_log;
pub mod leader_record;
pub mod observer_board;
pub mod paths;
pub mod request_queue;
pub mod session;
pub mod topology_store;

pub use election::Candidate;
pub use error::{CoordError, Result};
pub use event_log::EventLog;
pub use leader_record::LeaderRecord;
pub use observer_board::{ObserverBoard, PostedReport};
pub use paths::ClusterPaths;
pub use request_queue::{PendingRequest, RequestError, RequestQueue};
pub use session::{Zk, ZkOptions};
pub use topology_store::{TopologyStore, Versioned};
pub use zookeeper_client::{SessionState, StateWatcher};
