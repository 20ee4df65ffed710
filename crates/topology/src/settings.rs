//! Per-cluster settings the controller enforces and uses for failure detection, and the
//! operator's fleet-wide Redis settings (`zedis cluster config set`).

pub mod redis_config;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use redis_config::{canonical_setting, human_bytes, is_memory_setting, safe_names, RedisSettingError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSettings {
    /// `min-replicas-to-write` for masters, so an isolated master stops taking writes. Capped
    /// per group at its replica count minus one, so the group stays writable after a failover
    /// (the new master has one replica fewer); a group of one master and one replica is
    /// therefore not fenced this way (the proxy still routes only to the current epoch's master).
    pub min_replicas_to_write: u32,
    /// Set on every server as `min-replicas-max-lag` (seconds).
    pub min_replicas_max_lag: u32,
    /// A server is down for an observer after this long without a good probe.
    pub down_after_ms: u64,
    /// How often each controller probes each server.
    pub probe_interval_ms: u64,
    /// Replicas whose master link has been down this much longer than the master has been
    /// down are too stale to promote.
    pub max_replica_link_down_ms: u64,
    /// Set on every server as `repl-timeout` (seconds), so a replica of a frozen master sees
    /// its link go down quickly and the link-up guard does not hold a failover for long.
    pub repl_timeout: u32,
    /// Set on every server as `repl-ping-replica-period` (seconds).
    pub repl_ping_replica_period: u32,
    /// Fail over automatically when a majority of observers see a master down.
    pub auto_failover: bool,
    /// Operator-chosen Redis settings for every server (`zedis cluster config set`), only
    /// from the safe list of [`redis_config`] and in canonical form (as `CONFIG GET` reports
    /// them), so the controller can tell drift by comparing strings.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redis: BTreeMap<String, String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            min_replicas_to_write: 1,
            min_replicas_max_lag: 10,
            down_after_ms: 1000,
            probe_interval_ms: 200,
            max_replica_link_down_ms: 30_000,
            repl_timeout: 5,
            repl_ping_replica_period: 1,
            auto_failover: true,
            redis: BTreeMap::new(),
        }
    }
}

impl ClusterSettings {
    /// The Redis configuration every server of a group with `replicas` replicas should carry,
    /// as `CONFIG SET` pairs (the same on replicas, so a promoted one is ready): the settings
    /// zedis manages first, then the operator's.
    pub fn redis_config(&self, replicas: usize) -> Vec<(String, String)> {
        let min_replicas = self.min_replicas_to_write.min(replicas.saturating_sub(1) as u32);
        let managed = [
            ("min-replicas-to-write", min_replicas.to_string()),
            ("min-replicas-max-lag", self.min_replicas_max_lag.to_string()),
            ("repl-timeout", self.repl_timeout.to_string()),
            ("repl-ping-replica-period", self.repl_ping_replica_period.to_string()),
        ];
        managed
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.redis.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// These settings with the operator's Redis settings `changes` added or replaced; each is
    /// validated against the safe list and stored in canonical form.
    pub fn with_redis_settings(
        &self,
        changes: &BTreeMap<String, String>,
    ) -> Result<ClusterSettings, RedisSettingError> {
        let mut next = self.clone();
        for (name, value) in changes {
            let (name, value) = canonical_setting(name, value)?;
            next.redis.insert(name, value);
        }
        Ok(next)
    }

    /// These settings without the operator's Redis settings `names` (the servers keep their
    /// current values: Redis cannot reset one setting to its default). Unknown or unset
    /// names are an error, so a typo does not pass silently.
    pub fn without_redis_settings(&self, names: &[String]) -> Result<ClusterSettings, String> {
        let mut next = self.clone();
        for name in names {
            let lower = name.trim().to_ascii_lowercase();
            // Accept aliases and odd case the way `set` does.
            let key = canonical_setting(&lower, "0").map(|(n, _)| n).unwrap_or(lower);
            if next.redis.remove(&key).is_none() {
                return Err(format!("Redis setting {name:?} is not set for this cluster"));
            }
        }
        Ok(next)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.probe_interval_ms < 10 {
            return Err("probe_interval_ms must be at least 10".into());
        }
        if self.down_after_ms < self.probe_interval_ms * 2 {
            return Err(format!(
                "down_after_ms ({}) must be at least twice probe_interval_ms ({})",
                self.down_after_ms, self.probe_interval_ms
            ));
        }
        if self.repl_timeout <= self.repl_ping_replica_period {
            return Err("repl_timeout must be greater than repl_ping_replica_period".into());
        }
        for (name, value) in &self.redis {
            match canonical_setting(name, value) {
                Ok((n, v)) if &n == name && &v == value => {}
                Ok((n, v)) => return Err(format!("Redis setting {name} {value:?} is not canonical (want {n} {v:?})")),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_replicas_to_write_leaves_a_failed_over_group_writable() {
        let s = ClusterSettings { min_replicas_to_write: 2, ..ClusterSettings::default() };
        let value = |replicas: usize| s.redis_config(replicas)[0].1.clone();
        assert_eq!(s.redis_config(0)[0].0, "min-replicas-to-write");
        assert_eq!(value(0), "0");
        assert_eq!(value(1), "0");
        assert_eq!(value(2), "1");
        assert_eq!(value(3), "2");
        assert_eq!(value(5), "2");
    }

    #[test]
    fn operator_settings_are_canonical_and_come_after_the_managed_ones() {
        let changes: BTreeMap<String, String> = [("MaxMemory", "64mb"), ("maxmemory-policy", "allkeys-lru")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = ClusterSettings::default().with_redis_settings(&changes).unwrap();
        s.validate().unwrap();
        let pairs = s.redis_config(2);
        assert_eq!(pairs.len(), 6);
        assert_eq!(
            &pairs[4..],
            &[
                ("maxmemory".to_string(), "67108864".to_string()),
                ("maxmemory-policy".to_string(), "allkeys-lru".to_string())
            ]
        );
        let refused = [("dir".to_string(), "/".to_string())].into_iter().collect();
        assert!(matches!(s.with_redis_settings(&refused), Err(RedisSettingError::Refused { .. })));

        let s = s.without_redis_settings(&["MAXMEMORY".to_string()]).unwrap();
        assert_eq!(s.redis.keys().collect::<Vec<_>>(), vec!["maxmemory-policy"]);
        assert!(s.without_redis_settings(&["maxmemory".to_string()]).unwrap_err().contains("not set"));
    }

    #[test]
    fn validate_refuses_hand_edited_redis_settings() {
        let table: &[(&str, &str, &str)] = &[
            ("maxmemory", "64mb", "not canonical"),
            ("hash-max-ziplist-entries", "5", "not canonical"),
            ("replicaof", "h 1", "refusing"),
            ("maxmemory-policy", "sometimes", "bad value"),
        ];
        for (name, value, needle) in table {
            let mut s = ClusterSettings::default();
            s.redis.insert(name.to_string(), value.to_string());
            let err = s.validate().unwrap_err();
            assert!(err.contains(needle), "{name} {value}: {err}");
        }
    }

    #[test]
    fn records_without_redis_settings_still_parse_and_empty_ones_are_not_written() {
        let json = serde_json::to_string(&ClusterSettings::default()).unwrap();
        assert!(!json.contains("redis"), "{json}");
        let s: ClusterSettings = serde_json::from_str(r#"{"down_after_ms": 3000}"#).unwrap();
        assert!(s.redis.is_empty());
    }
}
