//! The mirror's decision, pure: what to write to a service's Redis hash so that it equals
//! the service's instances in ZooKeeper, and the notification that describes the change.

use std::collections::BTreeMap;

use serde::Serialize;

/// Prefix of the Redis hash (and of the pub/sub channel) of each service:
/// `zedis:services:<service>`.
pub const SERVICES_KEY_PREFIX: &str = "zedis:services:";

/// The Redis key (and channel) of a service.
pub fn service_key(service: &str) -> String {
    format!("{SERVICES_KEY_PREFIX}{service}")
}

/// The service named by a Redis key, if it is one of the mirror's.
pub fn service_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(SERVICES_KEY_PREFIX).filter(|s| !s.is_empty())
}

/// What to change in one service's hash: `HSET` the `set` fields, `HDEL` the `delete` ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorPlan {
    /// Fields to write (added and updated instances), by id, in id order.
    pub set: Vec<(String, String)>,
    /// Ids in ZooKeeper but not in Redis.
    pub added: Vec<String>,
    /// Ids whose record differs.
    pub updated: Vec<String>,
    /// Ids in Redis but not in ZooKeeper: the fields to delete.
    pub removed: Vec<String>,
    /// How many instances the service has in ZooKeeper (after the change).
    pub instances: usize,
}

/// The message published on the service's channel after a change.
#[derive(Serialize)]
struct Notification<'a> {
    service: &'a str,
    added: &'a [String],
    updated: &'a [String],
    removed: &'a [String],
    instances: usize,
}

impl MirrorPlan {
    /// The plan that makes `redis` (field → value) equal to `zk` (id → record).
    pub fn diff(zk: &BTreeMap<String, String>, redis: &BTreeMap<String, String>) -> MirrorPlan {
        let mut plan = MirrorPlan { instances: zk.len(), ..MirrorPlan::default() };
        for (id, record) in zk {
            match redis.get(id) {
                None => plan.added.push(id.clone()),
                Some(old) if old != record => plan.updated.push(id.clone()),
                Some(_) => continue,
            }
            plan.set.push((id.clone(), record.clone()));
        }
        plan.removed = redis.keys().filter(|id| !zk.contains_key(*id)).cloned().collect();
        plan
    }

    /// Nothing to do: Redis already equals ZooKeeper.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// The JSON published on the service's channel, e.g.
    /// `{"service":"api","added":["a-2"],"updated":[],"removed":["a-1"],"instances":1}`.
    pub fn notification(&self, service: &str) -> String {
        let n = Notification {
            service,
            added: &self.added,
            updated: &self.updated,
            removed: &self.removed,
            instances: self.instances,
        };
        // Strings and integers always serialize.
        serde_json::to_string(&n).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn diff_table() {
        // (zk, redis, set, added, updated, removed)
        type Row<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let table: &[Row] = &[
            (&[], &[], &[], &[], &[], &[]),
            (&[("a", "1")], &[("a", "1")], &[], &[], &[], &[]),
            (&[("a", "1")], &[], &["a"], &["a"], &[], &[]),
            (&[], &[("a", "1")], &[], &[], &[], &["a"]),
            (&[("a", "2")], &[("a", "1")], &["a"], &[], &["a"], &[]),
            (
                &[("a", "1"), ("b", "2"), ("c", "3")],
                &[("b", "x"), ("c", "3"), ("d", "4")],
                &["a", "b"],
                &["a"],
                &["b"],
                &["d"],
            ),
        ];
        for (zk, redis, set, added, updated, removed) in table {
            let plan = MirrorPlan::diff(&map(zk), &map(redis));
            let set_ids: Vec<&str> = plan.set.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(&set_ids, set, "set for {zk:?} vs {redis:?}");
            assert_eq!(&plan.added, added, "added for {zk:?} vs {redis:?}");
            assert_eq!(&plan.updated, updated, "updated for {zk:?} vs {redis:?}");
            assert_eq!(&plan.removed, removed, "removed for {zk:?} vs {redis:?}");
            assert_eq!(plan.is_empty(), set.is_empty() && removed.is_empty());
            assert_eq!(plan.instances, zk.len());
            // Applying the plan gives exactly the ZooKeeper side.
            let mut after = map(redis);
            for id in &plan.removed {
                after.remove(id);
            }
            for (id, v) in &plan.set {
                after.insert(id.clone(), v.clone());
            }
            assert_eq!(after, map(zk));
        }
    }

    #[test]
    fn values_are_the_zookeeper_records() {
        let plan = MirrorPlan::diff(&map(&[("a", "{\"x\":1}")]), &map(&[("a", "{}")]));
        assert_eq!(plan.set, vec![("a".to_string(), "{\"x\":1}".to_string())]);
    }

    #[test]
    fn notification_json() {
        let plan = MirrorPlan::diff(&map(&[("b", "2")]), &map(&[("a", "1")]));
        let v: serde_json::Value = serde_json::from_str(&plan.notification("api")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"service": "api", "added": ["b"], "updated": [], "removed": ["a"], "instances": 1})
        );
    }

    #[test]
    fn keys() {
        assert_eq!(service_key("api"), "zedis:services:api");
        assert_eq!(service_of_key("zedis:services:api"), Some("api"));
        assert_eq!(service_of_key("zedis:services:"), None);
        assert_eq!(service_of_key("zedis:locks:x"), None);
    }
}
