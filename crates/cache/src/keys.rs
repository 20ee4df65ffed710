//! The Redis keys behind one cache key. Pure.
//!
//! A cache key has two Redis keys: the entry and its lease (the loader lock). They are
//! written together by one script, so they must hash to the same cluster slot: both carry
//! the same hash tag. A key without braces is wrapped in one (`user:42` →
//! `zedis:cache:{user:42}` and `zedis:cache:{user:42}:lock`); a key that already has a hash
//! tag keeps it (`{user:42}:profile` → `zedis:cache:{user:42}:profile`), so callers can put
//! related entries in one slot.

/// The Redis keys of one cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CacheKeys {
    /// Holds the entry (an [`Envelope`](crate::envelope::Envelope) as JSON).
    pub value: String,
    /// Holds the current loader's lease token while a load runs.
    pub lock: String,
}

/// Longest cache key accepted, in bytes (Redis takes far longer keys, but a key this long is a
/// bug, and every key is also sent in invalidation messages).
pub(crate) const MAX_KEY_LEN: usize = 4096;

/// The keys for `key` under `prefix` (which must not contain braces; the options check that).
pub(crate) fn layout(prefix: &str, key: &str) -> Result<CacheKeys, &'static str> {
    if key.is_empty() {
        return Err("the key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return Err("the key is longer than 4096 bytes");
    }
    let value = if has_hash_tag(key) {
        format!("{prefix}{key}")
    } else if key.contains(['{', '}']) {
        // Wrapping it would give a tag that is not the whole key (or an empty one), and the
        // caller's intent is unclear: refuse rather than guess.
        return Err("the key has '{' or '}' but no hash tag ('{' then a non-empty tag then '}')");
    } else {
        format!("{prefix}{{{key}}}")
    };
    let lock = format!("{value}:lock");
    Ok(CacheKeys { value, lock })
}

/// Redis Cluster's rule: the key has a `{`, a later `}`, and something between the first `{`
/// and the first `}` after it.
pub(crate) fn has_hash_tag(key: &str) -> bool {
    let Some(open) = key.find('{') else { return false };
    match key[open + 1..].find('}') {
        Some(len) => len > 0,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of a key Redis Cluster hashes.
    fn hashed_part(key: &str) -> &str {
        if let Some(open) = key.find('{') {
            if let Some(len) = key[open + 1..].find('}') {
                if len > 0 {
                    return &key[open + 1..open + 1 + len];
                }
            }
        }
        key
    }

    #[test]
    fn layouts() {
        // (prefix, key, Ok((value key, lock key)) or Err)
        type Case = (&'static str, &'static str, Result<(&'static str, &'static str), ()>);
        let cases: &[Case] = &[
            ("p:", "user:42", Ok(("p:{user:42}", "p:{user:42}:lock"))),
            ("p:", "{user:42}:profile", Ok(("p:{user:42}:profile", "p:{user:42}:profile:lock"))),
            ("p:", "a{b}c{", Ok(("p:a{b}c{", "p:a{b}c{:lock"))),
            ("", "k", Ok(("{k}", "{k}:lock"))),
            ("p:", "", Err(())),
            ("p:", "{}x", Err(())),
            ("p:", "}x", Err(())),
            ("p:", "x{", Err(())),
            ("p:", "x}y", Err(())),
        ];
        for (prefix, key, want) in cases {
            let got = layout(prefix, key);
            match (got, want) {
                (Ok(keys), Ok((value, lock))) => {
                    assert_eq!(keys.value, *value, "value key of {key:?}");
                    assert_eq!(keys.lock, *lock, "lock key of {key:?}");
                    assert_eq!(hashed_part(&keys.value), hashed_part(&keys.lock), "same slot for {key:?}");
                }
                (Err(_), Err(())) => {}
                (got, want) => panic!("{key:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(layout("p:", &"x".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn hash_tags() {
        for (key, want) in [("{a}", true), ("x{a}y", true), ("{}", false), ("{", false), ("}{a}", true), ("ab", false)]
        {
            assert_eq!(has_hash_tag(key), want, "{key:?}");
        }
    }
}
