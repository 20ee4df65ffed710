//! `zedis service ...` as users run it, against a real ZooKeeper (and a Redis for the mirror):
//! a registered instance is listed, followed by `service watch`, vanishes within the session
//! timeout after `kill -9` and at once after SIGTERM; bad flags fail with one line; the mirror
//! command keeps Redis equal to ZooKeeper.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `zedis` in the background under this test's root, with this file's session timeout.
fn background(h: &Harness, name: &str, args: &[&str]) -> Background {
    let session = SESSION_MS.to_string();
    Background::spawn_with(h, name, &["--root", &root(h), "--session-timeout-ms", &session, "--log", "info"], args)
}

/// Session timeout given to every background `zedis` here.
const SESSION_MS: u64 = 2000;

/// Each test has its own root, so they can share nothing by accident.
fn root(h: &Harness) -> String {
    format!("/t-{}", h.cluster)
}

/// `zedis --root R service list NAME --json`, parsed: instance id → record.
fn list(h: &Harness, name: &str) -> BTreeMap<String, Value> {
    let root = root(h);
    let out = h.zedis_ok(&["--root", &root, "service", "list", name, "--json"]);
    let all: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("list --json is not JSON ({e}): {out}"));
    all.into_iter().map(|i| (i["id"].as_str().unwrap_or_default().to_string(), i)).collect()
}

/// The ids in one `service watch --json` line.
fn watch_ids(line: &str) -> Option<Vec<String>> {
    let doc: Value = serde_json::from_str(line).ok()?;
    Some(doc["instances"].as_array()?.iter().map(|i| i["id"].as_str().unwrap_or_default().to_string()).collect())
}

#[test]
fn registered_instance_is_listed_watched_and_vanishes() {
    let h = Harness::start("service_register", &[]);
    let root = root(&h);

    h.phase("register an instance");
    let one = background(
        &h,
        "register-1",
        &["service", "register", "api", "--addr", "127.0.0.1:7001", "--meta", "zone=a", "--meta", "v=2"],
    );
    let line = one
        .wait_line(&h, Duration::from_secs(15), "register-1 says it is registered", |l| l.starts_with("registered "));
    assert!(line.contains("api/127.0.0.1-7001") && line.contains("127.0.0.1:7001"), "{line}");

    h.phase("it is listed (JSON and table)");
    let listed = list(&h, "api");
    let record = &listed["127.0.0.1-7001"];
    assert_eq!(record["address"], "127.0.0.1");
    assert_eq!(record["port"], 7001);
    assert_eq!(record["metadata"]["zone"], "a");
    assert_eq!(record["metadata"]["v"], "2");
    assert_eq!(record["enabled"], true);
    let table = h.zedis_ok(&["--root", &root, "service", "list", "api"]);
    assert!(table.starts_with("ID") && table.contains("127.0.0.1-7001") && table.contains("zone=a"), "{table}");
    let none = h.zedis_ok(&["--root", &root, "service", "list", "nothing-here"]);
    assert_eq!(none.trim(), "no live instances of nothing-here");
    assert_eq!(h.zedis_ok(&["--root", &root, "service", "list", "nothing-here", "--json"]).trim(), "[]");

    h.phase("watch the service");
    let watch = background(&h, "watch", &["service", "watch", "api", "--json"]);
    watch.wait_line(&h, Duration::from_secs(15), "watch prints the first instance set", |l| {
        watch_ids(l) == Some(vec!["127.0.0.1-7001".to_string()])
    });

    h.phase("a second instance (explicit id, weight, disabled) shows up in the watch");
    let mut two = background(
        &h,
        "register-2",
        &["service", "register", "api", "--addr", "127.0.0.1:7002", "--id", "second", "--weight", "5", "--disabled"],
    );
    two.wait_line(&h, Duration::from_secs(15), "register-2 is registered", |l| l.starts_with("registered "));
    watch.wait_line(&h, Duration::from_secs(5), "watch prints both instances", |l| {
        watch_ids(l) == Some(vec!["127.0.0.1-7001".to_string(), "second".to_string()])
    });
    let listed = list(&h, "api");
    assert_eq!((listed["second"]["weight"].as_u64(), listed["second"]["enabled"].as_bool()), (Some(5), Some(false)));

    h.phase("kill -9 the first: it vanishes within the session timeout");
    let mut one = one;
    one.kill9();
    let killed = Instant::now();
    h.wait_until(Duration::from_millis(SESSION_MS * 4), "the killed instance is no longer listed", || {
        let listed = list(&h, "api");
        if listed.contains_key("127.0.0.1-7001") {
            Err(format!("still listed: {listed:?}"))
        } else {
            Ok(())
        }
    });
    let gone_after = killed.elapsed();
    h.phase(&format!("gone {gone_after:?} after kill -9 (session timeout {SESSION_MS} ms)"));
    watch.wait_line(&h, Duration::from_secs(5), "watch prints the set without the killed instance", |l| {
        watch_ids(l) == Some(vec!["second".to_string()])
    });

    h.phase("SIGTERM the second: it deregisters at once and exits 0");
    two.signal(libc::SIGTERM);
    two.assert_clean_exit(&h);
    assert!(list(&h, "api").is_empty(), "deregistered before exiting");
    watch.wait_line(&h, Duration::from_secs(5), "watch prints the empty set", |l| watch_ids(l) == Some(vec![]));

    h.phase("Ctrl-C stops the watch with exit code 0");
    let mut watch = watch;
    watch.signal(libc::SIGINT);
    watch.assert_clean_exit(&h);
    let lines = watch.stdout().lines().count();
    assert_eq!(lines, 4, "one line at start and one per change:\n{}", watch.stdout());
}

#[test]
fn bad_flags_fail_with_one_line() {
    let h = Harness::start("service_bad_flags", &[]);
    let table: &[(&[&str], &str)] = &[
        (&["service", "register", "api", "--addr", "nohost"], "bad --addr"),
        (&["service", "register", "api", "--addr", "h:0"], "bad --addr"),
        (&["service", "register", "api", "--addr", "h:99999"], "bad --addr"),
        (&["service", "register", "api", "--addr", "::1:80"], "bad --addr"),
        (&["service", "register", "api", "--addr", "h:1", "--meta", "novalue"], "bad --meta"),
        (&["service", "register", "api", "--addr", "h:1", "--meta", "=v"], "bad --meta"),
        (&["service", "register", "a/b", "--addr", "h:1"], "service name"),
        (&["service", "register", "api", "--addr", "h:1", "--id", "x y"], "instance id"),
        (&["service", "list", "bad name"], "service name"),
        (&["service", "watch", ".."], "service name"),
        (&["service", "mirror", "--redis", "nope://x"], "bad --redis"),
    ];
    for (args, needle) in table {
        h.phase(&format!("zedis {}", args.join(" ")));
        h.zedis_fails(args, needle);
    }
    h.phase("unreachable ZooKeeper and Redis");
    let out = zedis_raw(&["--zk", "127.0.0.1:1", "--zk-timeout-ms", "500", "service", "list", "api"]);
    expect_one_line_error(&out, "unreachable");
    h.zedis_fails(&["service", "mirror", "--redis", "127.0.0.1:1"], "unreachable");
}

#[test]
fn mirror_command_keeps_redis_equal() {
    let h = Harness::start("service_mirror", &[1]);
    let redis = h.addr(0, 0);

    h.phase("start the mirror");
    let mut mirror =
        background(&h, "mirror", &["service", "mirror", "--redis", &redis, "--resync-interval-ms", "1000"]);
    mirror.wait_line(&h, Duration::from_secs(15), "the mirror is ready", |l| l.contains("ready"));

    h.phase("register two instances");
    let _a = background(&h, "register-a", &["service", "register", "web", "--addr", "127.0.0.1:8001", "--id", "a"]);
    let mut b = background(&h, "register-b", &["service", "register", "web", "--addr", "127.0.0.1:8002", "--id", "b"]);
    let hash = |h: &Harness| -> Result<BTreeMap<String, String>, String> {
        let mut conn = redis_conn(&h.addr(0, 0))?;
        redis::cmd("HGETALL").arg("zedis:services:web").query(&mut conn).map_err(|e| format!("HGETALL: {e}"))
    };
    let got = h.wait_until(Duration::from_secs(15), "Redis has a and b", || {
        let got = hash(&h)?;
        if got.keys().map(String::as_str).collect::<Vec<_>>() == ["a", "b"] {
            Ok(got)
        } else {
            Err(format!("hash is {got:?}"))
        }
    });
    let a: Value = serde_json::from_str(&got["a"]).expect("a's value is its JSON record");
    assert_eq!(a["port"], 8001);

    h.phase("stop b: its field goes");
    b.signal(libc::SIGTERM);
    b.assert_clean_exit(&h);
    h.wait_until(Duration::from_secs(10), "Redis has only a", || {
        let got = hash(&h)?;
        if got.keys().map(String::as_str).collect::<Vec<_>>() == ["a"] {
            Ok(())
        } else {
            Err(format!("hash is {got:?}"))
        }
    });

    h.phase("SIGTERM stops the mirror with exit code 0");
    mirror.signal(libc::SIGTERM);
    mirror.assert_clean_exit(&h);
}
