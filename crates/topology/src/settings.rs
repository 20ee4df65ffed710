//! Per-cluster settings the controller enforces and uses for failure detection.

use serde::{Deserialize, Serialize};

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
        }
    }
}

impl ClusterSettings {
    /// The Redis configuration every server of a group with `replicas` replicas should carry,
    /// as `CONFIG SET` pairs (the same on replicas, so a promoted one is ready).
    pub fn redis_config(&self, replicas: usize) -> Vec<(&'static str, String)> {
        let min_replicas = self.min_replicas_to_write.min(replicas.saturating_sub(1) as u32);
        vec![
            ("min-replicas-to-write", min_replicas.to_string()),
            ("min-replicas-max-lag", self.min_replicas_max_lag.to_string()),
            ("repl-timeout", self.repl_timeout.to_string()),
            ("repl-ping-replica-period", self.repl_ping_replica_period.to_string()),
        ]
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
        assert_eq!(value(0), "0");
        assert_eq!(value(1), "0");
        assert_eq!(value(2), "1");
        assert_eq!(value(3), "2");
        assert_eq!(value(5), "2");
    }
}
