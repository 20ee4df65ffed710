//! [`ConfigError`]: what can go wrong in the configuration center, named after what the caller
//! must do about it.

use std::path::PathBuf;

use zedis_coord::CoordError;

use super::format::Format;

/// Errors of the configuration center.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// ZooKeeper failed (unreachable, session expired, connection lost, ...).
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A namespace, key or label that cannot be used.
    #[error("{0}")]
    BadName(String),
    /// The value does not parse as its declared format.
    #[error("value is not valid {format}: {reason}")]
    InvalidValue { format: Format, reason: String },
    /// The value (or its record) is larger than ZooKeeper can hold comfortably.
    #[error("value is too large: {size} bytes (the limit is {limit})")]
    TooLarge { size: usize, limit: usize },
    /// A compare-and-set lost: the key is at `actual`, not at the `expected` version.
    #[error("{namespace}/{key} is at version {actual}, not {expected}: read it again and retry")]
    VersionConflict { namespace: String, key: String, expected: u64, actual: u64 },
    /// The key does not exist (or is deleted).
    #[error("{namespace}/{key} not found")]
    NotFound { namespace: String, key: String },
    /// Rollback to a version that the history no longer (or never) had.
    #[error("{namespace}/{key} has no version {version} in its history")]
    NoSuchVersion { namespace: String, key: String, version: u64 },
    /// A release was attempted while a canary of the key is in progress.
    #[error("{namespace}/{key} has a canary (version {version}) in progress: promote or abandon it first")]
    CanaryActive { namespace: String, key: String, version: u64 },
    /// Promote or abandon without a canary.
    #[error("{namespace}/{key} has no canary in progress")]
    NoCanary { namespace: String, key: String },
    /// A record in ZooKeeper that does not parse.
    #[error("bad config record at {path}: {reason}")]
    BadRecord { path: String, reason: String },
    /// Too many concurrent writers kept changing the key under us.
    #[error("{namespace}/{key} kept changing under {attempts} attempts to write it; try again")]
    Contention { namespace: String, key: String, attempts: u32 },
    /// ZooKeeper cannot be reached and there is no local snapshot to serve the read from.
    #[error("ZooKeeper is unreachable and there is no local snapshot of namespace {namespace:?}")]
    Unavailable { namespace: String },
    /// A write while ZooKeeper is unreachable (the client serves reads from snapshots only).
    #[error("ZooKeeper is unreachable: cannot write (reads are served from local snapshots)")]
    Offline,
    /// The local snapshot could not be read or written.
    #[error("local snapshot {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },
}

impl ConfigError {
    /// Maps an error of the ZooKeeper client the way `zedis-coord` does.
    pub(crate) fn zk(path: &str, source: zookeeper_client::Error) -> ConfigError {
        ConfigError::Coord(match source {
            zookeeper_client::Error::SessionExpired => CoordError::SessionExpired,
            zookeeper_client::Error::ConnectionLoss => CoordError::ConnectionLoss,
            source => CoordError::Zk { path: path.to_string(), source },
        })
    }

    /// The session is gone for good: a new one is needed.
    pub fn is_session_lost(&self) -> bool {
        matches!(self, ConfigError::Coord(e) if e.is_session_lost())
    }

    /// ZooKeeper could not be reached (now): a read may be served from a local snapshot.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ConfigError::Offline => true,
            ConfigError::Coord(e) => {
                e.is_session_lost() || matches!(e, CoordError::Unreachable { .. } | CoordError::ConnectionLoss)
            }
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ConfigError>;
