//! Errors of the cache.

use std::convert::Infallible;
use std::time::Duration;

/// What can go wrong in a cache operation. `E` is the loader's error type; operations that
/// take no loader use the default, [`Infallible`].
///
/// With [`CacheOptions::load_on_redis_error`](crate::CacheOptions::load_on_redis_error) (the
/// default), `get_or_load` does not return `Redis` or `Timeout`: it loads instead.
#[derive(Debug, thiserror::Error)]
pub enum CacheError<E = Infallible> {
    /// The loader returned an error. Nothing was cached.
    #[error("loader failed: {0}")]
    Loader(#[source] E),
    /// This call joined a load of the same key already running in this process, and that load
    /// failed; `message` is its error. Nothing was cached.
    #[error("the load this call waited for failed: {message}")]
    SharedLoadFailed {
        /// The failed loader's error, as text.
        message: String,
    },
    /// Redis answered with an error or the connection failed.
    #[error("redis {op} for {key:?} failed: {source}")]
    Redis {
        /// The operation (`GET`, `lease`, `write`, ...).
        op: &'static str,
        /// The Redis key.
        key: String,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer within [`CacheOptions::redis_timeout`](crate::CacheOptions::redis_timeout).
    #[error("redis {op} for {key:?} did not answer within {timeout:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The Redis key.
        key: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The value could not be serialized to JSON.
    #[error("cannot encode the value for {key:?}: {source}")]
    Encode {
        /// The cache key.
        key: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored (or shared) value does not decode as the requested type.
    #[error("the value stored for {key:?} does not decode as the requested type: {source}")]
    Decode {
        /// The cache key.
        key: String,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The key cannot be used (see [`Cache::get_or_load`](crate::Cache::get_or_load)).
    #[error("invalid cache key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why.
        reason: &'static str,
    },
}

impl<E> CacheError<E> {
    /// True for the errors that mean Redis was unusable (an error or a timeout).
    pub fn is_redis_failure(&self) -> bool {
        matches!(self, CacheError::Redis { .. } | CacheError::Timeout { .. })
    }
}

impl CacheError<Infallible> {
    /// Turns an error that cannot carry a loader error into one of any loader error type.
    pub(crate) fn widen<F>(self) -> CacheError<F> {
        match self {
            CacheError::Loader(never) => match never {},
            CacheError::SharedLoadFailed { message } => CacheError::SharedLoadFailed { message },
            CacheError::Redis { op, key, source } => CacheError::Redis { op, key, source },
            CacheError::Timeout { op, key, timeout } => CacheError::Timeout { op, key, timeout },
            CacheError::Encode { key, source } => CacheError::Encode { key, source },
            CacheError::Decode { key, source } => CacheError::Decode { key, source },
            CacheError::InvalidKey { key, reason } => CacheError::InvalidKey { key, reason },
        }
    }
}

/// An option that is out of range; `field` names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache option {field}: {reason}")]
pub struct InvalidOptions {
    /// The option's field name.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl InvalidOptions {
    pub(crate) fn new(field: &'static str, reason: &'static str) -> InvalidOptions {
        InvalidOptions { field, reason }
    }
}
