//! Errors of the queue and topic operations.

/// Why a queue or topic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis (or the zedis proxy) answered with an error, or the connection failed. (Not
    /// exposed as `source`: its text is in the message already, and error reports that
    /// print the chain would repeat it.)
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// A reply did not have the shape the command promises (a proxy or server bug, or a
    /// key of another type under the queue's name).
    #[error("unexpected reply to {command}: {detail}")]
    Reply { command: &'static str, detail: String },
    #[error("invalid queue or topic name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("invalid queue options: {0}")]
    BadOptions(String),
    #[error("invalid message id {0:?} (expected MILLISECONDS-SEQUENCE, e.g. 1700000000000-0)")]
    BadId(String),
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> QueueError {
        QueueError::Redis(e)
    }
}

impl QueueError {
    pub(crate) fn reply(command: &'static str, detail: impl Into<String>) -> QueueError {
        QueueError::Reply { command, detail: detail.into() }
    }

    /// Whether Redis said the consumer group (or its stream) does not exist: the stream was
    /// deleted, or the data was lost (a restart without persistence, a failover to an empty
    /// replica). The queue recreates its group and retries once.
    pub fn is_missing_group(&self) -> bool {
        match self {
            QueueError::Redis(e) => e.code() == Some("NOGROUP"),
            _ => false,
        }
    }
}
