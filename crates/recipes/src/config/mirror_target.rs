//! [`MirrorTarget`]: where the config mirror writes — any Redis-speaking endpoint that can run
//! one command and return its reply.
//!
//! Why a trait and not a type: the controller writes through `zedis_proxy::Cluster` (routes
//! each command straight to the master of its slot, no proxy hop, and knows the topology epoch,
//! which tells the mirror about failovers), while `zedis config mirror --redis URL` writes
//! through a [`ConnectionManager`] to a zedis proxy or a single Redis. This crate does not
//! depend on the proxy; the controller wraps `Cluster` in a small newtype implementing this
//! trait (converting its `Frame` replies to [`redis::Value`]).
//!
//! Every command the mirror sends touches keys of one namespace only, and the two keys a
//! script touches share a hash slot (see [`meta_key`](super::mirror_plan::meta_key)), so a
//! sharded target can route each command to one group.

use std::future::Future;

use redis::aio::ConnectionManager;

/// Why a command failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The server answered with an error reply, e.g. `NOSCRIPT No matching script`.
    #[error("{0}")]
    Reply(String),
    /// The command did not get an answer (connection refused or lost, timeout, no route).
    #[error("{0}")]
    Unavailable(String),
}

impl TargetError {
    /// The reply's error code is `code` (e.g. `NOSCRIPT`).
    pub fn is_code(&self, code: &str) -> bool {
        matches!(self, TargetError::Reply(message) if message.split_whitespace().next() == Some(code))
    }
}

/// A Redis-speaking endpoint the mirror writes to.
pub trait MirrorTarget: Send + Sync + 'static {
    /// Runs one command (`args[0]` is its name) and returns the reply; an error reply is
    /// [`TargetError::Reply`].
    fn query(&self, args: Vec<Vec<u8>>) -> impl Future<Output = Result<redis::Value, TargetError>> + Send;

    /// A number that changes when the target's masters may have changed (e.g. the topology
    /// epoch, or better a generation of its masters), if it has one. A change means a
    /// failover may have happened, and a promoted replica may lack the mirror's last writes:
    /// the mirror then compares everything again.
    fn epoch(&self) -> Option<u64> {
        None
    }
}

impl MirrorTarget for ConnectionManager {
    fn query(&self, args: Vec<Vec<u8>>) -> impl Future<Output = Result<redis::Value, TargetError>> + Send {
        // Clones share the one multiplexed connection.
        let mut conn = self.clone();
        async move { query_with(&mut conn, args).await }
    }
}

/// Runs one command on any `redis` crate connection, with the mirror's error split; what a
/// [`MirrorTarget`] over such a connection (e.g. `zedis::Cluster`) does.
pub async fn query_with<C>(conn: &mut C, args: Vec<Vec<u8>>) -> Result<redis::Value, TargetError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut cmd = redis::Cmd::new();
    for arg in &args {
        cmd.arg(arg.as_slice());
    }
    match cmd.query_async::<redis::Value>(conn).await {
        Ok(redis::Value::ServerError(e)) => {
            Err(TargetError::Reply(format!("{} {}", e.code(), e.details().unwrap_or_default())))
        }
        Ok(value) => Ok(value),
        Err(e) => Err(from_redis(&e)),
    }
}

fn from_redis(e: &redis::RedisError) -> TargetError {
    match e.code() {
        Some(code) => TargetError::Reply(format!("{code} {}", e.detail().unwrap_or_default())),
        None => TargetError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        assert!(TargetError::Reply("NOSCRIPT No matching script".into()).is_code("NOSCRIPT"));
        assert!(!TargetError::Reply("ERR NOSCRIPT".into()).is_code("NOSCRIPT"));
        assert!(!TargetError::Unavailable("NOSCRIPT".into()).is_code("NOSCRIPT"));
    }
}
