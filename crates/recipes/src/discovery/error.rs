//! Errors of the discovery recipes, named after what the caller can do about them.

use zedis_coord::CoordError;

/// What went wrong in discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Connecting, or a bad root / name (from `zedis-coord`).
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A ZooKeeper operation failed. Transient ones (connection loss) are worth retrying;
    /// see [`DiscoveryError::is_session_lost`] for the ones that need a new session.
    #[error("ZooKeeper error at {path}: {source}")]
    Zk { path: String, source: zookeeper_client::Error },
    /// The instance given to `register` or `update` cannot be registered.
    #[error("invalid service instance: {0}")]
    InvalidInstance(String),
    /// An instance record in ZooKeeper is not a service instance (written by someone else).
    #[error("bad instance record at {path}: {reason}")]
    BadRecord { path: String, reason: String },
    /// Another live session owns the node of this instance id: two processes claim one id.
    #[error("instance {id:?} of service {service:?} is already registered by another session (0x{owner:x})")]
    IdTaken { service: String, id: String, owner: i64 },
    /// The registration was deregistered, or its background task ended.
    #[error("the registration of {service}/{id} has ended")]
    Ended { service: String, id: String },
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl DiscoveryError {
    pub(crate) fn zk(path: &str, source: zookeeper_client::Error) -> DiscoveryError {
        DiscoveryError::Zk { path: path.to_string(), source }
    }

    /// The session this happened in is gone for good; a new one is needed (the
    /// [`SessionKeeper`](crate::discovery::SessionKeeper) opens it by itself).
    pub fn is_session_lost(&self) -> bool {
        match self {
            DiscoveryError::Coord(e) => e.is_session_lost(),
            DiscoveryError::Zk { source, .. } => matches!(
                source,
                zookeeper_client::Error::SessionExpired
                    | zookeeper_client::Error::ClientClosed
                    | zookeeper_client::Error::AuthFailed
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = DiscoveryError> = std::result::Result<T, E>;
