//! `zedis config ...` as users run it, against a real ZooKeeper (and a Redis for the mirror):
//! set/get/history/rollback/delete with rising versions, a stale `--expect-version` refused
//! with a one-line reason, bad values refused, `watch` printing each change, and
//! `zedis config mirror` making each new value readable with `HGET zedis:config:<ns> <key>`
//! within 2 s.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn background(h: &Harness, name: &str, args: &[&str]) -> Background {
    Background::spawn_with(h, name, &[], args)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn set_get_history_rollback_with_rising_versions() {
    let h = Harness::start("config_cli", &[]);
    let root = ["--root", "/t-config-cli"];
    let z = |args: &[&str]| -> String { h.zedis_ok(&[&root[..], args].concat()) };

    h.phase("set prints rising versions; get prints the value");
    assert_eq!(z(&["config", "set", "app", "db.url", "postgres://db1", "--comment", "first"]).trim(), "1");
    assert_eq!(z(&["config", "set", "app", "db.url", "postgres://db2"]).trim(), "2");
    assert_eq!(z(&["config", "get", "app", "db.url"]), "postgres://db2\n");
    let got = json(&z(&["config", "get", "app", "db.url", "--json"]));
    assert_eq!((got["version"].as_u64(), got["value"].as_str()), (Some(2), Some("postgres://db2")));
    assert_eq!(got["source"], "zookeeper");

    h.phase("history is a JSON array, newest first");
    let history = json(&z(&["config", "history", "app", "db.url", "--json"]));
    let versions: Vec<u64> =
        history.as_array().expect("array").iter().map(|r| r["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(history[1]["comment"], "first");
    assert!(z(&["config", "history", "app", "db.url"]).contains("postgres://db1"), "human history shows values");

    h.phase("rollback publishes the old value as a new version");
    assert_eq!(z(&["config", "rollback", "app", "db.url", "--to", "1"]).trim(), "3");
    assert_eq!(z(&["config", "get", "app", "db.url"]).trim(), "postgres://db1");

    h.phase("a stale --expect-version is refused with the current version; a fresh one works");
    let line = h.zedis_fails(
        &[&root[..], &["config", "set", "app", "db.url", "x", "--expect-version", "2"]].concat(),
        "version 3",
    );
    eprintln!("    {line}");
    assert_eq!(z(&["config", "get", "app", "db.url"]).trim(), "postgres://db1", "nothing was written");
    assert_eq!(z(&["config", "set", "app", "db.url", "postgres://db3", "--expect-version", "3"]).trim(), "4");

    h.phase("values are validated against their format");
    h.zedis_fails(
        &[&root[..], &["config", "set", "app", "limits", "{oops", "--format", "json"]].concat(),
        "not valid json",
    );
    let file = h.dir.path().join("limits.toml");
    std::fs::write(&file, "[limits]\nrps = 100\n").expect("write");
    let path = file.to_string_lossy().into_owned();
    assert_eq!(z(&["config", "set", "app", "limits", "--file", &path]).trim(), "1");
    assert_eq!(json(&z(&["config", "get", "app", "limits", "--json"]))["format"], "toml");
    std::fs::write(&file, "[limits\n").expect("write");
    h.zedis_fails(&[&root[..], &["config", "set", "app", "limits", "--file", &path]].concat(), "not valid toml");
    h.zedis_fails(&[&root[..], &["config", "set", "app", "bad key", "v"]].concat(), "key name");

    h.phase("list, delete");
    let list = json(&z(&["config", "list", "app", "--json"]));
    let keys: Vec<&str> = list.as_array().expect("array").iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["db.url", "limits"]);
    assert!(z(&["config", "list", "app"]).contains("postgres://db3"));
    assert_eq!(z(&["config", "delete", "app", "limits"]).trim(), "2");
    h.zedis_fails(&[&root[..], &["config", "get", "app", "limits"]].concat(), "not found");
    h.zedis_fails(&[&root[..], &["config", "delete", "app", "limits"]].concat(), "not found");

    h.phase("canary from the command line");
    assert_eq!(
        z(&["config", "canary", "publish", "app", "db.url", "postgres://db4", "--selector", "zone=a"]).trim(),
        "5"
    );
    assert_eq!(z(&["config", "get", "app", "db.url", "--label", "zone=a"]).trim(), "postgres://db4");
    assert_eq!(z(&["config", "get", "app", "db.url", "--label", "zone=b"]).trim(), "postgres://db3");
    h.zedis_fails(&[&root[..], &["config", "set", "app", "db.url", "x"]].concat(), "canary");
    assert_eq!(z(&["config", "canary", "promote", "app", "db.url"]).trim(), "5");
    assert_eq!(z(&["config", "get", "app", "db.url"]).trim(), "postgres://db4");
}

#[test]
fn watch_prints_changes_and_mirror_serves_hget_within_2s() {
    let h = Harness::start("config_mirror_cli", &[1]);
    let redis_addr = h.addr(0, 0);
    let root = ["--root", "/t-config-mirror"];
    let z = |args: &[&str]| -> String { h.zedis_ok(&[&root[..], args].concat()) };

    h.phase("start `zedis config mirror` and `zedis config watch` before anything exists under the root");
    let mut mirror = background(
        &h,
        "mirror",
        &[&root[..], &["config", "mirror", "--redis", &redis_addr, "--probe-interval-ms", "200"]].concat(),
    );
    let mut watch = background(&h, "watch", &[&root[..], &["config", "watch", "app", "--json"]].concat());
    h.wait_until(Duration::from_secs(15), "the mirror is ready", || {
        mirror.stdout().contains("ready").then_some(()).ok_or_else(|| mirror.describe())
    });
    let mut conn = redis_conn(&redis_addr).expect("redis connection");
    let mut hget = |key: &str| -> Option<String> {
        redis::cmd("HGET").arg("zedis:config:app").arg(key).query::<Option<String>>(&mut conn).ok().flatten()
    };

    h.phase("each new value is readable with HGET within 2 s");
    for (i, color) in ["red", "green", "blue", "violet"].iter().enumerate() {
        let version = z(&["config", "set", "app", "color", color]);
        assert_eq!(version.trim(), (i + 1).to_string());
        let set_at = Instant::now();
        let took = h.wait_until(Duration::from_secs(2), &format!("HGET shows {color}"), || {
            (hget("color").as_deref() == Some(*color))
                .then(|| set_at.elapsed())
                .ok_or_else(|| format!("{:?}", hget("color")))
        });
        h.phase(&format!("  {color} (v{}) in Redis after {took:?}", i + 1));
    }

    h.phase("the watch printed every version, in order, as JSON lines");
    let lines = h.wait_until(Duration::from_secs(5), "the watch printed v4", || {
        let out = watch.stdout();
        let lines: Vec<Value> = out.lines().filter(|l| !l.is_empty()).map(json).collect();
        lines.iter().any(|l| l["version"] == 4).then_some(lines).ok_or(out)
    });
    let versions: Vec<u64> = lines.iter().map(|l| l["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 2, 3, 4], "{lines:?}");
    assert_eq!(lines[3]["value"], "violet");

    h.phase("Ctrl-C stops both cleanly");
    assert_eq!(watch.stop(&h), Some(0), "{}", watch.describe());
    assert_eq!(mirror.stop(&h), Some(0), "{}", mirror.describe());
}
