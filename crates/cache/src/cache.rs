//! [`Cache`]: cache-aside over Redis (or the zedis proxy) with stampede protection. The
//! decisions are in [`decision`](crate::decision); this file reads and writes Redis and does
//! what they say.

use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{RedisResult, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::decision::{
    self, freshness, plan_contended, plan_poll, plan_read, ContendedAction, Freshness, PollAction, PollView, ReadAction,
};
use crate::entry::Entry;
use crate::envelope::Envelope;
use crate::error::{CacheError, InvalidOptions};
use crate::inflight::{self, Inflight, Join, Leader, Outcome};
use crate::invalidation::InvalidationMessage;
use crate::keys::{self, CacheKeys};
use crate::lease::Lease;
use crate::near_cache::{NearCache, NearShared, Ticket};
use crate::options::{CacheOptions, NearCacheOptions};
use crate::scripts;
use crate::stats::{bump, CacheStats, Counters};
use crate::subscriber::Subscriber;

/// Cache-aside helpers over a Redis connection: [`get_or_load`](Cache::get_or_load) with TTL
/// jitter, early recompute (XFetch), a cross-process single flight and negative caching;
/// [`invalidate`](Cache::invalidate) and [`set`](Cache::set); optionally an in-process
/// [`NearCache`] in front.
///
/// `C` is any async Redis connection that can be cloned to share it, typically a
/// [`ConnectionManager`] to the zedis proxy (which reconnects by itself) or to one Redis.
/// Clones of a `Cache` share everything (connection, near cache, statistics); the near
/// cache's subscription task stops when the last clone is dropped.
///
/// Every write and invalidation is announced on
/// [`CacheOptions::invalidation_channel`], so the near caches of all processes drop the
/// entry. All entries are JSON (see the crate docs for the layout), readable by any client.
pub struct Cache<C = ConnectionManager> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Cache<C> {
    fn clone(&self) -> Self {
        Cache { inner: self.inner.clone() }
    }
}

struct Inner<C> {
    conn: C,
    options: CacheOptions,
    /// Identifies this cache in invalidation messages and lease tokens.
    origin: String,
    near: Option<Arc<NearShared>>,
    // Held for its Drop, which stops the subscription task.
    _subscriber: Option<Subscriber>,
    inflight: Inflight,
    counters: Counters,
}

/// How a loaded value is written.
enum Write<C: ConnectionLike + Clone + Send + 'static> {
    /// Under this lease (it is ended by the write).
    Lease(Lease<C>),
    /// Unconditionally (protection off).
    Plain,
    /// Not at all: another caller holds the lease, or Redis is failing.
    Skip,
}

/// The outcome of one caller's resolution: the value and the entry it came from, whose bytes
/// are what local followers get.
struct Resolved<V> {
    value: Option<V>,
    bytes: Bytes,
}

/// An entry read from Redis: the decoded envelope and its bytes.
type Read<V> = Option<(Envelope<V>, Bytes)>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl<C> Cache<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A cache without a near cache.
    pub fn new(conn: C, options: CacheOptions) -> Result<Cache<C>, InvalidOptions> {
        options.validate()?;
        Ok(Cache { inner: Arc::new(Inner::new(conn, options, new_origin(), None, None)) })
    }

    /// A cache with a near cache in front. `pubsub` says where to subscribe to invalidations
    /// (the same proxy or server as `conn`); the subscription runs on a connection of its own
    /// (RESP3) and the near cache serves only while it is up (see [`NearCache`]). It returns at
    /// once; until the first subscription is confirmed every read goes to Redis.
    ///
    /// # Panics
    /// If called outside a Tokio runtime (it spawns the subscription task).
    pub fn with_near_cache(
        conn: C,
        pubsub: &redis::Client,
        options: CacheOptions,
        near_options: NearCacheOptions,
    ) -> Result<Cache<C>, InvalidOptions> {
        options.validate()?;
        near_options.validate()?;
        let near = Arc::new(NearShared::new(&near_options));
        let origin = new_origin();
        let subscriber =
            Subscriber::spawn(pubsub, options.invalidation_channel.clone(), origin.clone(), near.clone(), near_options);
        Ok(Cache { inner: Arc::new(Inner::new(conn, options, origin, Some(near), Some(subscriber))) })
    }

    /// The value of `key`: from the near cache or Redis while fresh, otherwise from `loader`,
    /// whose result is cached for `ttl` (shortened by jitter) or, if it is `None` (not
    /// found), for [`CacheOptions::negative_ttl`].
    ///
    /// With [`CacheOptions::stampede_protection`] (the default) at most one caller at a time,
    /// across all processes, loads a key: it holds the key's lease while it loads. Callers in
    /// this process that ask at the same time share its result; callers elsewhere poll for it
    /// up to [`CacheOptions::wait_for_loader`], then serve the stale copy if there is one, or
    /// load without writing. A fresh entry is refreshed a little before it expires by one
    /// caller (XFetch), while the others keep serving it.
    ///
    /// Keys: any non-empty string up to 4 KiB. Without braces it is used as the hash tag
    /// (`user:42` is stored at `{prefix}{user:42}`); with braces it must contain a hash tag,
    /// which is kept (`{user:42}:orders` → `{prefix}{user:42}:orders`), so related keys can
    /// share a slot.
    ///
    /// # Errors
    /// The loader's error as [`CacheError::Loader`] (or [`CacheError::SharedLoadFailed`] in
    /// callers that shared a failed load); [`CacheError::InvalidKey`]; Redis failures only
    /// when [`CacheOptions::load_on_redis_error`] is off. A stored entry that does not decode
    /// as `V` is treated as missing and overwritten.
    ///
    /// # Cancellation safety
    /// Safe to cancel (drop) at any point: a held lease is released from a spawned task (or
    /// expires after [`CacheOptions::lock_ttl`]); callers sharing this call's load start over
    /// without it; once the loader has returned, the write and its invalidation message are
    /// completed by a spawned task even if this call is dropped. A lease acquired in Redis
    /// whose reply never arrived (a timeout) is not released and simply expires.
    pub async fn get_or_load<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        loader: F,
    ) -> Result<Option<V>, CacheError<E>>
    where
        V: Serialize + DeserializeOwned,
        E: Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let keys = layout(&self.inner.options.key_prefix, key)?;
        let inner = &self.inner;
        if let Some(value) = inner.near_hit::<V>(&keys) {
            return Ok(value);
        }
        if !inner.options.stampede_protection {
            return inner.resolve_unprotected(&keys, ttl, loader).await.map(|r| r.value);
        }
        if !inner.options.coalesce_local {
            return inner.resolve(&keys, ttl, loader, &mut None).await.map(|r| r.value);
        }
        let leader = loop {
            match inner.inflight.join(&keys.value) {
                Join::Leader(leader) => break leader,
                Join::Follower(slot) => {
                    bump(&inner.counters.coalesced);
                    match inflight::follow(slot).await {
                        Some(Outcome::Done(bytes)) => return decode_value(&keys.value, &bytes),
                        Some(Outcome::Failed(message)) => {
                            return Err(CacheError::SharedLoadFailed { message: message.to_string() })
                        }
                        // The leader was cancelled: join again (maybe as the leader).
                        None => continue,
                    }
                }
            }
        };
        let mut flight = Some(leader);
        let result = inner.resolve(&keys, ttl, loader, &mut flight).await;
        if let Some(leader) = flight {
            match &result {
                Ok(resolved) => leader.finish(Outcome::Done(resolved.bytes.clone())),
                Err(error) => leader.finish(Outcome::Failed(Arc::from(error.to_string()))),
            }
        }
        result.map(|r| r.value)
    }

    /// Deletes `key`'s entry, revokes any lease on it (a load in progress will not write its
    /// possibly older value), drops it from this near cache and announces it to the others.
    ///
    /// # Errors
    /// If Redis fails; also if the announcement could not be published (the entry is gone
    /// from Redis, but other near caches may serve it until their `max_ttl`), so the caller can
    /// retry.
    ///
    /// # Cancellation safety
    /// Once called, the invalidation runs to completion on a spawned task even if this future
    /// is dropped.
    pub async fn invalidate(&self, key: &str) -> Result<(), CacheError> {
        let keys = layout(&self.inner.options.key_prefix, key)?;
        let inner = self.inner.clone();
        join_detached(tokio::spawn(async move { inner.invalidate_entry(&keys).await })).await.unwrap_or_else(Err)
    }

    /// Writes `value` for `key` for `ttl` (with jitter), revoking any lease on it so a load in
    /// progress does not overwrite it, and announces the change. For write-through after the
    /// source of truth changed.
    ///
    /// # Errors
    /// As [`Cache::invalidate`], plus [`CacheError::Encode`].
    ///
    /// # Cancellation safety
    /// As [`Cache::invalidate`].
    pub async fn set<V: Serialize>(&self, key: &str, value: &V, ttl: Duration) -> Result<(), CacheError> {
        let keys = layout(&self.inner.options.key_prefix, key)?;
        let options = &self.inner.options;
        let logical = decision::jittered_ttl(ttl, options.ttl_jitter, &mut rand::rng());
        let now = now_ms();
        let envelope =
            Envelope { value: Some(value), computed_at_ms: now, delta_ms: 0, expires_at_ms: now + millis(logical) };
        let bytes = serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .map_err(|source| CacheError::Encode { key: key.to_string(), source })?;
        let physical = logical + options.keep_stale_for;
        let inner = self.inner.clone();
        join_detached(tokio::spawn(async move { inner.set_entry(&keys, bytes, physical, logical).await }))
            .await
            .unwrap_or_else(Err)
    }

    /// The entry of `key` as stored in Redis, fresh or stale, with its metadata; `None` if
    /// there is none. Does not load, and does not use the near cache.
    ///
    /// # Errors
    /// Redis failures, an invalid key, or [`CacheError::Decode`] if the entry is not a `V`.
    ///
    /// # Cancellation safety
    /// Cancel-safe (a single read).
    pub async fn peek<V: DeserializeOwned>(&self, key: &str) -> Result<Option<Entry<V>>, CacheError> {
        let keys = layout(&self.inner.options.key_prefix, key)?;
        let Some(bytes) = self.inner.get(&keys).await? else { return Ok(None) };
        let envelope = serde_json::from_slice::<Envelope<V>>(&bytes)
            .map_err(|source| CacheError::Decode { key: key.to_string(), source })?;
        Ok(Some(Entry::from_envelope(envelope)))
    }

    /// The near cache, if this cache has one.
    pub fn near_cache(&self) -> Option<NearCache> {
        self.inner.near.as_ref().map(|near| NearCache::new(near.clone(), self.inner.options.key_prefix.clone()))
    }

    /// Counters since creation.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// The options in use.
    pub fn options(&self) -> &CacheOptions {
        &self.inner.options
    }
}

impl<C> fmt::Debug for Cache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("origin", &self.inner.origin)
            .field("key_prefix", &self.inner.options.key_prefix)
            .field("near_cache", &self.inner.near.is_some())
            .field("stats", &self.inner.counters.snapshot())
            .finish()
    }
}

fn new_origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn layout<E>(prefix: &str, key: &str) -> Result<CacheKeys, CacheError<E>> {
    keys::layout(prefix, key).map_err(|reason| CacheError::InvalidKey { key: key.to_string(), reason })
}

fn decode_value<V: DeserializeOwned, E>(key: &str, bytes: &[u8]) -> Result<Option<V>, CacheError<E>> {
    serde_json::from_slice::<Envelope<V>>(bytes)
        .map(|envelope| envelope.value)
        .map_err(|source| CacheError::Decode { key: key.to_string(), source })
}

/// Awaits a spawned operation; a panic in it is reported as a Redis-level failure of the
/// operation rather than propagated.
async fn join_detached<T>(task: tokio::task::JoinHandle<T>) -> Result<T, CacheError> {
    task.await.map_err(|error| {
        tracing::error!(%error, "cache: a detached cache operation panicked");
        CacheError::Redis {
            op: "detached",
            key: String::new(),
            source: redis::RedisError::from(std::io::Error::other(error.to_string())),
        }
    })
}

impl<C> Inner<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn new(
        conn: C,
        options: CacheOptions,
        origin: String,
        near: Option<Arc<NearShared>>,
        subscriber: Option<Subscriber>,
    ) -> Inner<C> {
        Inner {
            conn,
            options,
            origin,
            near,
            _subscriber: subscriber,
            inflight: Inflight::default(),
            counters: Counters::default(),
        }
    }

    /// Runs one Redis call under the timeout, mapping failures.
    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, CacheError> {
        let timeout = self.options.redis_timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                bump(&self.counters.redis_errors);
                Err(CacheError::Redis { op, key: key.to_string(), source })
            }
            Err(_) => {
                bump(&self.counters.redis_errors);
                Err(CacheError::Timeout { op, key: key.to_string(), timeout })
            }
        }
    }

    async fn get(&self, keys: &CacheKeys) -> Result<Option<Bytes>, CacheError> {
        let mut conn = self.conn.clone();
        let got: Option<Vec<u8>> =
            self.call("GET", &keys.value, redis::cmd("GET").arg(&keys.value).query_async(&mut conn)).await?;
        Ok(got.map(Bytes::from))
    }

    /// The entry and whether a lease is held, in one round trip.
    async fn poll(&self, keys: &CacheKeys) -> Result<(Option<Bytes>, bool), CacheError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&keys.value).cmd("EXISTS").arg(&keys.lock);
        let (got, held): (Option<Vec<u8>>, bool) = self.call("poll", &keys.value, pipe.query_async(&mut conn)).await?;
        Ok((got.map(Bytes::from), held))
    }

    /// Decodes what was read; an entry that does not decode counts as missing (and will be
    /// overwritten by the next load), because a type change in the application must not make
    /// the cache fail.
    fn parse<V: DeserializeOwned>(&self, keys: &CacheKeys, bytes: Option<Bytes>) -> Read<V> {
        let bytes = bytes?;
        match serde_json::from_slice::<Envelope<V>>(&bytes) {
            Ok(envelope) => Some((envelope, bytes)),
            Err(error) => {
                tracing::warn!(key = %keys.value, %error, "cache: stored entry does not decode; treating it as missing");
                None
            }
        }
    }

    fn early(&self, envelope: &Envelope<impl Sized>, now: u64) -> bool {
        self.options.beta > 0.0 && decision::recompute_early(&envelope.meta(), now, self.options.beta, &mut rand::rng())
    }

    /// The near cache's answer, if it has a fresh entry that XFetch does not pick for refresh.
    fn near_hit<V: DeserializeOwned>(&self, keys: &CacheKeys) -> Option<Option<V>> {
        let bytes = self.near.as_ref()?.get(&keys.value)?;
        let envelope = serde_json::from_slice::<Envelope<V>>(&bytes).ok()?;
        let now = now_ms();
        let fresh = freshness(Some(&envelope.meta()), now);
        if plan_read(fresh, fresh == Freshness::Fresh && self.early(&envelope, now)) != ReadAction::Serve {
            return None;
        }
        bump(&self.counters.hits);
        Some(envelope.value)
    }

    fn ticket(&self, keys: &CacheKeys) -> Option<Ticket> {
        self.near.as_ref().map(|near| near.ticket(&keys.value))
    }

    /// Puts a fresh entry read from Redis into the near cache, under the ticket taken before
    /// the read.
    fn remember(&self, keys: &CacheKeys, ticket: Option<Ticket>, envelope: &Envelope<impl Sized>, bytes: &Bytes) {
        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
            let fresh_for = Duration::from_millis(envelope.expires_at_ms.saturating_sub(now_ms()));
            near.insert(&keys.value, bytes.clone(), ticket, fresh_for);
        }
    }

    fn served<V>(&self, read: (Envelope<V>, Bytes)) -> Resolved<V> {
        let (envelope, bytes) = read;
        Resolved { value: envelope.value, bytes }
    }

    /// The protected path of `get_or_load` for one caller, or for the leader of the callers
    /// of this key in this process (`flight`). A leader that refreshes a fresh entry early
    /// hands that entry to its followers first: they should not wait for a recompute that
    /// XFetch started ahead of time.
    async fn resolve<V, E, F, Fut>(
        self: &Arc<Self>,
        keys: &CacheKeys,
        ttl: Duration,
        loader: F,
        flight: &mut Option<Leader<'_>>,
    ) -> Result<Resolved<V>, CacheError<E>>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let ticket = self.ticket(keys);
        let read: Read<V> = match self.get(keys).await {
            Ok(bytes) => self.parse(keys, bytes),
            Err(error) => return self.redis_failed(error, keys, ttl, loader).await,
        };
        let now = now_ms();
        let fresh = freshness(read.as_ref().map(|(e, _)| e.meta()).as_ref(), now);
        let early = match &read {
            Some((envelope, bytes)) if fresh == Freshness::Fresh => {
                self.remember(keys, ticket, envelope, bytes);
                self.early(envelope, now)
            }
            _ => false,
        };
        if plan_read(fresh, early) == ReadAction::Serve {
            if let Some(read) = read {
                bump(&self.counters.hits);
                return Ok(self.served(read));
            }
        }
        if !early {
            bump(&self.counters.misses);
        }
        match self.try_lease(keys).await {
            Ok(Some(lease)) => {
                if early {
                    if let (Some(leader), Some((_, bytes))) = (flight.take(), &read) {
                        leader.finish(Outcome::Done(bytes.clone()));
                    }
                }
                return self.load(keys, ttl, loader, Write::Lease(lease), early).await;
            }
            Ok(None) => {}
            Err(error) => {
                // Redis failed between two calls. A fresh entry in hand is still good.
                if let (Freshness::Fresh, Some(read)) = (fresh, read) {
                    bump(&self.counters.hits);
                    return Ok(self.served(read));
                }
                return self.redis_failed(error, keys, ttl, loader).await;
            }
        }
        match (plan_contended(fresh, !self.options.wait_for_loader.is_zero()), read) {
            (ContendedAction::ServeCurrent, Some(read)) => {
                if fresh == Freshness::Stale {
                    bump(&self.counters.stale_served);
                } else {
                    bump(&self.counters.hits);
                }
                Ok(self.served(read))
            }
            (ContendedAction::Wait, read) => {
                bump(&self.counters.waits);
                self.wait_for_loader(keys, ttl, loader, read).await
            }
            // LoadWithoutLease, or ServeCurrent with nothing to serve (cannot happen: the plan
            // serves only an entry that was read).
            (_, _) => self.load(keys, ttl, loader, Write::Skip, false).await,
        }
    }

    /// Another caller holds the lease: poll until its value arrives, the lease goes, or time
    /// is up.
    async fn wait_for_loader<V, E, F, Fut>(
        self: &Arc<Self>,
        keys: &CacheKeys,
        ttl: Duration,
        loader: F,
        mut last: Read<V>,
    ) -> Result<Resolved<V>, CacheError<E>>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let started = Instant::now();
        let deadline = started + self.options.wait_for_loader;
        loop {
            // Waiting is what this loop is for: the other process is loading.
            tokio::time::sleep(self.options.poll_interval).await;
            let ticket = self.ticket(keys);
            let (bytes, lock_held) = match self.poll(keys).await {
                Ok(polled) => polled,
                Err(error) => {
                    if let Some(read) = last {
                        bump(&self.counters.stale_served);
                        tracing::warn!(key = %keys.value, %error, "cache: redis failed while waiting; serving the stale copy");
                        return Ok(self.served(read));
                    }
                    return self.redis_failed(error, keys, ttl, loader).await;
                }
            };
            last = self.parse(keys, bytes);
            let fresh = freshness(last.as_ref().map(|(e, _)| e.meta()).as_ref(), now_ms());
            let view = PollView { freshness: fresh, lock_held, timed_out: Instant::now() >= deadline };
            match (plan_poll(view), last) {
                (PollAction::Serve, Some(read)) => {
                    self.remember(keys, ticket, &read.0, &read.1);
                    bump(&self.counters.hits);
                    tracing::debug!(key = %keys.value, waited = ?started.elapsed(), "cache: got the value another caller loaded");
                    return Ok(self.served(read));
                }
                (PollAction::ServeStale, Some(read)) => {
                    bump(&self.counters.stale_served);
                    tracing::debug!(key = %keys.value, waited = ?started.elapsed(), "cache: loader too slow; serving the stale copy");
                    return Ok(self.served(read));
                }
                (PollAction::KeepWaiting, read) => last = read,
                (PollAction::TakeOver, read) => match self.try_lease(keys).await {
                    Ok(Some(lease)) => {
                        tracing::debug!(key = %keys.value, "cache: the lease was free; loading");
                        return self.load(keys, ttl, loader, Write::Lease(lease), false).await;
                    }
                    Ok(None) => last = read,
                    Err(error) => return self.redis_failed(error, keys, ttl, loader).await,
                },
                // LoadWithoutLease (and the impossible Serve/ServeStale without an entry).
                (_, _) => {
                    tracing::debug!(key = %keys.value, waited = ?started.elapsed(), "cache: loader too slow; loading without the lease");
                    return self.load(keys, ttl, loader, Write::Skip, false).await;
                }
            }
        }
    }

    /// Plain cache-aside: every caller that misses loads and writes.
    async fn resolve_unprotected<V, E, F, Fut>(
        self: &Arc<Self>,
        keys: &CacheKeys,
        ttl: Duration,
        loader: F,
    ) -> Result<Resolved<V>, CacheError<E>>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let ticket = self.ticket(keys);
        let read: Read<V> = match self.get(keys).await {
            Ok(bytes) => self.parse(keys, bytes),
            Err(error) => return self.redis_failed(error, keys, ttl, loader).await,
        };
        let now = now_ms();
        let fresh = freshness(read.as_ref().map(|(e, _)| e.meta()).as_ref(), now);
        let mut early = false;
        if let Some((envelope, bytes)) = &read {
            if fresh == Freshness::Fresh {
                self.remember(keys, ticket, envelope, bytes);
                early = self.early(envelope, now);
            }
        }
        match (plan_read(fresh, early), read) {
            (ReadAction::Serve, Some(read)) => {
                bump(&self.counters.hits);
                Ok(self.served(read))
            }
            _ => {
                if !early {
                    bump(&self.counters.misses);
                }
                self.load(keys, ttl, loader, Write::Plain, early).await
            }
        }
    }

    /// Redis failed: load without the cache, or fail, as configured.
    async fn redis_failed<V, E, F, Fut>(
        self: &Arc<Self>,
        error: CacheError,
        keys: &CacheKeys,
        ttl: Duration,
        loader: F,
    ) -> Result<Resolved<V>, CacheError<E>>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if !self.options.load_on_redis_error {
            return Err(error.widen());
        }
        tracing::warn!(key = %keys.value, %error, "cache: redis unusable; loading without the cache");
        self.load(keys, ttl, loader, Write::Skip, false).await
    }

    /// `SET lock token NX PX lock_ttl`: the lease, if free.
    async fn try_lease(&self, keys: &CacheKeys) -> Result<Option<Lease<C>>, CacheError> {
        let token = format!("{}:{:032x}", self.origin, rand::random::<u128>());
        let mut conn = self.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(&keys.lock).arg(&token).arg("NX").arg("PX").arg(millis(self.options.lock_ttl).max(1));
        let reply = self.call("lease", &keys.lock, set.query_async::<Value>(&mut conn)).await?;
        if reply == Value::Nil {
            return Ok(None);
        }
        Ok(Some(Lease::new(self.conn.clone(), keys.lock.clone(), token, self.options.redis_timeout)))
    }

    /// Calls the loader, builds the entry and writes it as `write` says.
    async fn load<V, E, F, Fut>(
        self: &Arc<Self>,
        keys: &CacheKeys,
        ttl: Duration,
        loader: F,
        write: Write<C>,
        early: bool,
    ) -> Result<Resolved<V>, CacheError<E>>
    where
        V: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        bump(&self.counters.loads);
        if early {
            bump(&self.counters.early_recomputes);
        }
        if !matches!(write, Write::Lease(_)) {
            bump(&self.counters.loads_without_lease);
        }
        let started = Instant::now();
        let loaded = loader().await;
        let delta = started.elapsed();
        let value = match loaded {
            Ok(value) => value,
            Err(error) => {
                if let Write::Lease(lease) = write {
                    // Let a waiter take over now rather than after lock_ttl.
                    lease.release().await;
                }
                return Err(CacheError::Loader(error));
            }
        };
        let options = &self.options;
        let base = if value.is_some() { ttl } else { options.negative_ttl };
        let logical = decision::jittered_ttl(base, options.ttl_jitter, &mut rand::rng());
        let now = now_ms();
        let envelope = Envelope {
            value: value.as_ref(),
            computed_at_ms: now,
            delta_ms: millis(delta),
            expires_at_ms: now + millis(logical),
        };
        let bytes = match serde_json::to_vec(&envelope) {
            Ok(bytes) => Bytes::from(bytes),
            Err(source) => {
                if let Write::Lease(lease) = write {
                    lease.release().await;
                }
                return Err(CacheError::Encode { key: keys.value.clone(), source });
            }
        };
        tracing::debug!(key = %keys.value, ?delta, ?logical, negative = value.is_none(), early, "cache: loaded");
        let physical = logical + options.keep_stale_for;
        let lease = match write {
            Write::Skip => return Ok(Resolved { value, bytes }),
            Write::Lease(lease) => Some(lease),
            Write::Plain => None,
        };
        self.write_detached(keys, bytes.clone(), physical, logical, lease).await;
        Ok(Resolved { value, bytes })
    }

    /// Writes on a spawned task, so that a caller cancelled after its load still leaves the
    /// entry written and announced (or its lease released).
    async fn write_detached(
        self: &Arc<Self>,
        keys: &CacheKeys,
        bytes: Bytes,
        physical: Duration,
        fresh_for: Duration,
        lease: Option<Lease<C>>,
    ) {
        let inner = self.clone();
        let keys = keys.clone();
        let task = tokio::spawn(async move { inner.write_entry(&keys, bytes, physical, fresh_for, lease).await });
        if let Err(error) = task.await {
            tracing::error!(%error, "cache: the write task panicked");
        }
    }

    /// Writes a loaded entry (under `lease`, or plainly without one), then updates this near
    /// cache and announces it. Failures are logged: the caller has its value either way.
    async fn write_entry(
        &self,
        keys: &CacheKeys,
        bytes: Bytes,
        physical: Duration,
        fresh_for: Duration,
        lease: Option<Lease<C>>,
    ) {
        let mut conn = self.conn.clone();
        let ttl_ms = millis(physical).max(1);
        let written = match lease {
            Some(lease) => {
                let mut script = scripts::WRITE_WITH_LEASE.prepare_invoke();
                script.key(&keys.value).key(&keys.lock).arg(lease.token()).arg(&bytes[..]).arg(ttl_ms);
                match self.call("write", &keys.value, script.invoke_async::<i64>(&mut conn)).await {
                    Ok(1) => {
                        lease.ended();
                        true
                    }
                    Ok(_) => {
                        lease.ended();
                        bump(&self.counters.lost_leases);
                        tracing::info!(
                            key = %keys.value,
                            "cache: lease lost before the write (expired, or revoked by an invalidation); value not cached"
                        );
                        false
                    }
                    Err(error) => {
                        // The lease, dropped here, is released in the background.
                        tracing::warn!(key = %keys.value, %error, "cache: cannot write the loaded value");
                        false
                    }
                }
            }
            None => {
                let mut set = redis::cmd("SET");
                set.arg(&keys.value).arg(&bytes[..]).arg("PX").arg(ttl_ms);
                match self.call("write", &keys.value, set.query_async::<()>(&mut conn)).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(key = %keys.value, %error, "cache: cannot write the loaded value");
                        false
                    }
                }
            }
        };
        if !written {
            return;
        }
        if let Some(near) = &self.near {
            near.write_through(&keys.value, bytes, fresh_for);
        }
        if let Err(error) = self.publish(&keys.value).await {
            tracing::warn!(
                key = %keys.value,
                %error,
                "cache: cannot announce a write; other near caches may serve the old value until their max_ttl"
            );
        }
    }

    async fn invalidate_entry(&self, keys: &CacheKeys) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut script = scripts::INVALIDATE.prepare_invoke();
        script.key(&keys.value).key(&keys.lock);
        let deleted = self.call("invalidate", &keys.value, script.invoke_async::<i64>(&mut conn)).await;
        // Drop our copy whatever Redis said: it costs a reload at most.
        if let Some(near) = &self.near {
            near.invalidate(&keys.value);
        }
        let deleted = deleted?;
        tracing::debug!(key = %keys.value, deleted, "cache: invalidated");
        self.publish(&keys.value).await
    }

    async fn set_entry(
        &self,
        keys: &CacheKeys,
        bytes: Bytes,
        physical: Duration,
        fresh_for: Duration,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut script = scripts::WRITE_REVOKING.prepare_invoke();
        script.key(&keys.value).key(&keys.lock).arg(&bytes[..]).arg(millis(physical).max(1));
        let written = self.call("set", &keys.value, script.invoke_async::<i64>(&mut conn)).await;
        if let Some(near) = &self.near {
            match written {
                Ok(_) => near.write_through(&keys.value, bytes, fresh_for),
                // Unknown whether it was written: forget ours.
                Err(_) => near.invalidate(&keys.value),
            }
        }
        written?;
        self.publish(&keys.value).await
    }

    /// Announces a change of the entry at `redis_key` on the invalidation channel.
    async fn publish(&self, redis_key: &str) -> Result<(), CacheError> {
        if !self.options.publish_invalidations {
            return Ok(());
        }
        let payload = InvalidationMessage::encode(&self.origin, redis_key);
        let mut conn = self.conn.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&self.options.invalidation_channel).arg(payload);
        self.call("PUBLISH", redis_key, publish.query_async::<i64>(&mut conn)).await.map(|_| ())
    }
}
