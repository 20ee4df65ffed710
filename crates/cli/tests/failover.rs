//! Automatic failover of a dead or frozen master, driven by one `zedis controller` process.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Kinds of the events recorded so far, oldest first.
fn kinds(h: &Harness) -> Vec<String> {
    h.events().iter().map(|e| e["kind"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn kill9_master_fails_over_and_the_old_master_rejoins_as_replica() {
    let mut h = Harness::start("failover-kill9", &[3, 2]);
    let [m, r1, r2] = [h.addr(0, 0), h.addr(0, 1), h.addr(0, 2)];
    let [other_m, other_r] = [h.addr(1, 0), h.addr(1, 1)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));

    h.phase("write keys, replicated to both replicas");
    write_keys(&m, "k", 200, 2).expect("writes replicate");

    h.phase("kill -9 the master");
    let killed_at = Instant::now();
    h.redis(&m).kill9();
    let st = h.wait_master(1, Duration::from_secs(5), "a replica becomes master within 5 s", |x| x != m);
    let took = killed_at.elapsed();
    let new = master_of(&st, 1);
    eprintln!("  failover to {new} seen in status after {took:?}");
    assert!(new == r1 || new == r2, "the new master {new} must be one of the replicas {r1}, {r2}: {st:#}");
    assert!(epoch(&st) > 1, "a failover commits a new epoch: {st:#}");
    let mut replicas = replicas_of(&st, 1);
    replicas.sort();
    let mut want = vec![m.clone(), if new == r1 { r2.clone() } else { r1.clone() }];
    want.sort();
    assert_eq!(replicas, want, "the old master stays in the group as a replica: {st:#}");
    let other = if new == r1 { r2.clone() } else { r1.clone() };
    assert_eq!(master_of(&st, 2), other_m, "group 2 is not touched by group 1's failover: {st:#}");
    assert_eq!(replicas_of(&st, 2), vec![other_r.clone()], "{st:#}");

    h.phase("the new master serves writes, the other replica follows it");
    h.wait_until(Duration::from_secs(5), "the promoted replica runs as master", || {
        let info = info_replication(&new)?;
        match info.get("role").map(String::as_str) {
            Some("master") => Ok(()),
            r => Err(format!("{new} role {r:?}")),
        }
    });
    set(&new, "after-failover", "yes").expect("SET on the new master succeeds");
    h.wait_until(Duration::from_secs(10), "the other replica replicates the new master", || replicates(&other, &new));
    check_keys(&new, "k", &(0..200).collect::<Vec<_>>()).expect("keys written before the failover survive");
    h.wait_until(Duration::from_secs(5), "the write after the failover reaches the other replica", || {
        match get(&other, "after-failover")? {
            Some(v) if v == "yes" => Ok(()),
            v => Err(format!("{other} has after-failover = {v:?}")),
        }
    });
    let st = h.status();
    assert_eq!(server(&st, &m).map(|s| s["health"].clone()), Some("down".into()), "the dead master is down: {st:#}");
    let k = kinds(&h);
    for want in ["master_down", "failover_committed", "promoted", "repointed"] {
        assert!(k.iter().any(|x| x == want), "no {want} event in {k:?}");
    }

    h.phase("restart the old master on the same port");
    h.redis(&m).restart().expect("old master restarts");
    h.wait_until(Duration::from_secs(10), "the old master comes back as a replica of the new one", || {
        replicates(&m, &new)
    });
    h.wait_until(Duration::from_secs(5), "the old master has the data written after the failover", || {
        match get(&m, "after-failover")? {
            Some(v) if v == "yes" => Ok(()),
            v => Err(format!("{m} has after-failover = {v:?}")),
        }
    });
    let st = h.wait_settled(Duration::from_secs(10));
    assert_eq!(master_of(&st, 1), new, "restarting the old master must not move the mastership: {st:#}");
    assert!(kinds(&h).iter().any(|x| x == "demoted"), "the old master's demotion is recorded");
}

#[test]
fn sigstop_master_is_detected_down_and_failed_over() {
    let mut h = Harness::start("failover-sigstop", &[2]);
    let [m, r] = [h.addr(0, 0), h.addr(0, 1)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    let st0 = h.wait_settled(Duration::from_secs(20));
    write_keys(&m, "k", 50, 1).expect("writes replicate");

    h.phase("SIGSTOP the master");
    h.redis(&m).sigstop();
    let frozen = Instant::now();
    // If anything below fails, the harness resumes the server before printing diagnostics.
    h.wait_until(Duration::from_secs(5), "status shows the frozen master down", || {
        let st = h.try_status()?;
        match server(&st, &m) {
            Some(s) if s["health"] == "down" => Ok(()),
            s => Err(format!("{s:?}")),
        }
    });
    // The replica's link stays up until its repl-timeout (5 s, set by the controller), and
    // the controller must not promote while a replica still sees the master.
    let st = h.wait_master(1, Duration::from_secs(20), "the replica is promoted", |x| x == r);
    eprintln!("  failover after {:?} of SIGSTOP", frozen.elapsed());
    assert!(epoch(&st) > epoch(&st0), "{st:#}");
    let events = h.events();
    let k: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap_or_default()).collect();
    assert!(k.contains(&"master_down"), "no master_down event in {k:?}");
    assert!(k.contains(&"failover_committed"), "no failover_committed event in {k:?}");
    // Safe promotion: while the replica's link was still up (repl-timeout is 5 s, down-after
    // 1 s) the failover had to wait, and said why.
    let blocked = events.iter().position(|e| {
        e["kind"] == "failover_blocked" && e["message"].as_str().unwrap_or_default().contains("link to master")
    });
    let committed = events.iter().position(|e| e["kind"] == "failover_committed");
    assert!(
        matches!((blocked, committed), (Some(b), Some(c)) if b < c),
        "expected a failover_blocked event (replica link still up) before the commit: {events:#?}"
    );
    h.wait_until(Duration::from_secs(5), "the promoted replica takes writes", || set(&r, "after", "1"));

    h.phase("SIGCONT the old master");
    h.redis(&m).sigcont();

    h.phase("the resumed old master is demoted to a replica of the new one");
    h.wait_until(Duration::from_secs(10), "old master replicates the new master", || replicates(&m, &r));
    h.wait_until(Duration::from_secs(5), "the old master got the write made after the failover", || {
        match get(&m, "after")? {
            Some(v) if v == "1" => Ok(()),
            v => Err(format!("{m} has after = {v:?}")),
        }
    });
    let st = h.wait_settled(Duration::from_secs(10));
    assert_eq!(master_of(&st, 1), r, "{st:#}");
}

#[test]
fn priority_zero_replica_is_never_promoted() {
    let mut h = Harness::start("failover-priority0", &[3]);
    let [m, a, b] = [h.addr(0, 0), h.addr(0, 1), h.addr(0, 2)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));

    h.phase("A would win on priority (100 < 200) but gets priority 0");
    h.zedis_ok(&["cluster", "set-priority", &b, "200"]);
    h.zedis_ok(&["cluster", "set-priority", &a, "0"]);
    let st = h.status();
    assert_eq!(server(&st, &a).map(|s| s["priority"].clone()), Some(0.into()), "{st:#}");
    assert_eq!(server(&st, &b).map(|s| s["priority"].clone()), Some(200.into()), "{st:#}");
    let before = epoch(&st);
    write_keys(&m, "k", 20, 2).expect("writes replicate");

    h.phase("kill -9 the master");
    h.redis(&m).kill9();
    let st = h.wait_until(Duration::from_secs(8), "group 1 gets a new master", || {
        let st = h.try_status()?;
        let now = master_of(&st, 1);
        if now == a {
            // Fail at once rather than time out: this is the thing that must never happen.
            panic!("the priority-0 replica {a} was promoted: {st:#}");
        }
        if now == m {
            Err(format!("still {m} at epoch {}", epoch(&st)))
        } else {
            Ok(st)
        }
    });
    assert_eq!(master_of(&st, 1), b, "{st:#}");
    assert_eq!(epoch(&st), before + 1, "exactly one failover: {st:#}");
    h.wait_until(Duration::from_secs(10), "A replicates B", || replicates(&a, &b));
    let st = h.status();
    assert_eq!(master_of(&st, 1), b, "{st:#}");
    assert_eq!(redis_role(&a), "slave");
}

fn redis_role(addr: &str) -> String {
    info_replication(addr).ok().and_then(|i| i.get("role").cloned()).unwrap_or_default()
}

#[test]
fn replica_killed_no_failover_and_it_rejoins_empty_without_harming_the_master() {
    let mut h = Harness::start("replica-killed", &[2]);
    let [m, r] = [h.addr(0, 0), h.addr(0, 1)];
    h.phase("controller first, cluster afterwards: the controller waits for the cluster");
    h.spawn_controller("c1");
    h.create_cluster(&[]);
    let st0 = h.wait_settled(Duration::from_secs(20));
    write_keys(&m, "k", 100, 1).expect("writes replicate");

    h.phase("kill -9 the replica");
    h.redis(&r).kill9();
    h.wait_until(Duration::from_secs(5), "status shows the replica down", || {
        let st = h.try_status()?;
        match server(&st, &r) {
            Some(s) if s["health"] == "down" => Ok(st),
            s => Err(format!("{s:?}")),
        }
    });
    set(&m, "while-replica-down", "1").expect("the master keeps taking writes");
    let st = h.status();
    assert_eq!(master_of(&st, 1), m, "a dead replica is no reason to fail over: {st:#}");
    assert_eq!(epoch(&st), epoch(&st0), "{st:#}");

    h.phase("restart the replica: it comes back empty and as a master, and must be demoted");
    h.redis(&r).restart().expect("replica restarts");
    h.wait_until(Duration::from_secs(10), "the restarted replica replicates the master", || replicates(&r, &m));
    let st = h.wait_settled(Duration::from_secs(10));
    assert_eq!(master_of(&st, 1), m, "{st:#}");
    assert_eq!(epoch(&st), epoch(&st0), "{st:#}");
    let keys: Vec<u64> = (0..100).collect();
    check_keys(&m, "k", &keys).expect("the master keeps its data");
    h.wait_until(Duration::from_secs(5), "the replica has the data again", || check_keys(&r, "k", &keys));
    assert_eq!(get(&r, "while-replica-down").ok().flatten().as_deref(), Some("1"));
}
