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
        })
    }
}
