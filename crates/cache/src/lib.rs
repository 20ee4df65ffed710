//! Cache-aside helpers over a zedis cluster (or any Redis): `get_or_load` with TTL jitter,
//! probabilistic early recompute (XFetch), a cross-process single-flight, negative caching and
//! invalidation, plus an optional in-process near cache kept coherent by invalidation messages.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use zedis_cache::{Cache, CacheOptions, NearCacheOptions};
//!
//! let client = redis::Client::open("redis://127.0.0.1:6380/")?; // the zedis proxy
//! let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
//! let cache = Cache::with_near_cache(conn, &client, CacheOptions::default(), NearCacheOptions::default())?;
//! let user: Option<String> = cache
//!     .get_or_load("user:42", Duration::from_secs(300), || async {
//!         Ok::<_, std::io::Error>(Some("ada".to_string())) // from the database
//!     })
//!     .await?;
//! cache.invalidate("user:42").await?; // after the database changed
//! # let _ = user; Ok(()) }
//! ```
//!
//! # How it stays correct across processes
//!
//! - **One loader per key.** A caller that must load takes the key's *lease*
//!   (`SET {prefix}{key}:lock token NX PX lock_ttl`). Only the lease holder writes, through a
//!   script that checks the token, so a loader whose lease expired (or was revoked) cannot
//!   overwrite a newer value.
//! - **Invalidation beats in-flight loads.** [`Cache::invalidate`] deletes the entry and the
//!   lease in one script; a load that started before it finds its lease gone and does not
//!   write (Facebook memcache's lease idea). [`Cache::set`] revokes the lease the same way.
//! - **Near caches hear every change.** Every write and invalidation is published on one
//!   channel; each [`NearCache`] drops the key, refuses inserts that raced the message, and
//!   is cleared whenever its subscription drops (see [`NearCache`]).
//!
//! # Stored layout
//!
//! `{prefix}{key}` holds JSON: `{"value":...,"computed_at_ms":...,"delta_ms":...,
//! "expires_at_ms":...}` (no `value` for a cached "not found"), with a Redis TTL of the
//! jittered logical TTL plus [`CacheOptions::keep_stale_for`]. `{prefix}{key}:lock` holds
//! the loader's token. Both share the hash tag, so one script can touch both, also through
//! the zedis proxy.

mod cache;
mod decision;
mod entry;
mod envelope;
mod error;
mod inflight;
mod invalidation;
mod keys;
mod lease;
mod lru;
mod near_cache;
mod options;
mod scripts;
mod stats;
mod subscriber;

pub use cache::Cache;
pub use entry::Entry;
pub use error::{CacheError, InvalidOptions};
pub use near_cache::{NearCache, NearCacheStats};
pub use options::{CacheOptions, NearCacheOptions};
pub use stats::CacheStats;
