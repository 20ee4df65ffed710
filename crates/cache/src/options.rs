//! How a [`Cache`](crate::Cache) and its [`NearCache`](crate::NearCache) behave.

use std::time::Duration;

use crate::error::InvalidOptions;

/// Options of a [`Cache`](crate::Cache). `Default` gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Prefix of every Redis key the cache writes; default `zedis:cache:`. It must not contain
    /// `{` or `}`: the cache puts the key's hash tag after it (see
    /// [`Cache::get_or_load`](crate::Cache::get_or_load)).
    pub key_prefix: String,
    /// Each written entry lives `ttl * (1 - ttl_jitter * u)` for a uniform `u` in `[0, 1)`, so
    /// keys written together do not expire together; default `0.1`. `0` turns jitter off.
    /// Jitter only ever shortens the TTL: the caller's `ttl` is the longest an entry is fresh.
    pub ttl_jitter: f64,
    /// XFetch's `beta`: how eagerly a caller recomputes a still-fresh entry before it expires
    /// (the chance grows as expiry nears, faster for values that took longer to compute);
    /// default `1.0`. `0` turns early recompute off.
    pub beta: f64,
    /// How long a loader's lease (the lock that makes it the only loader of a key across all
    /// processes) lasts; default 10 s. It must be longer than the slowest load: a loader that
    /// outlives its lease does not get to write its value (another may have taken over).
    pub lock_ttl: Duration,
    /// How long a caller that finds another process loading waits for that value before it
    /// takes the stale copy (if there is one) or loads by itself; default 2 s. `0` means: serve
    /// a stale copy at once, and without one load at once.
    pub wait_for_loader: Duration,
    /// How often a waiting caller looks for the value; default 20 ms.
    pub poll_interval: Duration,
    /// How long a "not found" (the loader returned `None`) is cached; default 30 s.
    pub negative_ttl: Duration,
    /// How long an entry is kept after its logical expiry, to be served while it is being
    /// recomputed (or when the loader is slow); default 60 s.
    pub keep_stale_for: Duration,
    /// The cross-process single flight (lease lock) and in-process coalescing; default `true`.
    /// `false` is plain cache-aside (every caller that misses loads), for comparisons.
    pub stampede_protection: bool,
    /// Concurrent callers of one key in this process share one trip to Redis and one load;
    /// default `true`. Only matters with `stampede_protection`.
    pub coalesce_local: bool,
    /// Channel on which every write and invalidation is announced; default
    /// `zedis:cache:invalidate`. Near caches listen to it; any client may publish a key on it.
    pub invalidation_channel: String,
    /// Publish a message on `invalidation_channel` after each write and invalidation; default
    /// `true`. Turn off only if no process uses a near cache.
    pub publish_invalidations: bool,
    /// Longest wait for any one Redis command; default 1 s.
    pub redis_timeout: Duration,
    /// When Redis fails or times out, call the loader and return its value (uncached) instead
    /// of failing; default `true`: the cache is an accelerator, not a dependency.
    pub load_on_redis_error: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            key_prefix: "zedis:cache:".to_string(),
            ttl_jitter: 0.1,
            beta: 1.0,
            lock_ttl: Duration::from_secs(10),
            wait_for_loader: Duration::from_secs(2),
            poll_interval: Duration::from_millis(20),
            negative_ttl: Duration::from_secs(30),
            keep_stale_for: Duration::from_secs(60),
            stampede_protection: true,
            coalesce_local: true,
            invalidation_channel: "zedis:cache:invalidate".to_string(),
            publish_invalidations: true,
            redis_timeout: Duration::from_secs(1),
            load_on_redis_error: true,
        }
    }
}

impl CacheOptions {
    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        if self.key_prefix.contains(['{', '}']) {
            return Err(InvalidOptions::new("key_prefix", "must not contain '{' or '}'"));
        }
        if !(0.0..=1.0).contains(&self.ttl_jitter) {
            return Err(InvalidOptions::new("ttl_jitter", "must be within 0.0..=1.0"));
        }
        if !self.beta.is_finite() || self.beta < 0.0 {
            return Err(InvalidOptions::new("beta", "must be a finite number >= 0"));
        }
        if self.lock_ttl < Duration::from_millis(1) {
            return Err(InvalidOptions::new("lock_ttl", "must be at least 1 ms"));
        }
        if self.poll_interval.is_zero() {
            return Err(InvalidOptions::new("poll_interval", "must not be zero"));
        }
        if self.redis_timeout.is_zero() {
            return Err(InvalidOptions::new("redis_timeout", "must not be zero"));
        }
        if self.invalidation_channel.is_empty() {
            return Err(InvalidOptions::new("invalidation_channel", "must not be empty"));
        }
        Ok(())
    }
}

/// Options of the in-process [`NearCache`](crate::NearCache).
#[derive(Clone, Debug)]
pub struct NearCacheOptions {
    /// At most this many entries; default 10 000.
    pub max_entries: usize,
    /// At most this many bytes (keys, stored values and a fixed per-entry overhead); default
    /// 64 MiB. An entry larger than this is never kept.
    pub max_bytes: usize,
    /// An entry is dropped this long after it was put in, even if still fresh in Redis; default
    /// 60 s. It bounds how stale a value can be if an invalidation message is lost while the
    /// subscription stays up (a publisher that failed to publish).
    pub max_ttl: Duration,
    /// How often the subscription connection is pinged; default 1 s.
    pub heartbeat_interval: Duration,
    /// A ping unanswered for this long counts as a lost connection (the near cache is cleared);
    /// default 1 s.
    pub heartbeat_timeout: Duration,
    /// First delay before reconnecting the subscription; doubled after each failure.
    /// Default 50 ms.
    pub reconnect_min_delay: Duration,
    /// Longest delay between reconnection attempts; default 2 s.
    pub reconnect_max_delay: Duration,
}

impl Default for NearCacheOptions {
    fn default() -> Self {
        NearCacheOptions {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            max_ttl: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(1),
            reconnect_min_delay: Duration::from_millis(50),
            reconnect_max_delay: Duration::from_secs(2),
        }
    }
}

impl NearCacheOptions {
    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        if self.max_entries == 0 {
            return Err(InvalidOptions::new("max_entries", "must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(InvalidOptions::new("max_bytes", "must be at least 1"));
        }
        if self.max_ttl.is_zero() {
            return Err(InvalidOptions::new("max_ttl", "must not be zero"));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout.is_zero() {
            return Err(InvalidOptions::new("heartbeat_interval", "heartbeat interval and timeout must not be zero"));
        }
        if self.reconnect_min_delay.is_zero() || self.reconnect_min_delay > self.reconnect_max_delay {
            return Err(InvalidOptions::new("reconnect_min_delay", "must be non-zero and at most reconnect_max_delay"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        CacheOptions::default().validate().expect("cache defaults");
        NearCacheOptions::default().validate().expect("near cache defaults");
    }

    #[test]
    fn bad_options_name_the_field() {
        let cases: Vec<(&str, CacheOptions)> = vec![
            ("key_prefix", CacheOptions { key_prefix: "a{b".into(), ..Default::default() }),
            ("ttl_jitter", CacheOptions { ttl_jitter: 1.5, ..Default::default() }),
            ("ttl_jitter", CacheOptions { ttl_jitter: -0.1, ..Default::default() }),
            ("beta", CacheOptions { beta: f64::NAN, ..Default::default() }),
            ("beta", CacheOptions { beta: -1.0, ..Default::default() }),
            ("lock_ttl", CacheOptions { lock_ttl: Duration::ZERO, ..Default::default() }),
            ("poll_interval", CacheOptions { poll_interval: Duration::ZERO, ..Default::default() }),
            ("redis_timeout", CacheOptions { redis_timeout: Duration::ZERO, ..Default::default() }),
            ("invalidation_channel", CacheOptions { invalidation_channel: String::new(), ..Default::default() }),
        ];
        for (field, options) in cases {
            let err = options.validate().expect_err(field);
            assert_eq!(err.field, field);
        }
        let err = NearCacheOptions { max_bytes: 0, ..Default::default() }.validate().expect_err("max_bytes");
        assert_eq!(err.field, "max_bytes");
    }
}
