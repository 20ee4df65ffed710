//! Reading `INFO` and `CONFIG GET` replies into an observation. Pure.

use std::collections::BTreeMap;

use zedis_topology::{Role, ServerObservation};

/// `INFO` text as key → value (section headers and blank lines skipped).
pub fn parse_info(text: &str) -> BTreeMap<&str, &str> {
    text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.trim_end_matches('\r').split_once(':')).collect()
}

/// Fills the replication fields of an observation from `INFO replication server`.
pub fn observe_info(text: &str, obs: &mut ServerObservation) {
    let info = parse_info(text);
    let int = |k: &str| info.get(k).and_then(|v| v.parse::<i64>().ok());
    obs.run_id = info.get("run_id").map(|s| s.to_string());
    obs.role = match info.get("role").copied() {
        Some("master") => Some(Role::Master),
        Some("slave") => Some(Role::Replica),
        _ => None,
    };
    obs.connected_replicas = int("connected_slaves").unwrap_or(0).max(0) as u32;
    match obs.role {
        Some(Role::Replica) => {
            obs.master = match (info.get("master_host"), info.get("master_port")) {
                (Some(h), Some(p)) if h.contains(':') => Some(format!("[{h}]:{p}")),
                (Some(h), Some(p)) => Some(format!("{h}:{p}")),
                _ => None,
            };
            obs.link_up = info.get("master_link_status") == Some(&"up");
            obs.link_down_ms = if obs.link_up {
                None
            } else {
                int("master_link_down_since_seconds").filter(|s| *s >= 0).map(|s| s as u64 * 1000)
            };
            obs.offset = int("slave_repl_offset").unwrap_or(0);
        }
        _ => {
            obs.master = None;
            obs.link_up = false;
            obs.link_down_ms = None;
            obs.offset = int("master_repl_offset").unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICA: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\n\r\n# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7001\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_link_down_since_seconds:3\r\nslave_repl_offset:1234\r\nconnected_slaves:0\r\nmaster_repl_offset:1234\r\n";
    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=7002,state=online,offset=99,lag=0\r\nmaster_repl_offset:99\r\n";

    #[test]
    fn replica_info() {
        let mut o = ServerObservation::default();
        observe_info(REPLICA, &mut o);
        assert_eq!(o.role, Some(Role::Replica));
        assert_eq!(o.master.as_deref(), Some("127.0.0.1:7001"));
        assert!(!o.link_up);
        assert_eq!(o.link_down_ms, Some(3000));
        assert_eq!(o.offset, 1234);
        assert_eq!(o.run_id.as_deref(), Some("abc"));
    }

    #[test]
    fn master_info() {
        let mut o = ServerObservation { master: Some("x:1".into()), link_up: true, ..Default::default() };
        observe_info(MASTER, &mut o);
        assert_eq!(o.role, Some(Role::Master));
        assert_eq!(o.master, None);
        assert!(!o.link_up);
        assert_eq!(o.offset, 99);
        assert_eq!(o.connected_replicas, 2);
    }

    #[test]
    fn garbage_is_harmless() {
        let mut o = ServerObservation::default();
        observe_info("no colon here\r\n:::\r\nrole:wizard\r\n", &mut o);
        assert_eq!(o.role, None);
    }
}
