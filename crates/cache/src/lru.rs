//! A least-recently-used map bounded by entry count and by bytes. Pure data structure, no
//! locking and no clock of its own (callers pass `now`).
//!
//! Entries live in a slab (`Vec` of nodes plus a free list) linked into a doubly linked
//! recency list by index, so get, insert and remove are O(1) without unsafe code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// Bytes charged per entry on top of its key and value: the node, the map slot and the two
/// allocations' headers, roughly. Keeps a cache of many tiny entries honest about memory.
pub(crate) const ENTRY_OVERHEAD: usize = 96;

const NIL: usize = usize::MAX;

struct Node {
    key: Arc<str>,
    value: Bytes,
    expires_at: Instant,
    prev: usize,
    next: usize,
}

/// What an insert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InsertOutcome {
    /// The entry is in the map now (false: it alone is larger than the byte bound).
    pub stored: bool,
    /// How many other entries were evicted to make room.
    pub evicted: usize,
}

/// The map. `head` is the most recently used entry, `tail` the least.
pub(crate) struct Lru {
    map: HashMap<Arc<str>, usize>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Lru {
    pub fn new(max_entries: usize, max_bytes: usize) -> Lru {
        Lru {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn weight(key: &str, value: &Bytes) -> usize {
        key.len() + value.len() + ENTRY_OVERHEAD
    }

    /// The value, if present and not expired at `now`; marks it most recently used. An
    /// expired entry is removed.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Bytes> {
        let idx = *self.map.get(key)?;
        if self.nodes[idx].expires_at <= now {
            self.remove(key);
            return None;
        }
        self.unlink(idx);
        self.push_front(idx);
        Some(self.nodes[idx].value.clone())
    }

    /// Puts `value` under `key` (replacing any), then evicts least recently used entries
    /// until both bounds hold.
    pub fn insert(&mut self, key: Arc<str>, value: Bytes, expires_at: Instant) -> InsertOutcome {
        self.remove(&key);
        let weight = Lru::weight(&key, &value);
        if weight > self.max_bytes {
            return InsertOutcome { stored: false, evicted: 0 };
        }
        let node = Node { key: key.clone(), value, expires_at, prev: NIL, next: NIL };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.nodes[idx] = node;
                idx
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.push_front(idx);
        self.map.insert(key, idx);
        self.bytes += weight;
        let mut evicted = 0;
        while self.map.len() > self.max_entries || self.bytes > self.max_bytes {
            // The new entry is at the head and fits alone, so the tail is another one.
            let tail = self.tail;
            let tail_key = self.nodes[tail].key.clone();
            self.remove(&tail_key);
            evicted += 1;
        }
        InsertOutcome { stored: true, evicted }
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some(idx) = self.map.remove(key) else { return false };
        self.unlink(idx);
        let node = &mut self.nodes[idx];
        self.bytes -= Lru::weight(&node.key, &node.value);
        // Drop the value now rather than when the slot is reused.
        node.value = Bytes::new();
        node.key = Arc::from("");
        self.free.push(idx);
        true
    }

    /// Removes everything; returns how many entries there were.
    pub fn clear(&mut self) -> usize {
        let n = self.map.len();
        self.map.clear();
        self.nodes.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
        self.bytes = 0;
        n
    }

    fn unlink(&mut self, idx: usize) {
        let (prev, next) = (self.nodes[idx].prev, self.nodes[idx].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.nodes[idx].prev = NIL;
        self.nodes[idx].next = NIL;
    }

    fn push_front(&mut self, idx: usize) {
        self.nodes[idx].prev = NIL;
        self.nodes[idx].next = self.head;
        if self.head != NIL {
            self.nodes[self.head].prev = idx;
        }
        self.head = idx;
        if self.tail == NIL {
            self.tail = idx;
        }
    }

    /// Keys from most to least recently used (tests).
    #[cfg(test)]
    fn order(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut idx = self.head;
        while idx != NIL {
            out.push(self.nodes[idx].key.to_string());
            idx = self.nodes[idx].next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn val(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn evicts_least_recently_used_by_count() {
        let mut lru = Lru::new(3, usize::MAX);
        let now = Instant::now();
        for k in ["a", "b", "c"] {
            assert_eq!(lru.insert(k.into(), val(1), later()), InsertOutcome { stored: true, evicted: 0 });
        }
        assert!(lru.get("a", now).is_some()); // a is now the most recent
        let out = lru.insert("d".into(), val(1), later());
        assert_eq!(out, InsertOutcome { stored: true, evicted: 1 });
        assert!(!lru.contains("b"), "b was least recently used");
        assert_eq!(lru.order(), ["d", "a", "c"]);
    }

    #[test]
    fn evicts_by_bytes_and_refuses_oversized() {
        let entry = |n: usize| ENTRY_OVERHEAD + 1 + n;
        let mut lru = Lru::new(100, entry(100) * 3);
        for k in ["a", "b", "c"] {
            assert!(lru.insert(k.into(), val(100), later()).stored);
        }
        assert_eq!(lru.bytes(), entry(100) * 3);
        // A 250-byte value needs the room of two and a half: evicts a and b.
        let out = lru.insert("d".into(), val(250), later());
        assert_eq!(out, InsertOutcome { stored: true, evicted: 2 });
        assert_eq!(lru.order(), ["d", "c"]);
        assert!(lru.bytes() <= entry(100) * 3);
        // Larger than the whole bound: not stored, nothing evicted.
        let out = lru.insert("e".into(), val(1_000), later());
        assert_eq!(out, InsertOutcome { stored: false, evicted: 0 });
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn replace_remove_expire_clear() {
        let mut lru = Lru::new(10, usize::MAX);
        let now = Instant::now();
        lru.insert("a".into(), val(10), later());
        lru.insert("a".into(), val(20), later());
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.bytes(), 1 + 20 + ENTRY_OVERHEAD);
        assert_eq!(lru.get("a", now).map(|b| b.len()), Some(20));
        assert!(lru.remove("a"));
        assert!(!lru.remove("a"));
        assert_eq!(lru.bytes(), 0);
        lru.insert("old".into(), val(1), now);
        assert!(lru.get("old", now).is_none(), "expired at now");
        assert!(!lru.contains("old"), "expired entries are dropped on read");
        lru.insert("x".into(), val(1), later());
        lru.insert("y".into(), val(1), later());
        assert_eq!(lru.clear(), 2);
        assert_eq!((lru.len(), lru.bytes(), lru.order().len()), (0, 0, 0));
        // Slots are reused after removals.
        for i in 0..100 {
            lru.insert(format!("k{i}").into(), val(1), later());
            lru.remove(&format!("k{i}"));
        }
        assert!(lru.nodes.len() <= 1);
    }

    #[test]
    fn random_operations_keep_invariants() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(3);
        let max_bytes = 2_000;
        let mut lru = Lru::new(8, max_bytes);
        let now = Instant::now();
        for _ in 0..5_000 {
            let key = format!("k{}", rng.random_range(0..20));
            match rng.random_range(0..3) {
                0 => {
                    lru.insert(key.into(), val(rng.random_range(0..400)), later());
                }
                1 => {
                    lru.get(&key, now);
                }
                _ => {
                    lru.remove(&key);
                }
            }
            assert!(lru.len() <= 8);
            assert!(lru.bytes() <= max_bytes);
            let order = lru.order();
            assert_eq!(order.len(), lru.len());
            let summed: usize = order.iter().map(|k| k.len() + ENTRY_OVERHEAD).sum::<usize>()
                + order.iter().map(|k| lru.nodes[lru.map[k.as_str()]].value.len()).sum::<usize>();
            assert_eq!(summed, lru.bytes());
        }
    }
}
