//! Builds the `zedis status` view from the topology and the observers' reports. Pure.

use serde::Serialize;
use zedis_topology::{now_ms, ObserverReport, Role, SlotRange, Topology};

use crate::migration_view::MigrationView;

#[derive(Debug, Serialize, PartialEq)]
pub struct StatusView {
    pub cluster: String,
    pub epoch: u64,
    pub leader: Option<String>,
    pub controllers: Vec<String>,
    pub groups: Vec<GroupView>,
    pub slots: Vec<SlotRange>,
    /// Slot migrations, running and recently finished: the topology's record (`state`,
    /// `pending`, ...) with slots done, age and the driver's `progress` (null until published).
    pub migrations: Vec<MigrationView>,
    /// Registered proxies: id, address, the topology epoch each has applied.
    pub proxies: Vec<serde_json::Value>,
    /// Registered in-process routers (`zedis::Cluster`, e.g. the controller's mirrors): the same.
    #[serde(default)]
    pub clients: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct GroupView {
    pub id: u32,
    pub master: String,
    pub replicas: Vec<String>,
    pub slot_count: usize,
    pub servers: Vec<ServerView>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ServerView {
    pub addr: String,
    /// The role the topology gives it.
    pub role: &'static str,
    /// The role the server reports, if observed.
    pub observed_role: Option<&'static str>,
    /// `up`, `down` (a majority of fresh observers see it down) or `unknown`.
    pub health: &'static str,
    pub priority: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicates: Option<String>,
    pub link_up: bool,
    pub offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `reports` must already be limited to fresh ones; the leader's (if any) is preferred for
/// the per-server details.
pub fn build(topology: &Topology, leader: Option<String>, reports: &[ObserverReport]) -> StatusView {
    let preferred = leader.as_ref().and_then(|l| reports.iter().find(|r| &r.observer == l)).or(reports.first());
    let groups = topology
        .groups
        .iter()
        .map(|g| GroupView {
            id: g.id,
            master: g.master.clone(),
            replicas: g.replica_addrs(),
            slot_count: topology.slots.count(g.id),
            servers: g
                .servers
                .iter()
                .map(|s| {
                    let votes: Vec<bool> =
                        reports.iter().filter_map(|r| r.servers.get(&s.addr)).map(|o| o.down).collect();
                    let down = votes.iter().filter(|d| **d).count();
                    let health = if votes.is_empty() {
                        "unknown"
                    } else if down * 2 > votes.len() {
                        "down"
                    } else {
                        "up"
                    };
                    let seen = preferred.and_then(|r| r.servers.get(&s.addr));
                    ServerView {
                        addr: s.addr.clone(),
                        role: if s.addr == g.master { "master" } else { "replica" },
                        observed_role: seen.and_then(|o| o.role).map(|r| match r {
                            Role::Master => "master",
                            Role::Replica => "replica",
                        }),
                        health,
                        priority: s.priority,
                        replicates: seen.and_then(|o| o.master.clone()),
                        link_up: seen.is_some_and(|o| o.link_up),
                        offset: seen.map(|o| o.offset).unwrap_or(0),
                        error: seen.and_then(|o| if o.ok { None } else { o.error.clone() }),
                    }
                })
                .collect(),
        })
        .collect();
    StatusView {
        cluster: topology.cluster.clone(),
        epoch: topology.epoch,
        leader,
        controllers: reports.iter().map(|r| r.observer.clone()).collect(),
        groups,
        slots: topology.slots.ranges(),
        migrations: topology.migrations.iter().map(|m| MigrationView::new(m, None, None, now_ms())).collect(),
        proxies: Vec::new(),
        clients: Vec::new(),
    }
}

/// The human-readable table.
pub fn render(view: &StatusView) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "cluster {}  epoch {}  leader {}  controllers {}\n",
        view.cluster,
        view.epoch,
        view.leader.as_deref().unwrap_or("(none)"),
        view.controllers.len()
    ));
    for g in &view.groups {
        out.push_str(&format!("group {}  master {}  slots {}\n", g.id, g.master, g.slot_count));
        for s in &g.servers {
            let link = if s.role == "replica" {
                if s.link_up {
                    "link up"
                } else {
                    "link down"
                }
            } else {
                ""
            };
            out.push_str(&format!(
                "  {:<22} {:<8} {:<8} prio {:<4} offset {:<10} {}{}\n",
                s.addr,
                s.role,
                s.health,
                s.priority,
                s.offset,
                link,
                s.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default()
            ));
        }
    }
    for p in &view.proxies {
        out.push_str(&format!(
            "proxy {}  {}  epoch {}\n",
            p["id"].as_str().unwrap_or("?"),
            p["addr"].as_str().unwrap_or("?"),
            p["epoch"].as_u64().map(|e| e.to_string()).unwrap_or_else(|| "?".into())
        ));
    }
    for c in &view.clients {
        out.push_str(&format!(
            "client {}  pid {}  epoch {}\n",
            c["id"].as_str().unwrap_or("?"),
            c["pid"].as_u64().map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
            c["epoch"].as_u64().map(|e| e.to_string()).unwrap_or_else(|| "?".into())
        ));
    }
    for m in view.migrations.iter().filter(|m| m.migration.state.is_active()) {
        out.push_str(&format!("migration {}  groups {}  {}\n", m.migration.id, m.direction(), m.progress_text()));
    }
    out.push_str("slots\n");
    for r in &view.slots {
        out.push_str(&format!("  {:>5}-{:<5} group {}\n", r.from, r.to, r.group));
    }
    out
}

#[cfg(test)]
mod tests {
    use zedis_topology::{ClusterSettings, GroupSpec, Server, ServerObservation};

    use super::*;

    #[test]
    fn health_is_the_majority_of_fresh_reports() {
        let t = Topology::new(
            "c",
            &[GroupSpec { servers: vec![Server::new("h:1"), Server::new("h:2")] }],
            ClusterSettings::default(),
        )
        .unwrap();
        let obs = |down: bool| ServerObservation { ok: !down, down, ..Default::default() };
        let report = |id: &str, d1: bool| ObserverReport {
            observer: id.into(),
            servers: [("h:1".to_string(), obs(d1)), ("h:2".to_string(), obs(false))].into_iter().collect(),
            ..Default::default()
        };
        let v = build(&t, Some("a".into()), &[report("a", true), report("b", true), report("c", false)]);
        assert_eq!(v.groups[0].servers[0].health, "down");
        assert_eq!(v.groups[0].servers[1].health, "up");
        let v = build(&t, None, &[]);
        assert_eq!(v.groups[0].servers[0].health, "unknown");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["groups"][0]["master"], "h:1");
        assert_eq!(json["groups"][0]["replicas"][0], "h:2");
        assert_eq!(json["slots"][0]["to"], 16383);
        assert!(render(&v).contains("group 1  master h:1"));
        assert!(!render(&v).contains("migration"));
    }

    #[test]
    fn active_migrations_show_one_line_each() {
        let specs = [GroupSpec { servers: vec![Server::new("h:1")] }, GroupSpec { servers: vec![Server::new("h:2")] }];
        let t = Topology::new("c", &specs, ClusterSettings::default()).unwrap();
        let (t, id) = t.start_migration(&[(0, 99)], 2, None).unwrap();
        let t = t.migration_action(id, zedis_topology::MigrationAction::Cancel).unwrap();
        let (t, id2) = t.start_migration(&[(100, 109)], 2, Some(50)).unwrap();
        let v = build(&t, None, &[]);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["migrations"][0]["state"], "cancelled");
        assert_eq!(json["migrations"][1]["state"], "preparing");
        assert_eq!(json["migrations"][1]["slots_total"], 10);
        let text = render(&v);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("migration")).collect();
        assert_eq!(
            lines,
            vec![format!("migration {id2}  groups 1→2  preparing   slots 0/10  (no progress reported yet)")]
        );
    }
}
