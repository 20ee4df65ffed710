//! Counters of a [`Cache`](crate::Cache).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`Cache`](crate::Cache) has done since it was made (all clones together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls answered with a fresh entry (from the near cache or Redis) without loading.
    pub hits: u64,
    /// Calls that found no usable entry.
    pub misses: u64,
    /// Loader calls made by this cache.
    pub loads: u64,
    /// Of `loads`, those that refreshed a still-fresh entry early (XFetch).
    pub early_recomputes: u64,
    /// Of `loads`, those made without the lease (waited too long, or protection off).
    pub loads_without_lease: u64,
    /// Loaded values not written because the lease was lost meanwhile (it expired, or an
    /// invalidation revoked it).
    pub lost_leases: u64,
    /// Calls that found another process loading and waited for its value.
    pub waits: u64,
    /// Calls answered with a stale entry.
    pub stale_served: u64,
    /// Calls that joined a load already running in this process.
    pub coalesced: u64,
    /// Redis errors and timeouts (each one handled by loading or returned).
    pub redis_errors: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub loads: AtomicU64,
    pub early_recomputes: AtomicU64,
    pub loads_without_lease: AtomicU64,
    pub lost_leases: AtomicU64,
    pub waits: AtomicU64,
    pub stale_served: AtomicU64,
    pub coalesced: AtomicU64,
    pub redis_errors: AtomicU64,
}

/// Adds one. Relaxed: these are statistics, ordered with nothing.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            loads: get(&self.loads),
            early_recomputes: get(&self.early_recomputes),
            loads_without_lease: get(&self.loads_without_lease),
            lost_leases: get(&self.lost_leases),
            waits: get(&self.waits),
            stale_served: get(&self.stale_served),
            coalesced: get(&self.coalesced),
            redis_errors: get(&self.redis_errors),
        }
    }
}
