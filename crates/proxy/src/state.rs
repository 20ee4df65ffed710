//! What every session shares: options, the current route table, connection pools, metrics.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::options::ProxyOptions;
use crate::route_table::{PoolRegistry, RouteTable};

pub struct ProxyState {
    pub options: ProxyOptions,
    pub routes: ArcSwap<RouteTable>,
    pub pools: PoolRegistry,
    pub metrics: Metrics,
    /// Replicas that may serve reads now (with `--read-from replica-preferred`).
    pub readable: ArcSwap<std::collections::HashSet<String>>,
    /// The ZooKeeper session may be over (expired, or out of touch for a third of its
    /// timeout): the controller no longer waits for this router before moving slots, so it
    /// serves no data until it has read the topology in a live session again.
    pub session_lost: std::sync::atomic::AtomicBool,
    /// When ZooKeeper last answered (see [`crate::zk_contact`]).
    pub zk_contact: crate::zk_contact::ZkContact,
}

impl ProxyState {
    /// Marks the router out of service when it has been out of touch with ZooKeeper for so
    /// long that its session may have expired unnoticed (e.g. the process was stopped). Called
    /// with each batch of requests read (not per request: it reads the clock), before they are
    /// dispatched; dispatch then only checks [`ProxyState::session_lost`].
    pub fn check_zk_contact(&self, now: std::time::Instant) {
        if self.zk_contact.is_stale(now) && !self.session_lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::warn!("no word from ZooKeeper for a session timeout: serving no data until it answers again");
        }
    }
}

impl ProxyState {
    pub fn new(mut options: ProxyOptions) -> Arc<ProxyState> {
        options.backend.workers = options.threads.max(1);
        let pools = PoolRegistry::new(options.backend.clone());
        Arc::new(ProxyState {
            options,
            routes: ArcSwap::from_pointee(RouteTable::empty()),
            pools,
            metrics: Metrics::default(),
            readable: ArcSwap::from_pointee(Default::default()),
            session_lost: std::sync::atomic::AtomicBool::new(false),
            zk_contact: Default::default(),
        })
    }
}
