//! What every session shares: options, the current route table, connection pools, metrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::options::ProxyOptions;
use crate::route_table::{PoolRegistry, RouteTable};

pub struct ProxyState {
    pub options: ProxyOptions,
    pub routes: ArcSwap<RouteTable>,
    pub pools: PoolRegistry,
    pub metrics: Metrics,
}

impl ProxyState {
    pub fn new(options: ProxyOptions) -> Arc<ProxyState> {
        let pools = PoolRegistry::new(options.backend.clone());
        Arc::new(ProxyState {
            options,
            routes: ArcSwap::from_pointee(RouteTable::empty()),
            pools,
            metrics: Metrics::default(),
        })
    }
}

#[derive(Default)]
pub struct Metrics {
    pub clients: AtomicUsize,
    pub clients_total: AtomicU64,
    pub commands: AtomicU64,
    pub errors: AtomicU64,
    pub backend_errors: AtomicU64,
    pub rejected_clients: AtomicU64,
}

impl Metrics {
    pub fn client_opened(&self) {
        self.clients.fetch_add(1, Ordering::Relaxed);
        self.clients_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn client_closed(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }
}
