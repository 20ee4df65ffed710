//! Cluster lifecycle through the CLI: create, the controller wiring replication, status,
//! admin commands bumping the epoch, and clear one-line errors for bad requests.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn create_status_and_admin_commands() {
    let mut h = Harness::start("lifecycle", &[2, 2]);
    let [m1, r1, m2, r2] = [h.addr(0, 0), h.addr(0, 1), h.addr(1, 0), h.addr(1, 1)];

    h.phase("cluster create");
    let out = h.create_cluster(&[]);
    assert!(out.contains("created at epoch 1 with 2 groups"), "create says: {out}");

    h.phase("status before any controller: topology only, no leader");
    let st = h.status();
    assert_eq!(epoch(&st), 1, "{st:#}");
    assert!(st["leader"].is_null(), "no controller runs yet: {st:#}");

    h.phase("an operator request with no controller running times out and is withdrawn");
    let line = h.zedis_fails(&["cluster", "set-priority", &r1, "5", "--timeout", "1"], "no controller leader");
    eprintln!("  request without a controller: {line}");

    h.phase("start one controller; wait for replication to be wired");
    h.spawn_controller("c1");
    let st = h.wait_settled(Duration::from_secs(20));
    assert_eq!(epoch(&st), 1, "neither wiring replication nor a withdrawn request changes the topology: {st:#}");
    assert_eq!(server(&st, &r1).map(|s| s["priority"].clone()), Some(json!(100)), "withdrawn request applied: {st:#}");
    assert_eq!(st["leader"], "c1", "{st:#}");
    assert_eq!(st["controllers"], json!(["c1"]), "{st:#}");
    assert_eq!(master_of(&st, 1), m1, "{st:#}");
    assert_eq!(replicas_of(&st, 1), vec![r1.clone()], "{st:#}");
    assert_eq!(master_of(&st, 2), m2, "{st:#}");
    assert_eq!(replicas_of(&st, 2), vec![r2.clone()], "{st:#}");
    assert_eq!(
        st["slots"],
        json!([{"from": 0, "to": 8191, "group": 1}, {"from": 8192, "to": 16383, "group": 2}]),
        "{st:#}"
    );
    for (addr, role) in [(&m1, "master"), (&r1, "replica"), (&m2, "master"), (&r2, "replica")] {
        let s = server(&st, addr).unwrap_or_else(|| panic!("{addr} not in status: {st:#}"));
        assert_eq!(s["role"], role, "{s}");
        assert_eq!(s["health"], "up", "{s}");
        // The status view reads the leader's probes, which may lag INFO by a probe interval.
        let _ = s["observed_role"].as_str().unwrap_or_else(|| panic!("{addr} has no observed_role: {s}"));
    }
    h.wait_until(Duration::from_secs(5), "status shows the replicas' links up", || {
        let st = h.try_status()?;
        for r in [&r1, &r2] {
            let s = server(&st, r).ok_or(format!("{r} missing"))?;
            if s["observed_role"] != "replica" || s["link_up"] != true {
                return Err(format!("{s}"));
            }
        }
        Ok(())
    });
    // The replication actually carries data.
    write_keys(&m1, "life", 10, 1).expect("writes on group 1 reach its replica");
    assert_eq!(get(&r1, "life:7").expect("GET on replica"), Some("7".into()));

    h.phase("cluster create again fails clearly");
    let specs = format!("{m1},{r1}");
    let line = h.zedis_fails(&["cluster", "create", "--group", &specs], "already exists");
    eprintln!("  create again: {line}");

    h.phase("add-group with two new servers");
    let g3 = [start_redis(), start_redis()];
    let (m3, r3) = (g3[0].addr(), g3[1].addr());
    let out = h.zedis_ok(&["cluster", "add-group", &format!("{m3},{r3}")]);
    assert!(out.contains(&m3), "add-group says: {out}");
    let st = h.status();
    assert_eq!(epoch(&st), 2, "add-group bumps the epoch: {st:#}");
    assert_eq!(master_of(&st, 3), m3, "{st:#}");
    assert_eq!(replicas_of(&st, 3), vec![r3.clone()], "{st:#}");
    assert_eq!(group(&st, 3)["slot_count"], 0, "a new group gets slots only by migration: {st:#}");
    h.wait_until(Duration::from_secs(10), "the new group's replica replicates its master", || replicates(&r3, &m3));

    h.phase("add-server to group 1");
    let extra = start_redis();
    let x = extra.addr();
    let out = h.zedis_ok(&["cluster", "add-server", "--group", "1", &x]);
    assert!(out.contains(&x), "add-server says: {out}");
    let st = h.status();
    assert_eq!(epoch(&st), 3, "add-server bumps the epoch: {st:#}");
    assert_eq!(replicas_of(&st, 1), vec![r1.clone(), x.clone()], "{st:#}");
    h.wait_until(Duration::from_secs(10), "the added server replicates group 1's master", || replicates(&x, &m1));

    h.phase("set-priority");
    h.zedis_ok(&["cluster", "set-priority", &x, "7"]);
    let st = h.status();
    assert_eq!(epoch(&st), 4, "set-priority bumps the epoch: {st:#}");
    assert_eq!(server(&st, &x).map(|s| s["priority"].clone()), Some(json!(7)), "{st:#}");

    h.phase("remove-server of a replica");
    h.zedis_ok(&["cluster", "remove-server", &x]);
    let st = h.status();
    assert_eq!(epoch(&st), 5, "remove-server bumps the epoch: {st:#}");
    assert_eq!(replicas_of(&st, 1), vec![r1.clone()], "{st:#}");
    assert!(server(&st, &x).is_none(), "{x} should be gone: {st:#}");

    h.phase("refused admin requests leave the epoch alone");
    let line = h.zedis_fails(&["cluster", "add-server", "--group", "2", &r1], "already in group");
    eprintln!("  add-server of a member: {line}");
    let nobody = format!("127.0.0.1:{}", zedis_testkit::free_port().expect("a free port"));
    let line = h.zedis_fails(&["cluster", "add-server", "--group", "1", &nobody], "unreachable");
    eprintln!("  add-server of an unreachable address: {line}");
    let line = h.zedis_fails(&["cluster", "remove-server", &m1], "master");
    eprintln!("  remove-server of a master: {line}");
    let line = h.zedis_fails(&["cluster", "set-priority", &nobody, "1"], "not in any group");
    eprintln!("  set-priority of a stranger: {line}");
    let st = h.status();
    assert_eq!(epoch(&st), 5, "failed requests must not change the topology: {st:#}");

    h.phase("human-readable status and events");
    let text = h.zedis_ok(&["status"]);
    assert!(text.contains("epoch 5") && text.contains("leader c1"), "status text: {text}");
    assert!(text.contains(&format!("group 1  master {m1}")), "status text: {text}");
    assert!(text.contains(&format!("group 3  master {m3}")), "status text: {text}");
    let text = h.zedis_ok(&["cluster", "events"]);
    assert!(text.contains("server_removed"), "events text: {text}");

    h.phase("event history records the admin actions");
    let kinds: Vec<String> = h.events().iter().map(|e| e["kind"].as_str().unwrap_or_default().to_string()).collect();
    for want in
        ["cluster_created", "leader_elected", "group_added", "server_added", "priority_changed", "server_removed"]
    {
        assert!(kinds.iter().any(|k| k == want), "no {want} event in {kinds:?}");
    }

    h.phase("unknown cluster");
    let out = zedis_raw(&["--zk", &h.zk.connect_string(), "--cluster", "nope", "status"]);
    let line = expect_one_line_error(&out, "does not exist");
    assert!(line.contains("nope"), "the error names the cluster: {line}");
    let out = zedis_raw(&["--zk", &h.zk.connect_string(), "--cluster", "nope", "cluster", "set-priority", &m1, "1"]);
    expect_one_line_error(&out, "does not exist");
    // Servers started here outlive the harness's controllers: the harness is dropped first.
    drop(h);
    drop((g3, extra));
}

#[test]
fn zookeeper_unreachable_is_a_quick_one_line_error() {
    let started = Instant::now();
    for args in [
        vec!["--zk", "127.0.0.1:1", "--zk-timeout-ms", "1000", "status"],
        vec!["--zk", "127.0.0.1:1", "--zk-timeout-ms", "1000", "status", "--json"],
        vec!["--zk", "127.0.0.1:1", "--zk-timeout-ms", "1000", "cluster", "events"],
        vec!["--zk", "127.0.0.1:1", "--zk-timeout-ms", "1000", "cluster", "set-priority", "127.0.0.1:2", "0"],
    ] {
        let out = zedis_raw(&args);
        let line = expect_one_line_error(&out, "unreachable");
        assert!(line.contains("127.0.0.1:1"), "the error names the hosts: {line}");
        assert!(out.elapsed < Duration::from_secs(4), "took too long to give up:\n{}", out.describe());
        assert!(out.stdout.is_empty(), "nothing on stdout:\n{}", out.describe());
        eprintln!("  {}: {line} ({:?})", args.join(" "), out.elapsed);
    }
    eprintln!("zookeeper unreachable checks took {:?}", started.elapsed());
}
