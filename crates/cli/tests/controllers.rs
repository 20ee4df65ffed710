//! The controllers themselves failing: the leader killed with `kill -9`, ZooKeeper restarted.
//! Each time the surviving controllers must keep the cluster highly available.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The leader named by status, once it is one of `ids` and every one of `ids` reports.
fn wait_leader_among(h: &Harness, ids: &[&str], timeout: Duration, what: &str) -> String {
    h.wait_until(timeout, what, || {
        let st = h.try_status()?;
        let leader = st["leader"].as_str().ok_or(format!("no leader: {st}"))?.to_string();
        if !ids.contains(&leader.as_str()) {
            return Err(format!("leader is {leader}, expected one of {ids:?}"));
        }
        let reporting: Vec<&str> =
            st["controllers"].as_array().into_iter().flatten().filter_map(|c| c.as_str()).collect();
        for id in ids {
            if !reporting.contains(id) {
                return Err(format!("controller {id} does not report; reporting: {reporting:?}"));
            }
        }
        Ok(leader)
    })
}

#[test]
fn leader_killed_another_takes_over_and_still_fails_over() {
    let mut h = Harness::start("leader-killed", &[3]);
    let [m, r1, r2] = [h.addr(0, 0), h.addr(0, 1), h.addr(0, 2)];
    h.create_cluster(&[]);
    for id in ["c1", "c2", "c3"] {
        h.spawn_controller(id);
    }
    h.wait_settled(Duration::from_secs(20));
    let leader = wait_leader_among(&h, &["c1", "c2", "c3"], Duration::from_secs(10), "three controllers, one leader");
    eprintln!("  leader is {leader}");

    h.phase(&format!("kill -9 the leader {leader}"));
    let killed_at = Instant::now();
    h.controller(&leader).kill9();
    let rest: Vec<&str> = ["c1", "c2", "c3"].into_iter().filter(|c| *c != leader).collect();
    // The dead leader's election node lives until its session expires (2 s).
    let new_leader = wait_leader_among(
        &h,
        &rest,
        Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(6),
        "another controller leads",
    );
    eprintln!("  {new_leader} leads {:?} after the kill", killed_at.elapsed());
    assert_ne!(new_leader, leader);
    h.wait_until(Duration::from_secs(5), "the new leader announces itself", || {
        let by_new = h.events().iter().any(|e| e["kind"] == "leader_elected" && e["by"] == new_leader.as_str());
        if by_new {
            Ok(())
        } else {
            Err("no leader_elected event by the new leader yet".into())
        }
    });
    // The new leader acts on operator requests.
    h.zedis_ok(&["cluster", "set-priority", &r1, "50"]);
    let before = epoch(&h.status());
    write_keys(&m, "k", 50, 2).expect("writes replicate");

    h.phase("kill -9 the master: the remaining two controllers must agree and fail over");
    let killed_at = Instant::now();
    h.redis(&m).kill9();
    let st = h.wait_master(1, Duration::from_secs(8), "a replica is promoted", |x| x != m);
    eprintln!("  failover after {:?}", killed_at.elapsed());
    assert_eq!(master_of(&st, 1), r1, "r1 has the better priority (50): {st:#}");
    assert_eq!(epoch(&st), before + 1, "{st:#}");
    h.wait_until(Duration::from_secs(10), "the other replica follows the new master", || replicates(&r2, &r1));
    set(&r1, "after", "1").expect("the new master takes writes");
    let committed_by: Vec<String> = h
        .events()
        .iter()
        .filter(|e| e["kind"] == "failover_committed")
        .map(|e| e["by"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(committed_by, vec![new_leader.clone()], "exactly one failover, by the new leader");
}

#[test]
fn zookeeper_restart_controller_still_acts() {
    let mut h = Harness::start("zk-restart", &[2]);
    let [m, r] = [h.addr(0, 0), h.addr(0, 1)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));

    h.phase("restart ZooKeeper (stop + start on the same port and data)");
    h.zk.single().restart().expect("zookeeper restarts");
    h.phase("ZooKeeper is back");
    assert!(h.controller("c1").is_running(), "the controller must survive a ZooKeeper restart");
    h.wait_until(Duration::from_secs(15), "the controller leads again", || {
        let st = h.try_status()?;
        if st["leader"] == "c1" && st["controllers"] == serde_json::json!(["c1"]) {
            Ok(())
        } else {
            Err(format!("leader {} controllers {}", st["leader"], st["controllers"]))
        }
    });
    // An operator request is only handled by a leader that is connected and acting.
    let out = h.zedis_ok(&["cluster", "set-priority", &r, "10"]);
    eprintln!("  set-priority after the restart: {}", out.trim());

    h.phase("ZooKeeper down longer than the session timeout (kill -9, wait for expiry, start)");
    h.zk.single().kill9();
    h.wait_until(Duration::from_secs(15), "the controller notices its session is gone", || {
        let log = h.controllers[0].log();
        if log.contains("ZooKeeper session ended") {
            Ok(())
        } else {
            Err(format!("controller log tail:\n{}", tail(&log, 5)))
        }
    });
    assert!(h.controller("c1").is_running(), "the controller must survive a ZooKeeper outage");
    h.zk.single().restart().expect("zookeeper starts again");
    h.wait_until(Duration::from_secs(15), "the controller leads again in a new session", || {
        let st = h.try_status()?;
        if st["leader"] == "c1" && st["controllers"] == serde_json::json!(["c1"]) {
            Ok(())
        } else {
            Err(format!("leader {} controllers {}", st["leader"], st["controllers"]))
        }
    });
    let out = h.zedis_ok(&["cluster", "set-priority", &r, "20"]);
    eprintln!("  set-priority after the outage: {}", out.trim());
    let before = epoch(&h.status());
    write_keys(&m, "k", 20, 1).expect("writes replicate");

    h.phase("kill -9 the master");
    let killed_at = Instant::now();
    h.redis(&m).kill9();
    let st = h.wait_master(1, Duration::from_secs(8), "the replica is promoted", |x| x == r);
    eprintln!("  failover after {:?}", killed_at.elapsed());
    assert_eq!(epoch(&st), before + 1, "{st:#}");
    set(&r, "after", "1").expect("the new master takes writes");
    check_keys(&r, "k", &(0..20).collect::<Vec<_>>()).expect("replicated keys survive");
}

#[test]
fn zookeeper_restart_then_leader_killed_standby_takes_over() {
    let mut h = Harness::start("zk-restart-standby", &[2]);
    let [m, r] = [h.addr(0, 0), h.addr(0, 1)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.spawn_controller("c2");
    h.wait_settled(Duration::from_secs(20));
    wait_leader_among(&h, &["c1", "c2"], Duration::from_secs(10), "two controllers report");

    h.phase("restart ZooKeeper");
    h.zk.single().restart().expect("zookeeper restarts");
    let leader = wait_leader_among(&h, &["c1", "c2"], Duration::from_secs(15), "both controllers are back");
    h.zedis_ok(&["cluster", "set-priority", &r, "10"]);

    h.phase(&format!("kill -9 the leader {leader}"));
    h.controller(&leader).kill9();
    let standby = if leader == "c1" { "c2" } else { "c1" };
    wait_leader_among(&h, &[standby], Duration::from_secs(10), "the standby leads");
    h.zedis_ok(&["cluster", "set-priority", &r, "20"]);
    let before = epoch(&h.status());

    h.phase("kill -9 the master");
    h.redis(&m).kill9();
    let st = h.wait_master(1, Duration::from_secs(8), "the replica is promoted", |x| x == r);
    assert_eq!(epoch(&st), before + 1, "{st:#}");
    set(&r, "after", "1").expect("the new master takes writes");
}
