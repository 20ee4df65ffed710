//! Errors of the election recipe, and why a candidacy ends.

use std::fmt;

use zedis_coord::CoordError;

/// Why a candidacy (and any leadership it held) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `resign()` was called, or the latch was dropped.
    Resigned,
    /// The ZooKeeper session expired or was closed: the candidate node went with it. Stand
    /// again with a new session ([`super::LeaderLatch::rejoin`]).
    SessionLost,
    /// Someone else deleted the candidate node (an operator, or a tool cleaning up).
    NodeDeleted,
    /// The selector's term ended because the connection stayed suspended longer than the grace.
    SteppedDown,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndReason::Resigned => "resigned",
            EndReason::SessionLost => "the ZooKeeper session expired or was closed",
            EndReason::NodeDeleted => "the candidate node was deleted by someone else",
            EndReason::SteppedDown => "stepped down: the ZooKeeper connection stayed suspended longer than the grace",
        })
    }
}

/// Errors of [`super::LeaderLatch`], [`super::LeaderSelector`] and the observers.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("invalid election options: {0}")]
    BadOptions(String),
    /// The candidacy is over; see the reason for what to do.
    #[error("candidacy in election {election:?} ended: {reason}")]
    Ended { election: String, reason: EndReason },
    /// A node in the election directory does not hold a zedis candidate record.
    #[error("bad candidate record at {path}: {source}")]
    BadRecord { path: String, source: serde_json::Error },
    #[error(transparent)]
    Coord(#[from] CoordError),
}

impl ElectionError {
    /// The session is gone for good: build a new [`zedis_coord::Zk`] to stand again.
    pub fn is_session_lost(&self) -> bool {
        match self {
            ElectionError::Ended { reason, .. } => *reason == EndReason::SessionLost,
            ElectionError::Coord(e) => e.is_session_lost(),
            _ => false,
        }
    }
}

/// Maps a client error the way `zedis_coord` does, so callers can match on
/// [`CoordError::SessionExpired`] and [`CoordError::ConnectionLoss`] whatever made the call.
pub(crate) fn zk_error(path: &str, source: zookeeper_client::Error) -> CoordError {
    match source {
        zookeeper_client::Error::SessionExpired => CoordError::SessionExpired,
        zookeeper_client::Error::ConnectionLoss => CoordError::ConnectionLoss,
        source => CoordError::Zk { path: path.to_string(), source },
    }
}
