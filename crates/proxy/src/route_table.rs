//! The in-memory routing snapshot: slot → group → master connection pool. Built from a
//! topology record; swapped atomically when a new epoch arrives, so no request ever waits on
//! ZooKeeper.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zedis_topology::{Slot, Topology, SLOT_COUNT};

use crate::backend::{BackendOptions, ServerPool};

/// Where one group's requests go.
pub struct GroupRoute {
    pub id: u32,
    pub master: Arc<ServerPool>,
    /// The group's replicas (candidates for reads with `--read-from replica-preferred`).
    pub replicas: Vec<Arc<ServerPool>>,
}

pub struct RouteTable {
    pub epoch: u64,
    /// Index into `groups` per slot; `u16::MAX` when the slot has no owner.
    slot_group: Box<[u16]>,
    pub groups: Vec<GroupRoute>,
}

const NO_GROUP: u16 = u16::MAX;

impl RouteTable {
    /// A table with no groups: every request gets a clear error until a topology arrives.
    pub fn empty() -> RouteTable {
        RouteTable { epoch: 0, slot_group: vec![NO_GROUP; SLOT_COUNT as usize].into_boxed_slice(), groups: Vec::new() }
    }

    pub fn build(topology: &Topology, pools: &PoolRegistry) -> RouteTable {
        let groups: Vec<GroupRoute> = topology
            .groups
            .iter()
            .map(|g| GroupRoute {
                id: g.id,
                master: pools.get(&g.master),
                replicas: g.replicas().map(|r| pools.get(&r.addr)).collect(),
            })
            .collect();
        let index: HashMap<u32, u16> = groups.iter().enumerate().map(|(i, g)| (g.id, i as u16)).collect();
        let slot_group = (0..SLOT_COUNT)
            .map(|s| topology.slots.owner(s).and_then(|g| index.get(&g).copied()).unwrap_or(NO_GROUP))
            .collect();
        RouteTable { epoch: topology.epoch, slot_group, groups }
    }

    /// The group serving `slot`.
    pub fn group_for(&self, slot: Slot) -> Option<&GroupRoute> {
        let i = *self.slot_group.get(slot as usize)?;
        self.groups.get(i as usize)
    }

    /// Index of the group serving `slot` (for grouping keys of multi-key commands).
    pub fn group_index(&self, slot: Slot) -> Option<usize> {
        let i = *self.slot_group.get(slot as usize)?;
        (i != NO_GROUP).then_some(i as usize)
    }
}

/// One pool per server address, shared across route tables so connections survive epochs.
pub struct PoolRegistry {
    options: BackendOptions,
    pools: Mutex<HashMap<String, Arc<ServerPool>>>,
}

impl PoolRegistry {
    pub fn new(options: BackendOptions) -> PoolRegistry {
        PoolRegistry { options, pools: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, addr: &str) -> Arc<ServerPool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.entry(addr.to_string()).or_insert_with(|| Arc::new(ServerPool::new(addr, self.options.clone()))).clone()
    }

    /// Drops pools of servers no longer in the topology.
    pub fn retain(&self, topology: &Topology) {
        let wanted = topology.server_addrs();
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).retain(|addr, _| wanted.contains(addr));
    }
}
