//! Keeps the route table in step with the topology in ZooKeeper through a watch, and keeps
//! this proxy's registration node (address, applied epoch) current. Requests never wait on
//! this: when ZooKeeper is away, the last table keeps serving.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::sync::watch;
use zedis_coord::SessionState;
use zedis_coord::{ClusterPaths, CoordError, TopologyStore, Zk, ZkOptions};
use zedis_topology::now_ms;

use crate::route_table::RouteTable;
use crate::state::ProxyState;

#[derive(Serialize)]
struct Registration<'a> {
    id: &'a str,
    addr: &'a str,
    epoch: u64,
    version: &'a str,
    pid: u32,
    since_ms: u64,
    /// This router stops serving when out of touch for a third of this; the controller waits
    /// this long after a router vanished before it moves slots.
    session_timeout_ms: u64,
}

/// Follows the topology until `shutdown`; reconnects and re-registers after session loss.
pub async fn follow(
    state: Arc<ProxyState>,
    zk_options: ZkOptions,
    paths: ClusterPaths,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), CoordError> {
    let since = now_ms();
    loop {
        let zk = tokio::select! {
            zk = Zk::connect(&zk_options) => zk,
            _ = shutdown.changed() => return Ok(()),
        };
        let zk = match zk {
            Ok(zk) => zk,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach ZooKeeper; serving the last topology");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        };
        let _guard = SessionGuard(tokio::spawn(guard_session(state.clone(), zk.clone())));
        let store = TopologyStore::new(zk.clone(), paths.clone());
        let dir = match state.options.role {
            crate::options::RouterRole::Proxy => paths.proxies(),
            crate::options::RouterRole::Client => paths.clients(),
        };
        // Clusters created before a kind of router existed lack its directory.
        if let Err(e) = zk.ensure_path(&dir).await {
            tracing::warn!(error = %e, dir, "cannot create the registration directory");
        }
        loop {
            let (topo, watcher) = match store.read_and_watch().await {
                Ok(v) => v,
                Err(e) if e.is_session_lost() => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read topology; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            };
            let current = state.routes.load().epoch;
            if topo.value.epoch != current {
                state.pools.retain(&topo.value);
                state.routes.store(Arc::new(RouteTable::build(&topo.value, &state.pools)));
                state.metrics.topology_epoch.store(topo.value.epoch, std::sync::atomic::Ordering::Relaxed);
                // What went out under the old table is answered before we say we have the new.
                state.pools.drain_all(state.options.request_timeout).await;
                tracing::info!(epoch = topo.value.epoch, "applied topology");
            }
            let reg = Registration {
                id: &state.options.id,
                addr: &state.options.listen,
                epoch: topo.value.epoch,
                version: env!("CARGO_PKG_VERSION"),
                pid: std::process::id(),
                since_ms: since,
                session_timeout_ms: zk.session_timeout().as_millis() as u64,
            };
            let path = format!("{dir}/{}", state.options.id);
            match zk.put_ephemeral(&path, &serde_json::to_vec(&reg).unwrap_or_default()).await {
                Ok(_) => {
                    if state.session_lost.swap(false, Ordering::SeqCst) {
                        tracing::info!(epoch = topo.value.epoch, "ZooKeeper session live again: serving");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot register the proxy"),
            }
            tokio::select! {
                _ = watcher.changed() => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}

struct SessionGuard(tokio::task::JoinHandle<()>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps [`ProxyState::zk_contact`] fresh by asking ZooKeeper something small every sixth of
/// the session timeout, and marks the router out of service when the session is over. A
/// router that was out of touch serves again when ZooKeeper answers within the same session
/// (its registration stood all along, so the controller waited for it); after an expiry, once
/// the follower has re-read the topology and re-registered.
async fn guard_session(state: Arc<ProxyState>, zk: Zk) {
    let timeout = zk.session_timeout();
    state.zk_contact.track(timeout);
    let mut states = zk.client().state_watcher();
    let mut tick = tokio::time::interval((timeout / 6).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if zk.get("/").await.is_ok() {
                    state.zk_contact.touch();
                    if state.session_lost.swap(false, Ordering::SeqCst) {
                        tracing::info!("ZooKeeper answers again within the session: serving");
                    }
                }
            }
            s = states.changed() => {
                if matches!(s, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) {
                    lose(&state, s);
                    return;
                }
            }
        }
    }
}

fn lose(state: &ProxyState, why: SessionState) {
    if !state.session_lost.swap(true, Ordering::SeqCst) {
        tracing::warn!(state = ?why, "ZooKeeper session may be lost: serving no data until the topology is read again");
    }
}
