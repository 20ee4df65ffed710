//! A short hash tag for every slot: `{tag}` makes a key land in that exact slot. Slot
//! migration keeps its per-slot guard keys on the source server this way (a Lua script can
//! only touch keys of the slot it runs for), so the source itself can enforce "this slot is
//! migrating" for every router at once.

use std::sync::OnceLock;

use crate::slot::{crc16, Slot, SLOT_COUNT};

/// Characters tags are made of: printable, and none that means anything in a key pattern.
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The shortest tag (then the first in alphabet order) whose CRC16 lands in each slot.
/// Computed once (about 250k CRCs).
fn table() -> &'static [String] {
    static TABLE: OnceLock<Vec<String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut tags: Vec<Option<String>> = vec![None; SLOT_COUNT as usize];
        let mut missing = SLOT_COUNT as usize;
        // 62 + 62^2 + 62^3 candidates, shortest first; three characters cover every slot.
        for len in 1..=3u32 {
            for n in 0..ALPHABET.len().pow(len) {
                let mut tag = vec![0u8; len as usize];
                let mut rest = n;
                for c in tag.iter_mut().rev() {
                    *c = ALPHABET[rest % ALPHABET.len()];
                    rest /= ALPHABET.len();
                }
                let slot = usize::from(crc16(&tag) % SLOT_COUNT);
                if tags[slot].is_none() {
                    tags[slot] = Some(String::from_utf8_lossy(&tag).into_owned());
                    missing -= 1;
                }
            }
            if missing == 0 {
                break;
            }
        }
        tags.into_iter().map(|t| t.unwrap_or_default()).collect()
    })
}

/// A tag `t` such that any key containing `{t}` hashes to `slot`.
pub fn slot_tag(slot: Slot) -> &'static str {
    &table()[usize::from(slot % SLOT_COUNT)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::key_slot;

    #[test]
    fn every_slot_has_a_short_tag_that_lands_in_it() {
        for slot in 0..SLOT_COUNT {
            let tag = slot_tag(slot);
            assert!(!tag.is_empty() && tag.len() <= 3, "slot {slot}: {tag:?}");
            assert_eq!(key_slot(format!("zedis:migrating:{{{tag}}}").as_bytes()), slot, "slot {slot}: tag {tag:?}");
        }
    }
}
