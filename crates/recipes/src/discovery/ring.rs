//! A consistent-hash ring with virtual nodes.
//!
//! Each member gets `virtual_nodes` points on a 64-bit ring, at `hash64("<member>#<i>")`; a
//! key belongs to the first point at or after `hash64(key)` (wrapping). Removing a member
//! moves only the keys that were its own; adding one takes keys only for itself. The hash is
//! FNV-1a followed by MurmurHash3's 64-bit finalizer: fixed (no per-process seed, unlike
//! `std`'s `DefaultHasher`), so every process — in any language — computes the same ring.

/// A consistent-hash ring over a set of member names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRing {
    members: Vec<String>,
    /// (point, index into `members`), sorted.
    points: Vec<(u64, u32)>,
}

impl HashRing {
    /// A ring over `members` (in the given order; `locate` returns indexes into it) with
    /// `virtual_nodes` points each (at least 1).
    pub fn new<S: AsRef<str>>(members: &[S], virtual_nodes: u32) -> HashRing {
        let virtual_nodes = virtual_nodes.max(1);
        let mut points = Vec::with_capacity(members.len() * virtual_nodes as usize);
        for (index, member) in members.iter().enumerate() {
            for i in 0..virtual_nodes {
                points.push((hash64(format!("{}#{i}", member.as_ref()).as_bytes()), index as u32));
            }
        }
        // Ties (astronomically rare) are broken by member index, so the ring is deterministic.
        points.sort_unstable();
        HashRing { members: members.iter().map(|m| m.as_ref().to_string()).collect(), points }
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The index (into `members`) of the member that owns `key`; `None` for an empty ring.
    pub fn locate(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash64(key);
        let at = self.points.partition_point(|(point, _)| *point < h);
        let (_, index) = self.points[at % self.points.len()];
        Some(index as usize)
    }

    /// The member that owns `key`.
    pub fn locate_member(&self, key: &[u8]) -> Option<&str> {
        self.locate(key).map(|i| self.members[i].as_str())
    }
}

/// FNV-1a (64-bit) with MurmurHash3's `fmix64` finalizer, which spreads FNV's weak low bits
/// over the whole ring.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user:{i}")).collect()
    }

    #[test]
    fn hash_is_fixed() {
        // Pinned values (computed independently): other implementations and future versions
        // of this one must place keys on the same points.
        let table: &[(&[u8], u64)] = &[
            (b"", 0xefd0_1f60_ba99_2926),
            (b"a", 0x82a2_a958_a9be_ce5b),
            (b"user:1", 0x4ce5_3ee4_648c_ef41),
            (b"i-0#0", 0xa3ed_070f_b324_6bec),
        ];
        for (input, want) in table {
            assert_eq!(hash64(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn empty_ring() {
        let ring = HashRing::new::<&str>(&[], 10);
        assert_eq!(ring.locate(b"k"), None);
    }

    #[test]
    fn balanced_with_virtual_nodes() {
        let members: Vec<String> = (0..5).map(|i| format!("i-{i}")).collect();
        let ring = HashRing::new(&members, 160);
        let mut counts = BTreeMap::new();
        let all = keys(20_000);
        for k in &all {
            *counts.entry(ring.locate_member(k.as_bytes()).unwrap().to_string()).or_insert(0usize) += 1;
        }
        for (m, c) in &counts {
            let share = *c as f64 / all.len() as f64;
            assert!((share - 0.2).abs() < 0.06, "{m} got {share:.3} of the keys: {counts:?}");
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let members: Vec<String> = (0..6).map(|i| format!("i-{i}")).collect();
        let before = HashRing::new(&members, 160);
        let gone = "i-3";
        let rest: Vec<&String> = members.iter().filter(|m| *m != gone).collect();
        let after = HashRing::new(&rest, 160);
        let (mut moved, mut owned) = (0, 0);
        for k in keys(10_000) {
            let was = before.locate_member(k.as_bytes()).unwrap();
            let now = after.locate_member(k.as_bytes()).unwrap();
            if was == gone {
                owned += 1;
                assert_ne!(now, gone);
            } else {
                assert_eq!(was, now, "key {k} moved from {was} to {now} though {was} stayed");
            }
            moved += usize::from(was != now);
        }
        assert_eq!(moved, owned, "only the removed member's keys move");
        assert!(owned > 0);
    }

    #[test]
    fn order_of_members_does_not_change_owners() {
        let a = HashRing::new(&["x", "y", "z"], 50);
        let b = HashRing::new(&["z", "x", "y"], 50);
        for k in keys(1000) {
            assert_eq!(a.locate_member(k.as_bytes()), b.locate_member(k.as_bytes()));
        }
    }
}
