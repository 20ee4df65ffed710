//! `zedis cluster config set/get/unset`: fleet-wide Redis settings applied by the controller
//! to every server, to servers added later and to servers whose value drifted; settings
//! outside the safe list refused with a one-line error naming them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// `CONFIG GET` of `names` on `addr`.
fn config_get(addr: &str, names: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut conn = redis_conn(addr)?;
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET");
    for n in names {
        cmd.arg(*n);
    }
    cmd.query(&mut conn).map_err(|e| format!("{addr}: CONFIG GET: {e}"))
}

/// `Ok` when every server in `addrs` reports every `(name, value)` of `want`.
fn all_have(addrs: &[String], want: &[(&str, &str)]) -> Result<(), String> {
    let names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    for addr in addrs {
        let got = config_get(addr, &names)?;
        for (name, value) in want {
            if got.get(*name).map(String::as_str) != Some(*value) {
                return Err(format!("{addr}: {name} is {:?}, want {value:?}", got.get(*name)));
            }
        }
    }
    Ok(())
}

/// How often the controller has run `CONFIG SET` so far (it logs each).
fn config_sets(h: &Harness) -> usize {
    h.controllers.iter().map(|c| c.log().matches("applied managed setting").count()).sum()
}

#[test]
fn fleet_wide_redis_settings() {
    let mut h = Harness::start("cluster_config", &[2, 1]);
    let mut servers: Vec<String> = h.addrs().into_iter().flatten().collect();

    h.phase("cluster create, one controller, settled");
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));
    let out = h.zedis_ok(&["cluster", "config", "get"]);
    assert!(out.contains("no Redis settings set"), "config get before any set: {out}");
    let epoch_before = epoch(&h.status());

    h.phase("config set maxmemory 64mb maxmemory-policy allkeys-lru notify-keyspace-events Ex");
    let out = h.zedis_ok(&[
        "cluster",
        "config",
        "set",
        "maxmemory",
        "64mb",
        "maxmemory-policy",
        "allkeys-lru",
        "notify-keyspace-events",
        "Ex",
    ]);
    assert!(out.contains("maxmemory 67108864"), "set says: {out}");
    assert_eq!(epoch(&h.status()), epoch_before + 1, "a settings change is a new epoch");
    let want = [("maxmemory", "67108864"), ("maxmemory-policy", "allkeys-lru"), ("notify-keyspace-events", "xE")];
    h.wait_until(Duration::from_secs(10), "every server runs the new settings", || all_have(&servers, &want));
    // The managed (fencing) settings are still in place next to them.
    h.wait_settled(Duration::from_secs(10));

    h.phase("config get shows the desired settings, applied everywhere");
    let view: Value = h.wait_until(Duration::from_secs(10), "config get --json reports them applied", || {
        let out = h.zedis(&["cluster", "config", "get", "--json"]);
        let v: Value = serde_json::from_str(&out.stdout).map_err(|e| format!("not JSON ({e}): {}", out.describe()))?;
        let not_applied = v["not_applied"].as_object().ok_or(format!("no not_applied yet: {v}"))?;
        if not_applied.values().all(|servers| servers.as_array().is_some_and(|a| a.is_empty())) {
            Ok(v)
        } else {
            Err(format!("not applied everywhere yet: {v}"))
        }
    });
    assert_eq!(view["settings"]["maxmemory"], "67108864", "{view:#}");
    assert_eq!(view["settings"]["maxmemory-policy"], "allkeys-lru", "{view:#}");
    assert_eq!(view["servers"], 3, "{view:#}");
    let text = h.zedis_ok(&["cluster", "config", "get"]);
    assert!(text.contains("67108864 (64mb)") && text.contains("applied on all 3 servers"), "config get: {text}");

    h.phase("once applied, the controller does not keep re-applying them");
    let sets = config_sets(&h);
    assert!(sets > 0, "the controller logs its CONFIG SETs:\n{}", h.controllers[0].log());
    // An observation window of several probe rounds (200 ms each), not a synchronisation: a
    // value that never read back equal would be set again in each round.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(config_sets(&h), sets, "CONFIG SET repeated although nothing drifted:\n{}", h.controllers[0].log());

    h.phase("a server added afterwards gets them too");
    let extra = start_redis();
    let x = extra.addr();
    assert_eq!(config_get(&x, &["maxmemory"]).expect("CONFIG GET")["maxmemory"], "0");
    h.zedis_ok(&["cluster", "add-server", "--group", "1", &x]);
    servers.push(x.clone());
    h.wait_until(Duration::from_secs(10), "the added server runs the settings", || {
        all_have(std::slice::from_ref(&x), &want)
    });

    h.phase("a value changed behind zedis's back is put back");
    let r = h.addr(0, 1);
    let mut conn = redis_conn(&r).expect("connect");
    let _: String = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1mb").query(&mut conn).expect("CONFIG SET");
    h.wait_until(Duration::from_secs(10), "the drifted server is corrected", || {
        all_have(std::slice::from_ref(&r), &want)
    });

    h.phase("refused settings and bad values: one clear line, nothing queued");
    let epoch_now = epoch(&h.status());
    for (args, needle) in [
        (vec!["replicaof", "127.0.0.1", "1"], "pairs of NAME VALUE"),
        (vec!["replicaof", "no-one"], "replicaof"),
        (vec!["min-replicas-to-write", "0"], "min-replicas-to-write"),
        (vec!["dir", "/tmp"], "dir"),
        (vec!["requirepass", "secret"], "requirepass"),
        (vec!["maxmemory", "lots"], "maxmemory"),
        (vec!["maxmemory-policy", "sometimes"], "maxmemory-policy"),
        (vec!["no-such-setting", "1"], "no-such-setting"),
    ] {
        let mut full = vec!["cluster", "config", "set"];
        full.extend(args.iter().copied());
        let line = h.zedis_fails(&full, needle);
        eprintln!("  {}: {line}", args.join(" "));
    }
    assert_eq!(epoch(&h.status()), epoch_now, "refused requests must not change the topology");

    h.phase("unset stops enforcing; servers keep their value");
    let out = h.zedis_ok(&["cluster", "config", "unset", "maxmemory"]);
    assert!(out.contains("no longer enforced"), "unset says: {out}");
    let view: Value =
        serde_json::from_str(&h.zedis_ok(&["cluster", "config", "get", "--json"])).expect("config get --json");
    assert!(view["settings"].get("maxmemory").is_none(), "{view:#}");
    assert_eq!(view["settings"]["maxmemory-policy"], "allkeys-lru", "{view:#}");
    h.zedis_fails(&["cluster", "config", "unset", "maxmemory"], "not set");
    all_have(&servers, &[("maxmemory", "67108864")]).expect("servers keep the value");

    let kinds: Vec<String> = h.events().iter().map(|e| e["kind"].as_str().unwrap_or_default().to_string()).collect();
    assert!(kinds.iter().filter(|k| *k == "settings_changed").count() >= 2, "events: {kinds:?}");
    drop(h);
    drop(extra);
}
