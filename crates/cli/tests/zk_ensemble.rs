//! A ZooKeeper ensemble member dies while the controller leader is busy: the leader's client
//! moves to another member within the same session, and the leader must go on acting.

mod common;

use std::time::Duration;

use common::*;
use zedis_coord::{ClusterPaths, RequestQueue, Zk, ZkOptions};
use zedis_topology::{AdminOp, AdminRequest, Server};

/// The ZooKeeper session id the controller logged, e.g. `0x100000d90e90001`.
fn session_id(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains("new session established: "))?;
    let rest = line.split("new session established: ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

#[test]
fn ensemble_member_dies_while_the_leader_is_busy_leader_keeps_acting() {
    let mut h = Harness::start_ensemble("zk-member-dies", 3, &[2]);
    let [m, r] = [h.addr(0, 0), h.addr(0, 1)];
    h.create_cluster(&[]);

    h.phase("controller connected to the two ZooKeeper followers only");
    let zk_leader = h.zk.ensemble().leader().expect("the ensemble has a leader");
    let followers: Vec<usize> = (0..3).filter(|i| *i != zk_leader).collect();
    let hosts = followers.iter().map(|i| h.zk.nodes()[*i].connect_string()).collect::<Vec<_>>().join(",");
    h.spawn_controller_with("c1", &hosts);
    h.wait_settled(Duration::from_secs(20));

    h.phase("find the ZooKeeper member the controller is connected to");
    let sid = h.wait_until(Duration::from_secs(5), "the controller logs its session id", || {
        session_id(&h.controllers[0].log()).ok_or_else(|| "no session line yet".to_string())
    });
    let member = h.wait_until(Duration::from_secs(5), "a member lists the controller's session", || {
        for i in &followers {
            let cons = h.zk.nodes()[*i].four_letter_word("cons").map_err(|e| e.to_string())?;
            if cons.contains(&format!("sid={sid},")) || cons.contains(&format!("sid={sid})")) {
                return Ok(*i);
            }
        }
        Err(format!("no follower lists sid={sid}"))
    });
    eprintln!("  controller session {sid} is on ZooKeeper node {}", member + 1);

    h.phase("keep the leader busy for ~2 s: ask it to add a server that hangs (SIGSTOPped Redis)");
    // The CLI would refuse a hung server up front; a server can as well hang after the CLI's
    // check. Queue the request directly, as the CLI does after its check.
    let hung = start_redis();
    hung.sigstop();
    let (zk_hosts, cluster, hung_addr) = (h.zk.connect_string(), h.cluster.clone(), hung.addr());
    let submitter = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let zk = Zk::connect(&ZkOptions::new(zk_hosts)).await.expect("connect");
            let paths = ClusterPaths::new("/zedis", &cluster).expect("paths");
            let op = AdminOp::AddServer { group: 1, server: Server::new(hung_addr) };
            RequestQueue::new(zk, &paths).submit(op, "test", Duration::from_secs(20)).await
        })
    });
    let taken = h.wait_until(Duration::from_secs(5), "the leader takes the request", || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let zk = Zk::connect(&ZkOptions::new(h.zk.connect_string())).await.map_err(|e| e.to_string())?;
            let dir = ClusterPaths::new("/zedis", &h.cluster).map_err(|e| e.to_string())?.requests();
            for name in zk.children(&dir).await.map_err(|e| e.to_string())? {
                if let Some((data, _)) = zk.get(&format!("{dir}/{name}")).await.map_err(|e| e.to_string())? {
                    let req: AdminRequest = serde_json::from_slice(&data).map_err(|e| e.to_string())?;
                    if let Some(by) = req.taken_by {
                        return Ok(by);
                    }
                }
            }
            Err("not taken yet".to_string())
        })
    });
    eprintln!("  request taken by {taken}");

    h.phase(&format!("kill -9 ZooKeeper node {} under the busy leader", member + 1));
    let before = h.controllers[0].log().matches("succeeds to establish session").count();
    h.zk.ensemble().kill9(member);
    h.wait_until(Duration::from_secs(10), "the controller's client reconnects to the other member", || {
        let log = h.controllers[0].log();
        if log.matches("succeeds to establish session").count() > before {
            Ok(())
        } else {
            Err(tail(&log, 5))
        }
    });
    let outcome = submitter.join().expect("submitter thread").expect("the request gets an outcome");
    eprintln!("  outcome: {outcome:?}");
    assert!(!outcome.ok && outcome.message.contains("unreachable"), "a hung server is refused: {outcome:?}");
    hung.sigcont();
    drop(hung);

    h.phase("the leader still handles operator requests");
    let out = h.zedis(&["cluster", "set-priority", &r, "10", "--timeout", "10"]);
    assert!(out.ok(), "the leader no longer acts after its ZooKeeper member died:\n{}", out.describe());
    let before_epoch = epoch(&h.status());

    h.phase("the leader still fails over a dead master");
    write_keys(&m, "k", 20, 1).expect("writes replicate");
    h.redis(&m).kill9();
    let st = h.wait_master(1, Duration::from_secs(10), "the replica is promoted", |x| x == r);
    assert_eq!(epoch(&st), before_epoch + 1, "{st:#}");
    set(&r, "after", "1").expect("the new master takes writes");
}
