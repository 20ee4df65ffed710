//! Pure data of a zedis cluster: hash slots, groups, servers, epochs, settings, events and
//! observations, with their JSON records. No I/O: everything here is decided from values.

pub mod addr;
pub mod admin;
pub mod error;
pub mod event;
pub mod group;
pub mod migration;
pub mod migration_progress;
pub mod migration_summary;
pub mod observation;
pub mod rebalance;
pub mod settings;
pub mod slot;
pub mod slot_map;
pub mod topology;

pub use addr::{parse_addr, split_addr};
pub use admin::{AdminOp, AdminRequest, Outcome};
pub use error::TopologyError;
pub use event::{now_ms, Event, EventKind};
pub use group::{Group, GroupId, Server, DEFAULT_PRIORITY};
pub use migration::{
    Markers, Migration, MigrationAction, MigrationError, MigrationId, MigrationState, SlotMove, SlotRoute,
};
pub use migration_progress::MigrationProgress;
pub use observation::{ObserverReport, Role, ServerObservation};
pub use rebalance::{plan_rebalance, RebalanceError, RebalancePlan};
pub use settings::ClusterSettings;
pub use slot::{crc16, hash_tag, key_slot, Slot, SLOT_COUNT};
pub use slot_map::{SlotMap, SlotRange};
pub use topology::{GroupSpec, Topology};
