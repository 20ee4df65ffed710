//! The in-memory routing snapshot: slot → group → master connection pool. Built from a
//! topology record; swapped atomically when a new epoch arrives, so no request ever waits on
//! ZooKeeper.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use zedis_topology::{Markers, MigrationId, MigrationState, Slot, SlotRoute, Topology, SLOT_COUNT};

use crate::backend::{BackendOptions, ServerPool};

/// Where one group's requests go.
pub struct GroupRoute {
    pub id: u32,
    pub master: Arc<ServerPool>,
    /// The group's replicas (candidates for reads with `--read-from replica-preferred`).
    pub replicas: Vec<Arc<ServerPool>>,
}

/// A migration in flight, as routers see it (see [`crate::migrating`]).
pub struct MigrationRoute {
    pub id: MigrationId,
    /// Indices into [`RouteTable::groups`].
    pub source: usize,
    pub target: usize,
    /// Keys flow back to the source (the target's back marker is set or about to be).
    pub cancelling: bool,
    pub out_marker: Bytes,
    pub back_marker: Bytes,
    pub held: Bytes,
}

pub struct RouteTable {
    pub epoch: u64,
    /// Index into `groups` per slot; `u16::MAX` when the slot has no owner.
    slot_group: Box<[u16]>,
    pub groups: Vec<GroupRoute>,
    /// Index into `migrations` per slot; `u16::MAX` when the slot is not migrating.
    slot_migration: Box<[u16]>,
    pub migrations: Vec<MigrationRoute>,
}

const NO_GROUP: u16 = u16::MAX;

impl RouteTable {
    /// A table with no groups: every request gets a clear error until a topology arrives.
    pub fn empty() -> RouteTable {
        RouteTable {
            epoch: 0,
            slot_group: vec![NO_GROUP; SLOT_COUNT as usize].into_boxed_slice(),
            groups: Vec::new(),
            slot_migration: vec![NO_GROUP; SLOT_COUNT as usize].into_boxed_slice(),
            migrations: Vec::new(),
        }
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
        let mut migrations: Vec<MigrationRoute> = Vec::new();
        let mut slot_migration = vec![NO_GROUP; SLOT_COUNT as usize].into_boxed_slice();
        if topology.migrations.iter().any(|m| m.state.is_active()) {
            for slot in 0..SLOT_COUNT {
                let Some(SlotRoute::Migrating { id, source, target }) = topology.route(slot) else { continue };
                let (Some(&si), Some(&ti)) = (index.get(&source), index.get(&target)) else { continue };
                let i = match migrations.iter().position(|m| m.id == id && m.source == si as usize) {
                    Some(i) => i,
                    None => {
                        let markers = Markers::of(id);
                        let cancelling =
                            topology.migrations.iter().any(|m| m.id == id && m.state == MigrationState::Cancelling);
                        migrations.push(MigrationRoute {
                            id,
                            source: si as usize,
                            target: ti as usize,
                            cancelling,
                            out_marker: Bytes::from(markers.out),
                            back_marker: Bytes::from(markers.back),
                            held: Bytes::from(markers.held),
                        });
                        migrations.len() - 1
                    }
                };
                slot_migration[slot as usize] = i as u16;
            }
        }
        RouteTable { epoch: topology.epoch, slot_group, groups, slot_migration, migrations }
    }

    /// The migration `slot` is part of, if any: its commands take the migration path.
    pub fn migration_for(&self, slot: Slot) -> Option<&MigrationRoute> {
        let i = *self.slot_migration.get(slot as usize)?;
        self.migrations.get(i as usize)
    }

    /// Whether no slot is migrating (the common case: one check, no per-key work).
    pub fn no_migrations(&self) -> bool {
        self.migrations.is_empty()
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

    /// Waits (at most `timeout`) until every request queued so far on any backend connection
    /// has been answered. A router calls it after applying a new topology and before saying so
    /// in ZooKeeper, so that nothing it sent under the old one reaches a server after the
    /// controller acted on the new one (e.g. set a migration's marker).
    pub async fn drain_all(&self, timeout: std::time::Duration) {
        let pools: Vec<Arc<ServerPool>> =
            self.pools.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let answers: Vec<_> = pools.iter().flat_map(|p| p.ping_behind()).collect();
        let _ = tokio::time::timeout(timeout, async {
            for rx in answers {
                let _ = rx.await;
            }
        })
        .await;
    }

    /// Drops pools of servers no longer in the topology.
    pub fn retain(&self, topology: &Topology) {
        let wanted = topology.server_addrs();
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).retain(|addr, _| wanted.contains(addr));
    }
}
