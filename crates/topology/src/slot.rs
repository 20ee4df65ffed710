//! Key → slot hashing, identical to Redis Cluster: CRC16-XMODEM of the key (or of its `{hash tag}`)
//! modulo 16384, so the same keys land together whether a client talks to us or to a cluster.

/// Number of hash slots.
pub const SLOT_COUNT: u16 = 16384;

/// A hash slot number in `0..SLOT_COUNT`.
pub type Slot = u16;

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16_TABLE: [u16; 256] = crc16_table();

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| (crc << 8) ^ CRC16_TABLE[(((crc >> 8) as u8) ^ b) as usize])
}

/// The part of `key` that is hashed: the content of the first `{...}` if it is non-empty,
/// otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot a key belongs to.
pub fn key_slot(key: &[u8]) -> Slot {
    crc16(hash_tag(key)) % SLOT_COUNT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_redis_cluster_reference_vector() {
        // The check value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values as printed by `CLUSTER KEYSLOT` on a real Redis Cluster.
        let table: &[(&[u8], Slot)] = &[
            (b"foo", 12182),
            (b"bar", 5061),
            (b"hello", 866),
            (b"", 0),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
        ];
        for (key, slot) in table {
            assert_eq!(key_slot(key), *slot, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tag_rules() {
        let table: &[(&[u8], &[u8])] = &[
            (b"abc", b"abc"),
            (b"{abc}def", b"abc"),
            (b"x{}y", b"x{}y"),
            (b"x{y", b"x{y"),
            (b"x}y{z}", b"z"),
            (b"{a}{b}", b"a"),
        ];
        for (key, tag) in table {
            assert_eq!(hash_tag(key), *tag);
        }
    }
}
