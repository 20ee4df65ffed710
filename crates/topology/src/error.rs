use crate::group::GroupId;

/// Why a topology change or record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("invalid server address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("no group {0}")]
    UnknownGroup(GroupId),
    #[error("server {addr} is not in any group")]
    UnknownServer { addr: String },
    #[error("server {addr} is already in group {group}")]
    ServerInUse { addr: String, group: GroupId },
    #[error("server {addr} is listed twice")]
    DuplicateServer { addr: String },
    #[error("server {addr} is the master of group {group}; fail over first")]
    IsMaster { addr: String, group: GroupId },
    #[error("a group needs at least one server")]
    EmptyGroup,
    #[error("a cluster needs at least one group")]
    NoGroups,
    #[error("server {addr} is not a replica of group {group}")]
    NotAReplica { addr: String, group: GroupId },
    #[error("invalid settings: {0}")]
    BadSettings(String),
    #[error("invalid topology record: {0}")]
    BadRecord(String),
    #[error(transparent)]
    Migration(#[from] crate::migration::MigrationError),
    #[error(transparent)]
    Rebalance(#[from] crate::rebalance::RebalanceError),
}
