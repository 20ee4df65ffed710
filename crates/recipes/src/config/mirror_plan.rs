//! The mirror's decisions, pure: the Redis keys of a namespace, what each key's entry looks
//! like, and what to write so that Redis matches ZooKeeper.
//!
//! # Redis layout
//! - `zedis:config:<ns>` — hash, key → value, live keys only. What applications read with
//!   `HGET zedis:config:<ns> <key>`. Its name is fixed by the public interface.
//! - `{zedis:config:<ns>}:meta` — hash, key → JSON `{"version":7,"format":"json",
//!   "time_ms":..., "author":"...", "deleted":false}`, for live *and* deleted keys (a deletion
//!   keeps its version, so an older write can never bring a deleted key back).
//! - Channel `zedis:config:<ns>` — one JSON message per applied change:
//!   `{"namespace":"app","key":"db.url","version":7,"deleted":false}`.
//!
//! The version check must read the stored version and write the value atomically, in one
//! script, and a script on a sharded cluster may only touch keys of one hash slot. The values
//! key has no braces, so its slot is the CRC16 of its whole name; the meta key's hash tag is
//! exactly that name (`{zedis:config:<ns>}`), so both land in the same slot — without
//! renaming the public key and without mixing version fields into the hash applications read.
//! Namespace names cannot contain braces, so the tag is always the full values key.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::format::Format;
use super::record::ConfigRecord;

/// Prefix of the values hash and of the channel of each namespace.
pub const CONFIG_KEY_PREFIX: &str = "zedis:config:";

/// `zedis:config:<ns>`: the hash applications read.
pub fn values_key(namespace: &str) -> String {
    format!("{CONFIG_KEY_PREFIX}{namespace}")
}

/// `{zedis:config:<ns>}:meta`: the versions, in the values key's hash slot.
pub fn meta_key(namespace: &str) -> String {
    format!("{{{CONFIG_KEY_PREFIX}{namespace}}}:meta")
}

/// `zedis:config:<ns>`: where changes are announced.
pub fn channel(namespace: &str) -> String {
    values_key(namespace)
}

/// The namespace of a meta key, if it is one of the mirror's.
pub fn namespace_of_meta_key(key: &str) -> Option<&str> {
    key.strip_prefix('{')?.strip_prefix(CONFIG_KEY_PREFIX)?.strip_suffix("}:meta").filter(|ns| !ns.is_empty())
}

/// The `SCAN MATCH` pattern of every meta key.
pub fn meta_key_pattern() -> String {
    format!("{{{CONFIG_KEY_PREFIX}*}}:meta")
}

/// One key's entry in the meta hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRecord {
    pub version: u64,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub time_ms: u64,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub deleted: bool,
}

impl MetaRecord {
    pub fn of(record: &ConfigRecord) -> MetaRecord {
        MetaRecord {
            version: record.version,
            format: record.format,
            time_ms: record.time_ms,
            author: record.author.clone(),
            deleted: record.deleted,
        }
    }

    pub fn to_json(&self) -> String {
        // Plain strings and integers always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(json: &str) -> Option<MetaRecord> {
        serde_json::from_str(json).ok()
    }
}

/// The message published on the namespace's channel for an applied change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub namespace: String,
    pub key: String,
    /// The new version (0 when the key was purged because it no longer exists in ZooKeeper).
    pub version: u64,
    pub deleted: bool,
}

impl Notification {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One write of the mirror, carried out by the version-checked script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorWrite {
    /// Store `record` (its value, or its deletion) unless Redis has a newer version.
    Record { key: String, record: ConfigRecord },
    /// Remove every trace of `key` (its node is gone from ZooKeeper).
    Purge { key: String },
}

impl MirrorWrite {
    pub fn key(&self) -> &str {
        match self {
            MirrorWrite::Record { key, .. } | MirrorWrite::Purge { key } => key,
        }
    }
}

/// What to do to one namespace's hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespacePlan {
    pub writes: Vec<MirrorWrite>,
    /// Keys for which Redis holds a newer version than ZooKeeper (key, Redis, ZooKeeper):
    /// left alone, since the mirror never goes backwards, and reported.
    pub ahead: Vec<(String, u64, u64)>,
}

/// What makes Redis (`meta`, `values`: the two hashes as read) match ZooKeeper (`zk`: each
/// key's released record). Keys in `skip` (unreadable in ZooKeeper) are left as they are.
pub fn plan_namespace(
    zk: &BTreeMap<String, ConfigRecord>,
    meta: &BTreeMap<String, String>,
    values: &BTreeMap<String, String>,
    skip: &BTreeSet<String>,
) -> NamespacePlan {
    let mut plan = NamespacePlan::default();
    for (key, record) in zk {
        let stored = meta.get(key).and_then(|m| MetaRecord::parse(m));
        let write = match &stored {
            None => true,
            Some(m) if m.version > record.version => {
                plan.ahead.push((key.clone(), m.version, record.version));
                false
            }
            Some(m) if m.version < record.version => true,
            // Same version: repair whatever differs (a hand edit, half of a lost write).
            Some(m) => {
                let value_ok =
                    if record.deleted { !values.contains_key(key) } else { values.get(key) == Some(&record.value) };
                *m != MetaRecord::of(record) || !value_ok
            }
        };
        if write {
            plan.writes.push(MirrorWrite::Record { key: key.clone(), record: record.clone() });
        }
    }
    let extra: BTreeSet<&String> =
        meta.keys().chain(values.keys()).filter(|k| !zk.contains_key(*k) && !skip.contains(*k)).collect();
    plan.writes.extend(extra.into_iter().map(|key| MirrorWrite::Purge { key: key.clone() }));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &str, version: u64, deleted: bool) -> ConfigRecord {
        ConfigRecord {
            value: value.into(),
            format: Format::Text,
            version,
            time_ms: 1,
            author: "a".into(),
            comment: "not mirrored".into(),
            deleted,
            canary: None,
        }
    }

    fn meta_of(r: &ConfigRecord) -> String {
        MetaRecord::of(r).to_json()
    }

    fn map(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn keys_share_a_slot() {
        assert_eq!(values_key("app"), "zedis:config:app");
        assert_eq!(meta_key("app"), "{zedis:config:app}:meta");
        assert_eq!(channel("app"), "zedis:config:app");
        assert_eq!(namespace_of_meta_key("{zedis:config:app}:meta"), Some("app"));
        assert_eq!(namespace_of_meta_key("zedis:config:app"), None);
        assert_eq!(namespace_of_meta_key("{zedis:config:}:meta"), None);
        assert_eq!(meta_key_pattern(), "{zedis:config:*}:meta");
        // Redis Cluster hashes the part between the first '{' and the next '}' when it is not
        // empty, else the whole key: the meta key hashes exactly the values key's name.
        fn hashed(key: &str) -> &str {
            match key.find('{') {
                Some(open) => match key[open + 1..].find('}') {
                    Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                    _ => key,
                },
                None => key,
            }
        }
        for ns in ["app", "a.b-c_d"] {
            assert_eq!(hashed(&meta_key(ns)), hashed(&values_key(ns)));
            assert_eq!(hashed(&channel(ns)), hashed(&values_key(ns)));
        }
    }

    #[test]
    fn plan_table() {
        let v2 = rec("two", 2, false);
        let v3 = rec("three", 3, false);
        let d4 = rec("", 4, true);
        let none = BTreeSet::new();
        struct Row {
            zk: Vec<(&'static str, ConfigRecord)>,
            meta: BTreeMap<String, String>,
            values: BTreeMap<String, String>,
            writes: Vec<&'static str>,
            purges: Vec<&'static str>,
            ahead: usize,
        }
        let rows = vec![
            // Empty Redis (first start, or flushed): write everything.
            Row {
                zk: vec![("a", v2.clone()), ("d", d4.clone())],
                meta: map(&[]),
                values: map(&[]),
                writes: vec!["a", "d"],
                purges: vec![],
                ahead: 0,
            },
            // Up to date.
            Row {
                zk: vec![("a", v2.clone()), ("d", d4.clone())],
                meta: map(&[("a", meta_of(&v2)), ("d", meta_of(&d4))]),
                values: map(&[("a", "two".into())]),
                writes: vec![],
                purges: vec![],
                ahead: 0,
            },
            // Behind (a lost write after a failover).
            Row {
                zk: vec![("a", v3.clone())],
                meta: map(&[("a", meta_of(&v2))]),
                values: map(&[("a", "two".into())]),
                writes: vec!["a"],
                purges: vec![],
                ahead: 0,
            },
            // Same version, value edited by hand: repaired.
            Row {
                zk: vec![("a", v2.clone())],
                meta: map(&[("a", meta_of(&v2))]),
                values: map(&[("a", "hand".into())]),
                writes: vec!["a"],
                purges: vec![],
                ahead: 0,
            },
            // Same version, a deleted key still has a value.
            Row {
                zk: vec![("d", d4.clone())],
                meta: map(&[("d", meta_of(&d4))]),
                values: map(&[("d", "x".into())]),
                writes: vec!["d"],
                purges: vec![],
                ahead: 0,
            },
            // Unparsable meta: rewritten.
            Row {
                zk: vec![("a", v2.clone())],
                meta: map(&[("a", "junk".into())]),
                values: map(&[("a", "two".into())]),
                writes: vec!["a"],
                purges: vec![],
                ahead: 0,
            },
            // Redis ahead: left alone, reported.
            Row {
                zk: vec![("a", v2.clone())],
                meta: map(&[("a", meta_of(&v3))]),
                values: map(&[("a", "three".into())]),
                writes: vec![],
                purges: vec![],
                ahead: 1,
            },
            // Keys gone from ZooKeeper: purged (from either hash).
            Row {
                zk: vec![],
                meta: map(&[("x", meta_of(&v2))]),
                values: map(&[("y", "v".into())]),
                writes: vec![],
                purges: vec!["x", "y"],
                ahead: 0,
            },
        ];
        for (i, row) in rows.into_iter().enumerate() {
            let zk: BTreeMap<String, ConfigRecord> = row.zk.into_iter().map(|(k, r)| (k.to_string(), r)).collect();
            let plan = plan_namespace(&zk, &row.meta, &row.values, &none);
            let writes: Vec<&str> =
                plan.writes.iter().filter(|w| matches!(w, MirrorWrite::Record { .. })).map(|w| w.key()).collect();
            let purges: Vec<&str> =
                plan.writes.iter().filter(|w| matches!(w, MirrorWrite::Purge { .. })).map(|w| w.key()).collect();
            assert_eq!(writes, row.writes, "row {i} writes");
            assert_eq!(purges, row.purges, "row {i} purges");
            assert_eq!(plan.ahead.len(), row.ahead, "row {i} ahead");
        }
    }

    #[test]
    fn unreadable_keys_are_not_purged() {
        let skip: BTreeSet<String> = ["bad".to_string()].into();
        let plan = plan_namespace(&BTreeMap::new(), &map(&[("bad", "{}".into())]), &map(&[]), &skip);
        assert!(plan.writes.is_empty());
    }

    #[test]
    fn meta_and_notification_json() {
        let m = MetaRecord::of(&rec("x", 7, false));
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": 7, "format": "text", "time_ms": 1, "author": "a", "deleted": false})
        );
        assert_eq!(MetaRecord::parse(&m.to_json()), Some(m));
        let n = Notification { namespace: "app".into(), key: "k".into(), version: 7, deleted: false };
        assert_eq!(n.to_json(), r#"{"namespace":"app","key":"k","version":7,"deleted":false}"#);
    }
}
