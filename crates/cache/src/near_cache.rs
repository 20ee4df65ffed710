//! The in-process near cache: stored entries (their JSON bytes) kept in memory in front of
//! Redis, bounded by entries and bytes, kept coherent by invalidation messages.
//!
//! # Coherence
//!
//! Three rules keep it from serving a value that Redis no longer holds for longer than it
//! takes an invalidation message to arrive:
//! - **It serves only while subscribed.** Until the subscription to the invalidation channel
//!   is confirmed, and from the moment the connection is lost (closed, or a heartbeat
//!   unanswered), every lookup is a bypass and every insert is refused; on the loss it is
//!   cleared, and on each new subscription it starts empty (messages sent while it was away
//!   are lost, so nothing from before may survive).
//! - **An insert cannot undo an invalidation that raced it.** A reader takes a [`Ticket`]
//!   before it reads Redis; the insert of what it read succeeds only if no invalidation of a
//!   key in the same bucket, and no clear, happened since. Without this, a reader that got
//!   the old value just before a writer's SET, but inserts it just after the writer's message
//!   was applied, would keep the old value indefinitely.
//! - **Nothing lives longer than its Redis freshness or [`NearCacheOptions::max_ttl`].** The
//!   latter bounds staleness if a publisher wrote but failed to publish.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::keys;
use crate::lru::Lru;
use crate::options::NearCacheOptions;

/// Number of invalidation generation counters. A ticket is spoiled by an invalidation of any
/// key in its bucket; 4096 buckets make that rare while costing 32 KiB.
const BUCKETS: usize = 4096;

/// Counters of a [`NearCache`], and its size now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NearCacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups not found (or expired) while subscribed.
    pub misses: u64,
    /// Lookups made while not subscribed (served from Redis instead).
    pub bypassed: u64,
    /// Entries stored.
    pub inserts: u64,
    /// Inserts refused because an invalidation or clear raced them, or while not subscribed.
    pub rejected_inserts: u64,
    /// Entries evicted to stay within the entry or byte bound.
    pub evictions: u64,
    /// Invalidation messages applied (from other processes, or local writes).
    pub invalidations: u64,
    /// Times the whole cache was cleared because the subscription was lost.
    pub clears: u64,
    /// Subscriptions confirmed (the first, and one per reconnection).
    pub subscriptions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes charged now (keys, values and a per-entry overhead).
    pub bytes: u64,
    /// Subscribed now (serving).
    pub live: bool,
}

/// The near cache of a [`Cache`](crate::Cache) (see [`Cache::near_cache`](crate::Cache::near_cache)).
/// Cloning gives another handle to the same memory.
#[derive(Clone)]
pub struct NearCache {
    shared: Arc<NearShared>,
    prefix: String,
}

/// What a reader remembers from before its Redis read (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    clear_gen: u64,
    bucket: usize,
    bucket_gen: u64,
}

pub(crate) struct NearShared {
    state: Mutex<NearState>,
    max_ttl: Duration,
    hasher: RandomState,
}

struct NearState {
    lru: Lru,
    live: bool,
    clear_gen: u64,
    buckets: Box<[u64]>,
    stats: NearCacheStats,
}

impl NearShared {
    pub fn new(options: &NearCacheOptions) -> NearShared {
        NearShared {
            state: Mutex::new(NearState {
                lru: Lru::new(options.max_entries, options.max_bytes),
                live: false,
                clear_gen: 0,
                buckets: vec![0; BUCKETS].into_boxed_slice(),
                stats: NearCacheStats::default(),
            }),
            max_ttl: options.max_ttl,
            hasher: RandomState::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NearState> {
        // A panic while holding this lock cannot leave the LRU half-linked in a way that
        // matters more than a poisoned cache would; keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bucket(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % BUCKETS
    }

    /// The stored bytes of `key` (its Redis key), if held and subscribed.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        let mut state = self.lock();
        if !state.live {
            state.stats.bypassed += 1;
            return None;
        }
        match state.lru.get(key, Instant::now()) {
            Some(bytes) => {
                state.stats.hits += 1;
                Some(bytes)
            }
            None => {
                state.stats.misses += 1;
                None
            }
        }
    }

    /// Taken before reading Redis; see [`NearShared::insert`].
    pub fn ticket(&self, key: &str) -> Ticket {
        let bucket = self.bucket(key);
        let state = self.lock();
        Ticket { clear_gen: state.clear_gen, bucket, bucket_gen: state.buckets[bucket] }
    }

    /// Stores what was read from Redis under `ticket`, for at most `fresh_for` (the entry's
    /// remaining freshness) and [`NearCacheOptions::max_ttl`]. Refused if not subscribed or if
    /// the key was invalidated (or the cache cleared) since the ticket was taken.
    pub fn insert(&self, key: &str, bytes: Bytes, ticket: Ticket, fresh_for: Duration) -> bool {
        let mut state = self.lock();
        if !state.live || state.clear_gen != ticket.clear_gen || state.buckets[ticket.bucket] != ticket.bucket_gen {
            state.stats.rejected_inserts += 1;
            return false;
        }
        self.insert_locked(&mut state, key, bytes, fresh_for)
    }

    fn insert_locked(&self, state: &mut NearState, key: &str, bytes: Bytes, fresh_for: Duration) -> bool {
        if fresh_for.is_zero() {
            return false;
        }
        let expires_at = Instant::now() + fresh_for.min(self.max_ttl);
        let outcome = state.lru.insert(Arc::from(key), bytes, expires_at);
        state.stats.evictions += outcome.evicted as u64;
        if outcome.stored {
            state.stats.inserts += 1;
        }
        outcome.stored
    }

    /// This process wrote `bytes` to Redis under `key`: readers that started before must not
    /// insert what they read (spoil their tickets), and the new value is stored.
    pub fn write_through(&self, key: &str, bytes: Bytes, fresh_for: Duration) {
        let bucket = self.bucket(key);
        let mut state = self.lock();
        state.buckets[bucket] = state.buckets[bucket].wrapping_add(1);
        state.lru.remove(key);
        if state.live {
            self.insert_locked(&mut state, key, bytes, fresh_for);
        }
    }

    /// Drops `key` and spoils the tickets of readers in flight.
    pub fn invalidate(&self, key: &str) {
        let bucket = self.bucket(key);
        let mut state = self.lock();
        state.buckets[bucket] = state.buckets[bucket].wrapping_add(1);
        state.lru.remove(key);
        state.stats.invalidations += 1;
    }

    /// The subscription is lost: stop serving and forget everything.
    pub fn go_down(&self) -> usize {
        let mut state = self.lock();
        let was_live = state.live;
        state.live = false;
        state.clear_gen = state.clear_gen.wrapping_add(1);
        let dropped = state.lru.clear();
        if was_live {
            state.stats.clears += 1;
        }
        dropped
    }

    /// The subscription is confirmed: serve again, starting empty.
    pub fn go_live(&self) {
        let mut state = self.lock();
        state.clear_gen = state.clear_gen.wrapping_add(1);
        state.lru.clear();
        state.live = true;
        state.stats.subscriptions += 1;
    }

    /// Empties it without changing whether it serves.
    pub fn clear(&self) -> usize {
        let mut state = self.lock();
        state.clear_gen = state.clear_gen.wrapping_add(1);
        state.lru.clear()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lock().lru.contains(key)
    }

    pub fn stats(&self) -> NearCacheStats {
        let state = self.lock();
        NearCacheStats {
            entries: state.lru.len() as u64,
            bytes: state.lru.bytes() as u64,
            live: state.live,
            ..state.stats
        }
    }
}

impl NearCache {
    pub(crate) fn new(shared: Arc<NearShared>, prefix: String) -> NearCache {
        NearCache { shared, prefix }
    }

    /// Counters and current size.
    pub fn stats(&self) -> NearCacheStats {
        self.shared.stats()
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shared.stats().entries as usize
    }

    /// True if it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while subscribed to invalidations (and so serving).
    pub fn is_live(&self) -> bool {
        self.shared.stats().live
    }

    /// True if it holds an entry (possibly expired, not yet dropped) for the cache key `key`.
    pub fn contains(&self, key: &str) -> bool {
        match keys::layout(&self.prefix, key) {
            Ok(keys) => self.shared.contains(&keys.value),
            Err(_) => false,
        }
    }

    /// Drops every entry; returns how many there were. Other processes are not told (use
    /// [`Cache::invalidate`](crate::Cache::invalidate) for that).
    pub fn clear(&self) -> usize {
        self.shared.clear()
    }
}

impl fmt::Debug for NearCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearCache").field("prefix", &self.prefix).field("stats", &self.stats()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(max_entries: usize) -> NearShared {
        let shared = NearShared::new(&NearCacheOptions { max_entries, ..Default::default() });
        shared.go_live();
        shared
    }

    const FRESH: Duration = Duration::from_secs(30);

    #[test]
    fn serves_only_while_live_and_clears_on_loss() {
        let near = NearShared::new(&NearCacheOptions::default());
        let t = near.ticket("k");
        assert!(!near.insert("k", Bytes::from_static(b"v"), t, FRESH), "not live yet");
        assert_eq!(near.get("k"), None);
        near.go_live();
        let t = near.ticket("k");
        assert!(near.insert("k", Bytes::from_static(b"v"), t, FRESH));
        assert_eq!(near.get("k"), Some(Bytes::from_static(b"v")));
        assert_eq!(near.go_down(), 1);
        assert_eq!(near.get("k"), None);
        near.go_live();
        assert_eq!(near.get("k"), None, "starts empty after reconnecting");
        let stats = near.stats();
        assert_eq!((stats.hits, stats.misses, stats.bypassed), (1, 1, 2));
        assert_eq!((stats.clears, stats.subscriptions, stats.rejected_inserts), (1, 2, 1));
        assert!(stats.live);
    }

    #[test]
    fn an_invalidation_spoils_tickets_taken_before_it() {
        let near = near(10);
        // Reader takes a ticket and reads the old value; a writer's message arrives; the
        // reader's insert must fail.
        let t = near.ticket("k");
        near.invalidate("k");
        assert!(!near.insert("k", Bytes::from_static(b"old"), t, FRESH));
        assert!(!near.contains("k"));
        // A ticket taken after the invalidation works.
        let t = near.ticket("k");
        assert!(near.insert("k", Bytes::from_static(b"new"), t, FRESH));
        // Another key's invalidation does not spoil it (unless same bucket; pick keys apart).
        let other = (0..).map(|i| format!("o{i}")).find(|o| near.bucket(o) != near.bucket("k")).expect("a key");
        let t = near.ticket("k");
        near.invalidate(&other);
        assert!(near.insert("k", Bytes::from_static(b"newer"), t, FRESH));
    }

    #[test]
    fn a_clear_or_loss_spoils_every_ticket() {
        let near = near(10);
        let t = near.ticket("k");
        near.clear();
        assert!(!near.insert("k", Bytes::from_static(b"v"), t, FRESH));
        let t = near.ticket("k");
        near.go_down();
        near.go_live();
        assert!(!near.insert("k", Bytes::from_static(b"v"), t, FRESH));
    }

    #[test]
    fn write_through_replaces_and_spoils() {
        let near = near(10);
        let reader = near.ticket("k");
        near.write_through("k", Bytes::from_static(b"mine"), FRESH);
        assert!(!near.insert("k", Bytes::from_static(b"old"), reader, FRESH));
        assert_eq!(near.get("k"), Some(Bytes::from_static(b"mine")));
    }

    #[test]
    fn expiry_and_eviction() {
        let near = near(2);
        for k in ["a", "b", "c"] {
            let t = near.ticket(k);
            assert!(near.insert(k, Bytes::from_static(b"v"), t, FRESH));
        }
        assert_eq!(near.stats().evictions, 1);
        assert_eq!(near.stats().entries, 2);
        let t = near.ticket("z");
        assert!(!near.insert("z", Bytes::from_static(b"v"), t, Duration::ZERO), "already expired");
    }
}
