use std::time::Duration;

use zedis_topology::TopologyError;

/// Errors from talking to ZooKeeper, named after what the caller must do about them.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("ZooKeeper at {hosts} is unreachable (no session within {after:?})")]
    Unreachable { hosts: String, after: Duration },
    #[error("ZooKeeper session expired")]
    SessionExpired,
    #[error("ZooKeeper connection lost")]
    ConnectionLoss,
    #[error("cluster {cluster:?} does not exist under {root} (create it with `zedis cluster create`)")]
    NoCluster { cluster: String, root: String },
    #[error("cluster {cluster:?} already exists under {root}")]
    ClusterExists { cluster: String, root: String },
    /// A compare-and-set lost against another writer: re-read and decide again.
    #[error("{path} was changed by someone else (expected version {expected})")]
    Conflict { path: String, expected: i32 },
    #[error("bad record at {path}: {source}")]
    BadRecord { path: String, source: TopologyError },
    #[error("invalid path or name: {0}")]
    BadPath(String),
    #[error("ZooKeeper error at {path}: {source}")]
    Zk { path: String, source: zookeeper_client::Error },
}

impl CoordError {
    pub(crate) fn zk(path: &str, source: zookeeper_client::Error) -> CoordError {
        match source {
            zookeeper_client::Error::SessionExpired => CoordError::SessionExpired,
            zookeeper_client::Error::ConnectionLoss => CoordError::ConnectionLoss,
            source => CoordError::Zk { path: path.to_string(), source },
        }
    }

    /// The session is gone for good: build a new client.
    pub fn is_session_lost(&self) -> bool {
        matches!(self, CoordError::SessionExpired)
            || matches!(self, CoordError::Zk { source: zookeeper_client::Error::ClientClosed, .. })
    }
}

pub type Result<T> = std::result::Result<T, CoordError>;
