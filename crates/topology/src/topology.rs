//! The whole-cluster record stored at `/<root>/clusters/<cluster>/topology`.

use serde::{Deserialize, Serialize};

use crate::addr::parse_addr;
use crate::error::TopologyError;
use crate::group::{Group, GroupId, Server};
use crate::migration::{Migration, SlotRoute};
use crate::settings::ClusterSettings;
use crate::slot::Slot;
use crate::slot_map::SlotMap;

/// Format version of the JSON record, bumped on incompatible changes.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub format: u32,
    pub cluster: String,
    /// Bumped by every change; proxies and clients compare epochs to know which is newer.
    pub epoch: u64,
    pub groups: Vec<Group>,
    pub slots: SlotMap,
    #[serde(default)]
    pub settings: ClusterSettings,
    /// Slot migrations, in flight and finished (see [`crate::migration`]).
    #[serde(default)]
    pub migrations: Vec<Migration>,
}

/// A group as given to `cluster create` or `add-group`: the first server is the master.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    pub servers: Vec<Server>,
}

impl Topology {
    /// A new cluster at epoch 1, with slots spread evenly over the groups (ids 1, 2, ...).
    pub fn new(cluster: &str, groups: &[GroupSpec], settings: ClusterSettings) -> Result<Topology, TopologyError> {
        if groups.is_empty() {
            return Err(TopologyError::NoGroups);
        }
        settings.validate().map_err(TopologyError::BadSettings)?;
        let mut topo = Topology {
            format: FORMAT,
            cluster: cluster.to_string(),
            epoch: 0,
            groups: Vec::new(),
            slots: SlotMap::default(),
            settings,
            migrations: Vec::new(),
        };
        for spec in groups {
            topo = topo.add_group(spec)?.0;
        }
        let ids: Vec<GroupId> = topo.groups.iter().map(|g| g.id).collect();
        topo.slots = SlotMap::spread(&ids);
        topo.epoch = 1;
        Ok(topo)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Topology, TopologyError> {
        let topo: Topology = serde_json::from_slice(bytes).map_err(|e| TopologyError::BadRecord(e.to_string()))?;
        if topo.format > FORMAT {
            return Err(TopologyError::BadRecord(format!(
                "record format {} is newer than this zedis understands ({FORMAT}); upgrade zedis",
                topo.format
            )));
        }
        topo.check()?;
        Ok(topo)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data structures cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Internal consistency: unique servers, masters among their group, slots owned by groups.
    pub fn check(&self) -> Result<(), TopologyError> {
        let mut seen = std::collections::HashSet::new();
        for g in &self.groups {
            if g.servers.is_empty() {
                return Err(TopologyError::EmptyGroup);
            }
            if !g.contains(&g.master) {
                return Err(TopologyError::BadRecord(format!(
                    "group {}: master {} is not one of its servers",
                    g.id, g.master
                )));
            }
            for s in &g.servers {
                if !seen.insert(s.addr.as_str()) {
                    return Err(TopologyError::DuplicateServer { addr: s.addr.clone() });
                }
            }
        }
        for r in self.slots.ranges() {
            if self.group(r.group).is_none() {
                return Err(TopologyError::BadRecord(format!(
                    "slots {}-{} belong to missing group {}",
                    r.from, r.to, r.group
                )));
            }
        }
        for m in self.migrations.iter().filter(|m| m.state.is_active()) {
            let groups = std::iter::once(m.target).chain(m.pending.iter().map(|p| p.source));
            if let Some(g) = groups.into_iter().find(|g| self.group(*g).is_none()) {
                return Err(TopologyError::BadRecord(format!("migration {} names missing group {g}", m.id)));
            }
        }
        Ok(())
    }

    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    fn group_mut(&mut self, id: GroupId) -> Result<&mut Group, TopologyError> {
        self.groups.iter_mut().find(|g| g.id == id).ok_or(TopologyError::UnknownGroup(id))
    }

    /// The group a server belongs to.
    pub fn group_of(&self, addr: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.contains(addr))
    }

    /// The group that serves `slot`.
    pub fn slot_owner(&self, slot: Slot) -> Option<&Group> {
        self.slots.owner(slot).and_then(|id| self.group(id))
    }

    /// How routers reach `slot`: its owner, or through a migration's source.
    pub fn route(&self, slot: Slot) -> Option<SlotRoute> {
        crate::migration::route(slot, self.slots.owner(slot), &self.migrations)
    }

    /// Every server address of the cluster.
    pub fn server_addrs(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.servers.iter().map(|s| s.addr.clone())).collect()
    }

    fn next_epoch(mut self) -> Topology {
        self.epoch += 1;
        self
    }

    /// Adds a group (no slots yet); returns the new topology and the new group's id.
    pub fn add_group(&self, spec: &GroupSpec) -> Result<(Topology, GroupId), TopologyError> {
        let first = spec.servers.first().ok_or(TopologyError::EmptyGroup)?;
        let mut servers: Vec<Server> = Vec::new();
        for s in &spec.servers {
            let addr = parse_addr(&s.addr)?;
            if let Some(g) = self.group_of(&addr) {
                return Err(TopologyError::ServerInUse { addr, group: g.id });
            }
            if servers.iter().any(|x| x.addr == addr) {
                return Err(TopologyError::DuplicateServer { addr });
            }
            servers.push(Server { addr, priority: s.priority });
        }
        let id = self.groups.iter().map(|g| g.id).max().unwrap_or(0) + 1;
        let master = parse_addr(&first.addr)?;
        let mut next = self.clone();
        next.groups.push(Group { id, master, servers });
        Ok((next.next_epoch(), id))
    }

    pub fn add_server(&self, group: GroupId, server: &Server) -> Result<Topology, TopologyError> {
        let addr = parse_addr(&server.addr)?;
        if let Some(g) = self.group_of(&addr) {
            return Err(TopologyError::ServerInUse { addr, group: g.id });
        }
        let mut next = self.clone();
        next.group_mut(group)?.servers.push(Server { addr, priority: server.priority });
        Ok(next.next_epoch())
    }

    pub fn remove_server(&self, addr: &str) -> Result<Topology, TopologyError> {
        let group = self.group_of(addr).ok_or_else(|| TopologyError::UnknownServer { addr: addr.to_string() })?;
        if group.master == addr {
            return Err(TopologyError::IsMaster { addr: addr.to_string(), group: group.id });
        }
        let id = group.id;
        let mut next = self.clone();
        next.group_mut(id)?.servers.retain(|s| s.addr != addr);
        Ok(next.next_epoch())
    }

    pub fn set_priority(&self, addr: &str, priority: u32) -> Result<Topology, TopologyError> {
        let id = self.group_of(addr).ok_or_else(|| TopologyError::UnknownServer { addr: addr.to_string() })?.id;
        let mut next = self.clone();
        for s in &mut next.group_mut(id)?.servers {
            if s.addr == addr {
                s.priority = priority;
            }
        }
        Ok(next.next_epoch())
    }

    /// Makes `addr` (a replica of `group`) its master: the topology half of a failover.
    pub fn set_master(&self, group: GroupId, addr: &str) -> Result<Topology, TopologyError> {
        let g = self.group(group).ok_or(TopologyError::UnknownGroup(group))?;
        if !g.contains(addr) || g.master == addr {
            return Err(TopologyError::NotAReplica { addr: addr.to_string(), group });
        }
        let mut next = self.clone();
        next.group_mut(group)?.master = addr.to_string();
        Ok(next.next_epoch())
    }

    pub fn set_settings(&self, settings: ClusterSettings) -> Result<Topology, TopologyError> {
        settings.validate().map_err(TopologyError::BadSettings)?;
        let mut next = self.clone();
        next.settings = settings;
        Ok(next.next_epoch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addrs: &[&str]) -> GroupSpec {
        GroupSpec { servers: addrs.iter().map(|a| Server::new(*a)).collect() }
    }

    fn two_groups() -> Topology {
        Topology::new("c", &[spec(&["h:1", "h:2"]), spec(&["h:3", "h:4"])], ClusterSettings::default()).unwrap()
    }

    #[test]
    fn new_cluster_spreads_slots_and_starts_at_epoch_1() {
        let t = two_groups();
        assert_eq!(t.epoch, 1);
        assert_eq!(t.groups.iter().map(|g| g.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(t.group(1).unwrap().master, "h:1");
        assert_eq!(t.group(2).unwrap().replica_addrs(), vec!["h:4"]);
        assert_eq!(t.slots.count(1), 8192);
        assert_eq!(t.slot_owner(16383).unwrap().id, 2);
    }

    #[test]
    fn changes_bump_the_epoch_and_keep_the_record_consistent() {
        let t = two_groups();
        let (t2, id) = t.add_group(&spec(&["h:5"])).unwrap();
        assert_eq!((t2.epoch, id), (2, 3));
        let t3 = t2.add_server(3, &Server { addr: "h:6".into(), priority: 0 }).unwrap();
        assert_eq!(t3.epoch, 3);
        let t4 = t3.set_master(3, "h:6").unwrap();
        assert_eq!(t4.group(3).unwrap().master, "h:6");
        let t5 = t4.remove_server("h:5").unwrap();
        assert_eq!(t5.group(3).unwrap().servers.len(), 1);
        let t6 = t5.set_priority("h:2", 7).unwrap();
        assert_eq!(t6.group(1).unwrap().server("h:2").unwrap().priority, 7);
        assert_eq!(t6.epoch, 6);
        t6.check().unwrap();
        assert_eq!(Topology::from_json(&t6.to_json()).unwrap(), t6);
    }

    #[test]
    fn refused_changes() {
        let t = two_groups();
        let table: Vec<(Result<Topology, TopologyError>, TopologyError)> = vec![
            (t.add_group(&spec(&["h:1"])).map(|x| x.0), TopologyError::ServerInUse { addr: "h:1".into(), group: 1 }),
            (t.add_group(&spec(&["h:9", "h:9"])).map(|x| x.0), TopologyError::DuplicateServer { addr: "h:9".into() }),
            (t.add_group(&spec(&[])).map(|x| x.0), TopologyError::EmptyGroup),
            (t.add_server(9, &Server::new("h:9")), TopologyError::UnknownGroup(9)),
            (t.add_server(1, &Server::new("h:3")), TopologyError::ServerInUse { addr: "h:3".into(), group: 2 }),
            (t.remove_server("h:1"), TopologyError::IsMaster { addr: "h:1".into(), group: 1 }),
            (t.remove_server("h:9"), TopologyError::UnknownServer { addr: "h:9".into() }),
            (t.set_master(1, "h:3"), TopologyError::NotAReplica { addr: "h:3".into(), group: 1 }),
            (t.set_master(1, "h:1"), TopologyError::NotAReplica { addr: "h:1".into(), group: 1 }),
        ];
        for (got, want) in table {
            assert_eq!(got.unwrap_err(), want);
        }
        assert!(matches!(t.add_server(1, &Server::new("nope")), Err(TopologyError::BadAddress { .. })));
        assert_eq!(Topology::new("c", &[], ClusterSettings::default()).unwrap_err(), TopologyError::NoGroups);
    }

    #[test]
    fn corrupt_records_are_refused_not_panicked_on() {
        for bad in [&b"not json"[..], b"{}", br#"{"format":99,"cluster":"c","epoch":1,"groups":[],"slots":[]}"#] {
            assert!(Topology::from_json(bad).is_err());
        }
        let mut t = two_groups();
        t.groups[0].master = "elsewhere:1".into();
        assert!(Topology::from_json(&serde_json::to_vec(&t).unwrap()).is_err());
    }
}
