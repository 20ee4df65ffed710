//! The controller leader's Redis mirrors: a registered service shows up in the cluster's Redis
//! as `zedis:services:<name>` (on the group that owns the key's slot) and leaves it when its
//! process dies; a new leader takes the mirror over.

mod common;

use std::time::Duration;

use common::*;

/// `zedis --cluster <the test's> ...` in the background, with the harness's session timeout.
fn zedis_bg(h: &Harness, name: &str, args: &[&str]) -> Background {
    let session = SESSION_TIMEOUT_MS.to_string();
    Background::spawn_with(h, name, &["--cluster", &h.cluster, "--session-timeout-ms", &session], args)
}

/// The instance ids in `zedis:services:<service>`, read from the master that owns the key.
fn mirrored_ids(h: &Harness, service: &str) -> Result<Vec<String>, String> {
    let key = format!("zedis:services:{service}");
    let st = h.try_status()?;
    let slot = zedis_topology::key_slot(key.as_bytes());
    let group = st["slots"]
        .as_array()
        .and_then(|ranges| {
            ranges.iter().find(|r| {
                r["from"].as_u64().is_some_and(|lo| lo <= u64::from(slot))
                    && r["to"].as_u64().is_some_and(|hi| u64::from(slot) <= hi)
            })
        })
        .and_then(|r| r["group"].as_u64())
        .ok_or_else(|| format!("no group owns slot {slot}: {st}"))?;
    let owner = master_of(&st, group);
    let mut conn = redis_conn(&owner)?;
    let mut ids: Vec<String> = redis::cmd("HKEYS").arg(&key).query(&mut conn).map_err(|e| e.to_string())?;
    ids.sort();
    Ok(ids)
}

#[test]
fn the_leader_mirrors_services_into_the_cluster() {
    let mut h = Harness::start("mirrors", &[1, 1]);
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));

    h.phase("two instances register; both appear in the cluster's Redis");
    let mut a = zedis_bg(&h, "register-a", &["service", "register", "web", "--addr", "127.0.0.1:8001", "--id", "a"]);
    let _b = zedis_bg(&h, "register-b", &["service", "register", "web", "--addr", "127.0.0.1:8002", "--id", "b"]);
    h.wait_until(Duration::from_secs(20), "both instances mirrored", || {
        let ids = mirrored_ids(&h, "web")?;
        if ids == ["a", "b"] {
            Ok(())
        } else {
            Err(format!("mirrored: {ids:?}"))
        }
    });

    let st = h.status();
    let clients: Vec<&str> =
        st["clients"].as_array().map(|c| c.iter().filter_map(|c| c["id"].as_str()).collect()).unwrap_or_default();
    assert_eq!(clients, vec!["mirror-c1"], "the leader's mirrors route in-process and say so: {st}");

    h.phase("kill -9 one registration: it leaves the mirror once its session expires");
    a.kill9();
    h.wait_until(Duration::from_secs(20), "the dead instance unmirrored", || {
        let ids = mirrored_ids(&h, "web")?;
        if ids == ["b"] {
            Ok(())
        } else {
            Err(format!("mirrored: {ids:?}"))
        }
    });

    h.phase("the leader dies; a second controller leads and keeps mirroring");
    h.spawn_controller("c2");
    h.controller("c1").kill9();
    h.wait_until(Duration::from_secs(20), "c2 leads", || {
        let st = h.try_status()?;
        if st["leader"] == "c2" {
            Ok(())
        } else {
            Err(format!("leader: {}", st["leader"]))
        }
    });
    let _c = zedis_bg(&h, "register-c", &["service", "register", "web", "--addr", "127.0.0.1:8003", "--id", "c"]);
    h.wait_until(Duration::from_secs(20), "the new instance mirrored by the new leader", || {
        let ids = mirrored_ids(&h, "web")?;
        if ids == ["b", "c"] {
            Ok(())
        } else {
            Err(format!("mirrored: {ids:?}"))
        }
    });
}

/// `HGET zedis:config:<ns> <key>` through a proxy.
fn hget_through(proxy: &str, ns: &str, key: &str) -> Result<Option<String>, String> {
    let mut conn = redis_conn(proxy)?;
    redis::cmd("HGET").arg(format!("zedis:config:{ns}")).arg(key).query(&mut conn).map_err(|e| e.to_string())
}

#[test]
fn configuration_reaches_redis_through_the_proxy_within_two_seconds() {
    let mut h = Harness::start("config-mirror", &[1, 1]);
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));
    let port = zedis_testkit::free_port().expect("a free port");
    let proxy = format!("127.0.0.1:{port}");
    let _p = zedis_bg(&h, "proxy", &["proxy", "--listen", &proxy]);
    h.wait_until(Duration::from_secs(20), "the proxy serves", || hget_through(&proxy, "probe", "x").map(|_| ()));

    for (i, value) in ["jdbc:one", "jdbc:two", "jdbc:three"].iter().enumerate() {
        h.phase(&format!("set app db.url = {value}: version {} reaches Redis within 2 s", i + 1));
        let out = h.zedis_ok(&["config", "set", "app", "db.url", value]);
        assert!(out.contains(&(i + 1).to_string()), "set prints the new version {}: {out}", i + 1);
        let started = std::time::Instant::now();
        h.wait_until(Duration::from_secs(2), "the mirror has the new value", || {
            match hget_through(&proxy, "app", "db.url")? {
                Some(v) if v == *value => Ok(()),
                other => Err(format!("HGET says {other:?}")),
            }
        });
        eprintln!("  visible through the proxy after {:?}", started.elapsed());
    }

    h.phase("a stale --expect-version is refused; the mirror keeps the newest value");
    h.zedis_fails(&["config", "set", "app", "db.url", "jdbc:stale", "--expect-version", "1"], "version");
    assert_eq!(hget_through(&proxy, "app", "db.url").unwrap().as_deref(), Some("jdbc:three"));

    h.phase("rollback to version 1 is version 4 and reaches Redis");
    h.zedis_ok(&["config", "rollback", "app", "db.url", "--to", "1"]);
    h.wait_until(Duration::from_secs(2), "the rolled-back value mirrored", || {
        match hget_through(&proxy, "app", "db.url")? {
            Some(v) if v == "jdbc:one" => Ok(()),
            other => Err(format!("HGET says {other:?}")),
        }
    });
    let history = h.zedis_ok(&["config", "history", "app", "db.url", "--json"]);
    let history: serde_json::Value = serde_json::from_str(&history).expect("history is JSON");
    let versions: Vec<u64> =
        history.as_array().expect("an array").iter().filter_map(|r| r["version"].as_u64()).collect();
    assert_eq!(versions, vec![4, 3, 2, 1], "history, newest first: {history}");
}
