//! The controller's decisions, as a pure function of the intended topology and what the
//! observers see. The reconciler carries the actions out; tests drive this with tables.

use zedis_topology::{GroupId, ObserverReport, Role, ServerObservation, Topology};

impl Action {
    /// The servers the action changes.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Action::Failover { to, .. } => vec![to.as_str()],
            Action::Promote { addr, .. } | Action::Replicate { addr, .. } | Action::Configure { addr, .. } => {
                vec![addr.as_str()]
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Commit a new epoch with `to` as the group's master, then promote it.
    Failover { group: GroupId, from: String, to: String },
    /// The topology names `addr` master but it runs as a replica: `REPLICAOF NO ONE`.
    Promote { group: GroupId, addr: String },
    /// Point `addr` at its group's master; `demote` when it currently runs as a master.
    Replicate { group: GroupId, addr: String, master: String, demote: bool },
    /// Bring the managed settings of `addr` to the cluster's values.
    Configure { addr: String, pairs: Vec<(String, String)> },
}

/// A failover that is due but must wait, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub group: GroupId,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub blocked: Vec<Blocked>,
}

pub struct PlanInput<'a> {
    pub topology: &'a Topology,
    /// The leader's own, freshest observations; actions are only taken on servers it can reach.
    pub own: &'a ObserverReport,
    /// Reports of every live observer (the leader's included): they vote on "down".
    pub live: &'a [ObserverReport],
}

/// Whether a majority of the live observers that watch `addr` vote it down.
pub fn majority_down(live: &[ObserverReport], addr: &str) -> bool {
    let votes: Vec<bool> = live.iter().filter_map(|r| r.servers.get(addr)).map(|o| o.down).collect();
    let down = votes.iter().filter(|d| **d).count();
    !votes.is_empty() && down * 2 > votes.len()
}

fn reachable(o: Option<&ServerObservation>) -> Option<&ServerObservation> {
    o.filter(|o| o.ok && !o.down)
}

/// Promotion order: lower priority value first (0 never), then greater offset, then run id.
pub fn candidate_order(a: (&u32, &ServerObservation), b: (&u32, &ServerObservation)) -> std::cmp::Ordering {
    a.0.cmp(b.0).then(b.1.offset.cmp(&a.1.offset)).then(a.1.run_id.cmp(&b.1.run_id))
}

pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut out = Plan::default();
    let topo = input.topology;
    for group in &topo.groups {
        let master = &group.master;
        let own_master = input.own.servers.get(master);
        if majority_down(input.live, master) {
            match choose_failover(input, group.id) {
                Ok(to) => out.actions.push(Action::Failover { group: group.id, from: master.clone(), to }),
                Err(reason) => out.blocked.push(Blocked { group: group.id, reason }),
            }
            continue;
        }
        if let Some(m) = reachable(own_master) {
            if m.role == Some(Role::Replica) {
                out.actions.push(Action::Promote { group: group.id, addr: master.clone() });
            }
        }
        let master_serving = reachable(own_master).is_some_and(|m| m.role == Some(Role::Master));
        for replica in group.replicas() {
            let Some(r) = reachable(input.own.servers.get(&replica.addr)) else { continue };
            let action = match r.role {
                // Demote only towards a master that serves, so we never drop the only live copy.
                Some(Role::Master) if master_serving => Some(true),
                Some(Role::Replica) if r.master.as_deref() != Some(master.as_str()) => Some(false),
                _ => None,
            };
            if let Some(demote) = action {
                out.actions.push(Action::Replicate {
                    group: group.id,
                    addr: replica.addr.clone(),
                    master: master.clone(),
                    demote,
                });
            }
        }
    }
    for (addr, replicas) in
        topo.groups.iter().flat_map(|g| g.servers.iter().map(move |s| (s.addr.clone(), g.servers.len() - 1)))
    {
        let desired = topo.settings.redis_config(replicas);
        let Some(o) = reachable(input.own.servers.get(&addr)) else { continue };
        // Desired values are canonical (as CONFIG GET prints them), so a plain comparison
        // tells drift; a server restarted, added or promoted gets them back this way.
        let drift: Vec<(String, String)> = desired.into_iter().filter(|(k, v)| o.config.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            out.actions.push(Action::Configure { addr, pairs: drift });
        }
    }
    out
}

/// Picks the replica to promote for a group whose master a majority sees down.
fn choose_failover(input: &PlanInput<'_>, group: GroupId) -> Result<String, String> {
    let topo = input.topology;
    let Some(g) = topo.group(group) else { return Err("group vanished".into()) };
    if !topo.settings.auto_failover {
        return Err("automatic failover is off for this cluster".into());
    }
    // If any replica still has a live link to the master, the master is alive and we may be
    // the ones cut off: promoting now could give the group two masters.
    for replica in g.replicas() {
        for report in input.live {
            if let Some(o) = report.servers.get(&replica.addr) {
                if o.ok && o.link_up && o.master.as_deref() == Some(g.master.as_str()) {
                    return Err(format!("replica {} still reports its link to master {} up", replica.addr, g.master));
                }
            }
        }
    }
    let master_quiet_ms = input.own.servers.get(&g.master).and_then(|o| o.last_ok_ago_ms);
    let max_link_down = topo.settings.max_replica_link_down_ms;
    let mut candidates: Vec<(&u32, &ServerObservation, &str)> = Vec::new();
    for replica in g.replicas() {
        if replica.priority == 0 {
            continue;
        }
        let Some(o) = reachable(input.own.servers.get(&replica.addr)) else { continue };
        if o.role != Some(Role::Replica) {
            continue;
        }
        // A replica cut off long before the master failed misses too much to take over.
        if let (Some(link_down), Some(quiet)) = (o.link_down_ms, master_quiet_ms) {
            if link_down > quiet + max_link_down {
                continue;
            }
        }
        candidates.push((&replica.priority, o, replica.addr.as_str()));
    }
    candidates.sort_by(|a, b| candidate_order((a.0, a.1), (b.0, b.1)));
    candidates
        .first()
        .map(|c| c.2.to_string())
        .ok_or_else(|| format!("master {} is down and no replica can be promoted", g.master))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use zedis_topology::{ClusterSettings, GroupSpec, Server};

    use super::*;

    const M: &str = "h:1";
    const R1: &str = "h:2";
    const R2: &str = "h:3";

    fn topo(priorities: &[u32]) -> Topology {
        let mut servers = vec![Server::new(M)];
        for (i, p) in priorities.iter().enumerate() {
            servers.push(Server { addr: format!("h:{}", i + 2), priority: *p });
        }
        Topology::new("c", &[GroupSpec { servers }], ClusterSettings::default()).unwrap()
    }

    fn settled(t: &Topology) -> BTreeMap<String, String> {
        t.settings.redis_config(t.groups[0].servers.len() - 1).into_iter().collect()
    }

    fn master(config: &BTreeMap<String, String>) -> ServerObservation {
        ServerObservation { ok: true, role: Some(Role::Master), config: config.clone(), ..Default::default() }
    }

    fn replica(of: &str, link_up: bool, offset: i64, config: &BTreeMap<String, String>) -> ServerObservation {
        ServerObservation {
            ok: true,
            role: Some(Role::Replica),
            master: Some(of.into()),
            link_up,
            link_down_ms: if link_up { None } else { Some(1000) },
            offset,
            run_id: Some(format!("run-{offset}")),
            config: config.clone(),
            ..Default::default()
        }
    }

    fn dead() -> ServerObservation {
        ServerObservation { ok: false, down: true, last_ok_ago_ms: Some(1500), ..Default::default() }
    }

    fn report(id: &str, servers: &[(&str, ServerObservation)]) -> ObserverReport {
        ObserverReport {
            observer: id.into(),
            servers: servers.iter().map(|(a, o)| (a.to_string(), o.clone())).collect(),
            ..Default::default()
        }
    }

    struct Case {
        name: &'static str,
        priorities: &'static [u32],
        /// Per observer: the master's observation (others: replicas as given below).
        master_views: Vec<ServerObservation>,
        replicas: Vec<ServerObservation>,
        want_failover: Option<&'static str>,
        want_blocked: bool,
    }

    #[test]
    fn failover_rules() {
        let t = topo(&[100, 100]);
        let c = settled(&t);
        let cases = vec![
            Case {
                name: "healthy cluster: nothing to do",
                priorities: &[100, 100],
                master_views: vec![master(&c)],
                replicas: vec![replica(M, true, 10, &c), replica(M, true, 10, &c)],
                want_failover: None,
                want_blocked: false,
            },
            Case {
                name: "single observer sees master down: promote greatest offset",
                priorities: &[100, 100],
                master_views: vec![dead()],
                replicas: vec![replica(M, false, 10, &c), replica(M, false, 20, &c)],
                want_failover: Some(R2),
                want_blocked: false,
            },
            Case {
                name: "one of three observers: no quorum",
                priorities: &[100, 100],
                master_views: vec![dead(), master(&c), master(&c)],
                replicas: vec![replica(M, false, 10, &c), replica(M, false, 20, &c)],
                want_failover: None,
                want_blocked: false,
            },
            Case {
                name: "two of three observers: quorum",
                priorities: &[100, 100],
                master_views: vec![dead(), dead(), master(&c)],
                replicas: vec![replica(M, false, 10, &c), replica(M, false, 20, &c)],
                want_failover: Some(R2),
                want_blocked: false,
            },
            Case {
                name: "one of two observers is not a majority",
                priorities: &[100, 100],
                master_views: vec![dead(), master(&c)],
                replicas: vec![replica(M, false, 10, &c), replica(M, false, 20, &c)],
                want_failover: None,
                want_blocked: false,
            },
            Case {
                name: "a replica still sees the master: wait",
                priorities: &[100, 100],
                master_views: vec![dead()],
                replicas: vec![replica(M, true, 10, &c), replica(M, false, 20, &c)],
                want_failover: None,
                want_blocked: true,
            },
            Case {
                name: "priority beats offset",
                priorities: &[10, 100],
                master_views: vec![dead()],
                replicas: vec![replica(M, false, 10, &c), replica(M, false, 20, &c)],
                want_failover: Some(R1),
                want_blocked: false,
            },
            Case {
                name: "priority 0 never promotes",
                priorities: &[0, 100],
                master_views: vec![dead()],
                replicas: vec![replica(M, false, 50, &c), replica(M, false, 20, &c)],
                want_failover: Some(R2),
                want_blocked: false,
            },
            Case {
                name: "only priority 0 replicas: blocked",
                priorities: &[0, 0],
                master_views: vec![dead()],
                replicas: vec![replica(M, false, 50, &c), replica(M, false, 20, &c)],
                want_failover: None,
                want_blocked: true,
            },
            Case {
                name: "equal offsets: lowest run id",
                priorities: &[100, 100],
                master_views: vec![dead()],
                replicas: vec![
                    ServerObservation { run_id: Some("b".into()), ..replica(M, false, 5, &c) },
                    ServerObservation { run_id: Some("a".into()), ..replica(M, false, 5, &c) },
                ],
                want_failover: Some(R2),
                want_blocked: false,
            },
            Case {
                name: "unreachable replicas are not candidates",
                priorities: &[100, 100],
                master_views: vec![dead()],
                replicas: vec![dead(), replica(M, false, 1, &c)],
                want_failover: Some(R2),
                want_blocked: false,
            },
            Case {
                name: "replica disconnected far longer than the master is down: skipped",
                priorities: &[100, 100],
                master_views: vec![dead()],
                replicas: vec![
                    ServerObservation { link_down_ms: Some(3_600_000), ..replica(M, false, 99, &c) },
                    replica(M, false, 1, &c),
                ],
                want_failover: Some(R2),
                want_blocked: false,
            },
        ];
        for case in cases {
            let t = topo(case.priorities);
            let live: Vec<ObserverReport> = case
                .master_views
                .iter()
                .enumerate()
                .map(|(i, mv)| {
                    report(
                        &format!("o{i}"),
                        &[(M, mv.clone()), (R1, case.replicas[0].clone()), (R2, case.replicas[1].clone())],
                    )
                })
                .collect();
            let p = plan(&PlanInput { topology: &t, own: &live[0], live: &live });
            let failover = p.actions.iter().find_map(|a| match a {
                Action::Failover { to, from, .. } => {
                    assert_eq!(from, M);
                    Some(to.as_str())
                }
                _ => None,
            });
            assert_eq!(failover, case.want_failover, "{}", case.name);
            assert_eq!(!p.blocked.is_empty(), case.want_blocked, "{}: {:?}", case.name, p.blocked);
        }
    }

    #[test]
    fn auto_failover_off_blocks() {
        let mut t = topo(&[100]);
        t.settings.auto_failover = false;
        let c = settled(&t);
        let r = report("o", &[(M, dead()), (R1, replica(M, false, 1, &c))]);
        let p = plan(&PlanInput { topology: &t, own: &r, live: std::slice::from_ref(&r) });
        assert!(p.actions.is_empty());
        assert_eq!(p.blocked.len(), 1);
    }

    #[test]
    fn reconcile_rules() {
        let t = topo(&[100, 100]);
        let c = settled(&t);
        type Case<'a> = (&'a str, Vec<(&'a str, ServerObservation)>, Vec<Action>);
        let table: Vec<Case> = vec![
            (
                "replica pointed elsewhere is re-pointed",
                vec![(M, master(&c)), (R1, replica("h:9", true, 0, &c)), (R2, replica(M, true, 0, &c))],
                vec![Action::Replicate { group: 1, addr: R1.into(), master: M.into(), demote: false }],
            ),
            (
                "returning old master is demoted",
                vec![(M, master(&c)), (R1, master(&c)), (R2, replica(M, true, 0, &c))],
                vec![Action::Replicate { group: 1, addr: R1.into(), master: M.into(), demote: true }],
            ),
            (
                "no demotion while the intended master does not serve as master",
                vec![(M, replica(R1, false, 0, &c)), (R1, master(&c)), (R2, replica(M, true, 0, &c))],
                vec![Action::Promote { group: 1, addr: M.into() }],
            ),
            (
                "fresh servers: all replicas pointed, nothing for the master",
                vec![(M, master(&c)), (R1, master(&c)), (R2, master(&c))],
                vec![
                    Action::Replicate { group: 1, addr: R1.into(), master: M.into(), demote: true },
                    Action::Replicate { group: 1, addr: R2.into(), master: M.into(), demote: true },
                ],
            ),
            (
                "config drift is corrected",
                vec![(M, master(&BTreeMap::new())), (R1, replica(M, true, 0, &c)), (R2, replica(M, true, 0, &c))],
                vec![Action::Configure {
                    addr: M.into(),
                    pairs: t.settings.redis_config(t.groups[0].servers.len() - 1),
                }],
            ),
            (
                "unreachable servers are left alone",
                vec![(M, master(&c)), (R1, dead()), (R2, ServerObservation { ok: false, ..Default::default() })],
                vec![],
            ),
        ];
        for (name, servers, want) in table {
            let r = report("o", &servers);
            let p = plan(&PlanInput { topology: &t, own: &r, live: std::slice::from_ref(&r) });
            assert_eq!(p.actions, want, "{name}");
        }
    }

    #[test]
    fn operator_redis_settings_reach_every_server() {
        let base = topo(&[100, 100]);
        let managed = settled(&base);
        let changes = [("maxmemory", "64mb"), ("maxmemory-policy", "allkeys-lru")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = base.settings.with_redis_settings(&changes).unwrap();
        let t = base.set_settings(settings).unwrap();
        let all = settled(&t);
        let mut half = all.clone();
        half.insert("maxmemory".into(), "0".into());
        let operator = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        type Case<'a> = (&'a str, Vec<(&'a str, ServerObservation)>, Vec<Action>);
        let table: Vec<Case> = vec![
            (
                "applied everywhere: nothing to do",
                vec![(M, master(&all)), (R1, replica(M, true, 0, &all)), (R2, replica(M, true, 0, &all))],
                vec![],
            ),
            (
                "servers with only the managed settings get the operator's, masters and replicas alike",
                vec![(M, master(&managed)), (R1, replica(M, true, 0, &managed)), (R2, replica(M, true, 0, &all))],
                vec![
                    Action::Configure {
                        addr: M.into(),
                        pairs: operator(&[("maxmemory", "67108864"), ("maxmemory-policy", "allkeys-lru")]),
                    },
                    Action::Configure {
                        addr: R1.into(),
                        pairs: operator(&[("maxmemory", "67108864"), ("maxmemory-policy", "allkeys-lru")]),
                    },
                ],
            ),
            (
                "a drifted value alone is corrected",
                vec![(M, master(&all)), (R1, replica(M, true, 0, &half)), (R2, replica(M, true, 0, &all))],
                vec![Action::Configure { addr: R1.into(), pairs: operator(&[("maxmemory", "67108864")]) }],
            ),
            (
                "a restarted server (nothing set) gets everything back",
                vec![(M, master(&all)), (R1, replica(M, true, 0, &all)), (R2, replica(M, true, 0, &BTreeMap::new()))],
                vec![Action::Configure { addr: R2.into(), pairs: t.settings.redis_config(2) }],
            ),
        ];
        for (name, servers, want) in table {
            let r = report("o", &servers);
            let p = plan(&PlanInput { topology: &t, own: &r, live: std::slice::from_ref(&r) });
            assert_eq!(p.actions, want, "{name}");
        }
    }
}
