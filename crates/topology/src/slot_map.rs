//! Which group owns each slot. Stored compactly as one owner per slot in memory and as
//! contiguous ranges in JSON, so a person can read it with `zkCli.sh get`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::group::GroupId;
use crate::slot::{Slot, SLOT_COUNT};

/// A run of consecutive slots owned by one group (inclusive bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    pub from: Slot,
    pub to: Slot,
    pub group: GroupId,
}

/// Owner of every slot; `None` while a slot is unassigned.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotMap {
    owners: Box<[Option<GroupId>]>,
}

impl Default for SlotMap {
    fn default() -> Self {
        Self { owners: vec![None; SLOT_COUNT as usize].into_boxed_slice() }
    }
}

impl std::fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ranges()).finish()
    }
}

impl SlotMap {
    /// Slots spread as evenly as possible over `groups`, in order: each group gets one
    /// contiguous range and sizes differ by at most one.
    pub fn spread(groups: &[GroupId]) -> SlotMap {
        let mut map = SlotMap::default();
        if groups.is_empty() {
            return map;
        }
        let n = groups.len();
        let total = SLOT_COUNT as usize;
        let mut start = 0usize;
        for (i, group) in groups.iter().enumerate() {
            let len = total / n + usize::from(i < total % n);
            for owner in &mut map.owners[start..start + len] {
                *owner = Some(*group);
            }
            start += len;
        }
        map
    }

    pub fn owner(&self, slot: Slot) -> Option<GroupId> {
        self.owners.get(slot as usize).copied().flatten()
    }

    pub fn assign(&mut self, from: Slot, to: Slot, group: GroupId) {
        let to = to.min(SLOT_COUNT - 1);
        if from > to {
            return;
        }
        for owner in &mut self.owners[from as usize..=to as usize] {
            *owner = Some(group);
        }
    }

    /// Number of slots each group owns.
    pub fn count(&self, group: GroupId) -> usize {
        self.owners.iter().filter(|o| **o == Some(group)).count()
    }

    pub fn unassigned(&self) -> usize {
        self.owners.iter().filter(|o| o.is_none()).count()
    }

    /// Contiguous ranges of assigned slots, in slot order.
    pub fn ranges(&self) -> Vec<SlotRange> {
        let mut out: Vec<SlotRange> = Vec::new();
        for (slot, owner) in self.owners.iter().enumerate() {
            let Some(group) = *owner else { continue };
            let slot = slot as Slot;
            match out.last_mut() {
                Some(last) if last.group == group && last.to + 1 == slot => last.to = slot,
                _ => out.push(SlotRange { from: slot, to: slot, group }),
            }
        }
        out
    }

    /// Builds a map from ranges, refusing out-of-range or overlapping ones.
    pub fn from_ranges(ranges: &[SlotRange]) -> Result<SlotMap, String> {
        let mut map = SlotMap::default();
        for r in ranges {
            if r.from > r.to || r.to >= SLOT_COUNT {
                return Err(format!("bad slot range {}-{}", r.from, r.to));
            }
            for slot in r.from..=r.to {
                if let Some(other) = map.owners[slot as usize] {
                    return Err(format!("slot {slot} assigned twice (groups {other} and {})", r.group));
                }
                map.owners[slot as usize] = Some(r.group);
            }
        }
        Ok(map)
    }
}

impl Serialize for SlotMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.ranges().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SlotMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ranges = Vec::<SlotRange>::deserialize(deserializer)?;
        SlotMap::from_ranges(&ranges).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_contiguous() {
        type Case<'a> = (&'a [GroupId], &'a [(Slot, Slot, GroupId)]);
        let table: &[Case] = &[
            (&[1], &[(0, 16383, 1)]),
            (&[1, 2], &[(0, 8191, 1), (8192, 16383, 2)]),
            (&[1, 2, 3], &[(0, 5461, 1), (5462, 10922, 2), (10923, 16383, 3)]),
        ];
        for (groups, want) in table {
            let got: Vec<_> = SlotMap::spread(groups).ranges().iter().map(|r| (r.from, r.to, r.group)).collect();
            assert_eq!(&got, want, "groups {groups:?}");
        }
        assert_eq!(SlotMap::spread(&[]).unassigned(), SLOT_COUNT as usize);
    }

    #[test]
    fn json_round_trip_is_ranges() {
        let map = SlotMap::spread(&[1, 2]);
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"[{"from":0,"to":8191,"group":1},{"from":8192,"to":16383,"group":2}]"#);
        let back: SlotMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn overlapping_or_out_of_range_json_is_refused() {
        for bad in [
            r#"[{"from":0,"to":10,"group":1},{"from":10,"to":20,"group":2}]"#,
            r#"[{"from":0,"to":16384,"group":1}]"#,
            r#"[{"from":5,"to":4,"group":1}]"#,
        ] {
            assert!(serde_json::from_str::<SlotMap>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assign_moves_ownership() {
        let mut map = SlotMap::spread(&[1, 2]);
        map.assign(0, 99, 2);
        assert_eq!(map.owner(0), Some(2));
        assert_eq!(map.owner(100), Some(1));
        assert_eq!(map.count(2), 8192 + 100);
    }
}
