//! Errors of the lock recipes, named after what the caller must do about them.

use std::time::Duration;

use zedis_coord::CoordError;

/// Why a lock operation failed. A lock that is merely not acquired in time is not an error:
/// `try_lock` returns `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock name or root is not usable as a ZooKeeper path.
    #[error("{0}")]
    BadName(String),
    /// The session is gone for good: nothing can be held on it any more. Build a new
    /// [`zedis_coord::Zk`].
    #[error("ZooKeeper session expired or closed")]
    SessionLost,
    /// Our contender node vanished while we queued: someone (an operator) deleted it.
    #[error("contender node {path} was deleted by someone else while waiting")]
    ContenderDeleted { path: String },
    /// `write()` on a reentrant read-write lock whose read half this instance holds: it would
    /// wait for itself forever.
    #[error("lock {name:?}: cannot take the write lock while this instance holds the read lock")]
    UpgradeNotSupported { name: String },
    /// Release could not reach ZooKeeper in time; the node goes when the session ends (or
    /// when the delete, still retried in the background, gets through).
    #[error("could not delete {path} within {after:?} (ZooKeeper unreachable); it goes when the session ends")]
    ReleaseTimedOut { path: String, after: Duration },
    /// Any other ZooKeeper failure.
    #[error("ZooKeeper error at {path}: {source}")]
    Zk { path: String, source: zookeeper_client::Error },
}

impl LockError {
    /// Maps a client error at `path`; session ends become [`LockError::SessionLost`].
    pub(crate) fn zk(path: &str, source: zookeeper_client::Error) -> LockError {
        use zookeeper_client::Error as E;
        match source {
            E::SessionExpired | E::ClientClosed | E::AuthFailed | E::SessionMoved => LockError::SessionLost,
            source => LockError::Zk { path: path.to_string(), source },
        }
    }

    /// Whether the session is gone for good (build a new client).
    pub fn is_session_lost(&self) -> bool {
        matches!(self, LockError::SessionLost)
    }
}

impl From<CoordError> for LockError {
    fn from(e: CoordError) -> LockError {
        match e {
            CoordError::BadPath(msg) => LockError::BadName(msg),
            e if e.is_session_lost() => LockError::SessionLost,
            CoordError::Zk { path, source } => LockError::zk(&path, source),
            CoordError::ConnectionLoss => {
                LockError::Zk { path: String::new(), source: zookeeper_client::Error::ConnectionLoss }
            }
            other => LockError::Zk {
                path: String::new(),
                source: zookeeper_client::Error::UnexpectedError(other.to_string()),
            },
        }
    }
}
