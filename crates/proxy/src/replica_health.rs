//! With `--read-from replica-preferred`: which replicas may serve reads. A task checks every
//! replica's `INFO replication` twice a second; a replica qualifies while its master link is
//! up and its last contact with the master is within the allowed lag.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use zedis_resp::{Frame, Request};

use crate::backend::{Lane, ServerPool};
use crate::state::ProxyState;

/// Whether an `INFO replication` text shows a replica fresh enough to read from. Pure.
pub fn fresh_enough(info: &str, max_lag: Duration) -> bool {
    let field = |name: &str| {
        info.lines().find_map(|l| l.trim_end_matches('\r').strip_prefix(name).and_then(|v| v.strip_prefix(':')))
    };
    let replica = field("role") == Some("slave");
    let link_up = field("master_link_status") == Some("up");
    let last_io = field("master_last_io_seconds_ago").and_then(|v| v.parse::<i64>().ok());
    replica && link_up && last_io.is_some_and(|s| s >= 0 && (s as u64) <= max_lag.as_secs())
}

/// Keeps `state.readable` current until `shutdown`.
pub async fn watch_replicas(state: Arc<ProxyState>, max_lag: Duration, mut shutdown: watch::Receiver<bool>) {
    // Its own lane, so health checks never wait behind a client's pipeline.
    let lane = Lane { id: u64::MAX, resp3: false };
    let info = Request::from_args(["INFO", "replication"]).into_raw();
    loop {
        let routes = state.routes.load();
        let mut readable = HashSet::new();
        for group in &routes.groups {
            for replica in &group.replicas {
                if check(replica, lane, info.clone(), max_lag).await {
                    readable.insert(replica.addr().to_string());
                }
            }
        }
        state.readable.store(Arc::new(readable));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn check(pool: &ServerPool, lane: Lane, info: Bytes, max_lag: Duration) -> bool {
    let rx = pool.send(lane, info).await;
    let Ok(Ok(Ok(bytes))) = tokio::time::timeout(Duration::from_millis(500), rx).await else { return false };
    match Frame::parse(&bytes) {
        Ok(Some((frame, _))) => frame.as_bytes().is_some_and(|b| fresh_enough(&String::from_utf8_lossy(b), max_lag)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness() {
        let lag = Duration::from_secs(2);
        let replica = |link: &str, io: &str| {
            format!("# Replication\r\nrole:slave\r\nmaster_link_status:{link}\r\nmaster_last_io_seconds_ago:{io}\r\n")
        };
        assert!(fresh_enough(&replica("up", "0"), lag));
        assert!(fresh_enough(&replica("up", "2"), lag));
        assert!(!fresh_enough(&replica("up", "3"), lag));
        assert!(!fresh_enough(&replica("down", "0"), lag));
        assert!(!fresh_enough(&replica("up", "-1"), lag));
        assert!(!fresh_enough("# Replication\r\nrole:master\r\n", lag));
    }
}
