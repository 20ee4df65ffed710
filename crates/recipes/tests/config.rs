//! The configuration center against a real ZooKeeper (and Redis for the mirror): concurrent
//! compare-and-set writers; history, rollback, delete and the history limit; watchers that see
//! every final value and never an older one across a ZooKeeper restart, a reconnect and a
//! session expiry; the local snapshot served while ZooKeeper is down; canaries reaching only
//! labelled clients; the Redis mirror (values, notifications, refusal of an older write,
//! catch-up after a Redis restart, a failover and a ZooKeeper reconnect).
//!
//! Most tests share one ZooKeeper, each under its own root; the restart and snapshot tests
//! have their own. The decisions (formats, versions, canaries, the mirror's plan) are unit
//! tests in `src/config/`.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::Partition;
use tokio::sync::watch;
use zedis_coord::{Zk, ZkOptions};
use zedis_recipes::config::{
    apply_writes, meta_key, values_key, CanaryOptions, CanaryState, ConfigClient, ConfigError, ConfigEvent,
    ConfigOptions, ConfigRecord, Format, MirrorOptions, MirrorTarget, MirrorWrite, PublishOptions, Source, TargetError,
    WatchStatus, WriteOutcome,
};
use zedis_testkit::{RedisServer, ZkServer};

/// Longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);

fn shared_zk() -> &'static ZkServer {
    static ZK: OnceLock<ZkServer> = OnceLock::new();
    ZK.get_or_init(|| ZkServer::start().unwrap_or_else(|e| panic!("zookeeper did not start: {e}")))
}

fn phase(test: &str, started: Instant, what: &str) {
    eprintln!("[{test} +{:.2}s] phase: {what}", started.elapsed().as_secs_f64());
}

fn zk_options(hosts: &str, session_timeout: Duration) -> ZkOptions {
    let mut options = ZkOptions::new(hosts);
    options.session_timeout = session_timeout;
    options.connect_timeout = Duration::from_secs(2);
    options
}

fn options(root: &str) -> ConfigOptions {
    ConfigOptions { root: root.to_string(), author: "test".to_string(), ..ConfigOptions::default() }
}

async fn client(hosts: &str, options: ConfigOptions) -> ConfigClient {
    ConfigClient::connect(zk_options(hosts, Duration::from_secs(4)), options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper: {e}"))
}

fn text(comment: &str) -> PublishOptions {
    PublishOptions { comment: comment.to_string(), ..PublishOptions::default() }
}

/// Polls `check` every 20 ms until it returns `Some`, at most [`WAIT`]; returns the value and
/// how long it took.
async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < WAIT, "timed out after {WAIT:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes, retrying while ZooKeeper is coming back (after a restart).
async fn publish_retrying(client: &ConfigClient, ns: &str, key: &str, value: &str) -> ConfigRecord {
    let started = Instant::now();
    loop {
        match client.publish(ns, key, value, text("")).await {
            Ok(r) => return r,
            Err(e) if e.is_unreachable() && started.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish {ns}/{key}={value}: {e}"),
        }
    }
}

/// Collects a watch's events in the background.
struct Collected {
    events: Arc<Mutex<Vec<ConfigEvent>>>,
    status: watch::Receiver<WatchStatus>,
}

impl Collected {
    fn start(mut watch: zedis_recipes::config::ConfigWatch) -> Collected {
        let events = Arc::new(Mutex::new(Vec::new()));
        let status = watch.subscribe_status();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                sink.lock().unwrap().push(event);
            }
        });
        Collected { events, status }
    }

    /// Waits until the watch knows it is not connected.
    async fn wait_disconnected(&self) {
        let mut status = self.status.clone();
        tokio::time::timeout(WAIT, status.wait_for(|s| !s.connected))
            .await
            .expect("the watch notices the disconnection")
            .expect("status");
    }

    fn snapshot(&self) -> Vec<ConfigEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The last event of `key`: (version, deleted, value).
    fn last(&self, key: &str) -> Option<(u64, bool, String)> {
        self.snapshot()
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| (e.version(), e.is_deleted(), e.record.value.clone()))
    }

    /// Waits until the last event of `key` is `version`.
    async fn wait_for(&self, key: &str, version: u64, what: &str) -> Duration {
        let (_, took) =
            wait_until(what, || std::future::ready(self.last(key).filter(|l| l.0 == version).map(|_| ()))).await;
        took
    }

    /// Per key, versions told strictly rise.
    fn assert_never_backwards(&self) {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for e in self.snapshot() {
            if let Some(prev) = last.insert(e.key.clone(), e.version()) {
                assert!(
                    e.version() > prev,
                    "{} went from version {prev} to {}: {:?}",
                    e.key,
                    e.version(),
                    self.snapshot()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_writers_lose_no_increment() {
    const TEST: &str = "concurrent_cas";
    const WRITERS: u64 = 8;
    const ROUNDS: u64 = 10;
    let started = Instant::now();
    let hosts = shared_zk().connect_string();
    let c = client(&hosts, options("/t-cas")).await;

    phase(TEST, started, "counter at 0 (version 1)");
    let first = c.publish("app", "counter", "0", text("start")).await.expect("first publish");
    assert_eq!(first.version, 1);

    phase(TEST, started, "writers read-modify-write with expect_version, all starting from the same read");
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS as usize));
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        // Separate clients (sessions), as separate processes would be.
        let c = client(&hosts, options("/t-cas")).await;
        let barrier = barrier.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut first_round = true;
            for _ in 0..ROUNDS {
                loop {
                    let current = c.get("app", "counter").await.expect("get").expect("counter exists");
                    if first_round {
                        barrier.wait().await;
                        first_round = false;
                    }
                    let n: u64 = current.record.value.parse().expect("a number");
                    let opts = PublishOptions {
                        expect_version: Some(current.record.version),
                        comment: format!("writer {w}"),
                        ..PublishOptions::default()
                    };
                    match c.publish("app", "counter", (n + 1).to_string(), opts).await {
                        Ok(r) => {
                            assert_eq!(r.version, current.record.version + 1);
                            break;
                        }
                        Err(ConfigError::VersionConflict { expected, actual, .. }) => {
                            assert_eq!(expected, current.record.version);
                            assert!(actual > expected, "the conflict names a newer version: {actual} vs {expected}");
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let conflicts = conflicts.load(Ordering::Relaxed);
    eprintln!("[{TEST}]   {conflicts} conflicts reported");
    assert!(conflicts >= WRITERS - 1, "all but one first-round writer conflict ({conflicts})");

    phase(TEST, started, "every increment is there");
    let last = c.get("app", "counter").await.expect("get").expect("exists");
    assert_eq!(last.record.value, (WRITERS * ROUNDS).to_string());
    assert_eq!(last.record.version, 1 + WRITERS * ROUNDS);
    assert_eq!(last.source, Source::ZooKeeper);

    phase(TEST, started, "history keeps the last 50, newest first");
    let history = c.history("app", "counter").await.expect("history");
    assert_eq!(history.len(), 50);
    let versions: Vec<u64> = history.iter().map(|r| r.version).collect();
    let want: Vec<u64> = (1 + WRITERS * ROUNDS - 49..=1 + WRITERS * ROUNDS).rev().collect();
    assert_eq!(versions, want);
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_rollback_delete_and_limit() {
    const TEST: &str = "history_rollback";
    let started = Instant::now();
    let hosts = shared_zk().connect_string();
    let c = client(&hosts, ConfigOptions { history_limit: 3, ..options("/t-history") }).await;
    let observer = Zk::connect(&zk_options(&hosts, Duration::from_secs(4))).await.expect("observer");

    phase(TEST, started, "four versions; the history keeps three");
    for (i, v) in ["a", "b", "c", "d"].iter().enumerate() {
        let r = c.publish("app", "k", *v, text(&format!("set {v}"))).await.expect("publish");
        assert_eq!((r.version, r.author.as_str()), (i as u64 + 1, "test"));
    }
    let versions = |h: &[ConfigRecord]| h.iter().map(|r| r.version).collect::<Vec<_>>();
    let history = c.history("app", "k").await.expect("history");
    assert_eq!(versions(&history), [4, 3, 2]);
    assert_eq!(history[1].comment, "set c");
    let stored = observer.children("/t-history/config/app/k/history").await.expect("children");
    assert_eq!(stored.len(), 3, "trimmed in ZooKeeper too: {stored:?}");
    let (raw, _) = observer.get("/t-history/config/app/k").await.expect("get").expect("node");
    let json: serde_json::Value = serde_json::from_slice(&raw).expect("readable JSON");
    assert_eq!((json["value"].as_str(), json["version"].as_u64()), (Some("d"), Some(4)));

    phase(TEST, started, "rollback publishes the old value as a new version");
    let r = c.rollback("app", "k", 2).await.expect("rollback");
    assert_eq!((r.version, r.value.as_str(), r.comment.as_str()), (5, "b", "rollback to v2"));
    assert!(matches!(c.rollback("app", "k", 1).await, Err(ConfigError::NoSuchVersion { version: 1, .. })));
    assert_eq!(c.get("app", "k").await.expect("get").expect("exists").record.value, "b");

    phase(TEST, started, "stale expect_version is refused, naming the current version");
    let err = c.publish("app", "k", "x", PublishOptions { expect_version: Some(3), ..text("") }).await.unwrap_err();
    assert!(matches!(err, ConfigError::VersionConflict { expected: 3, actual: 5, .. }), "{err}");
    assert!(err.to_string().contains("version 5"), "{err}");
    let err = c.publish("app", "new", "x", PublishOptions { expect_version: Some(1), ..text("") }).await.unwrap_err();
    assert!(matches!(err, ConfigError::VersionConflict { expected: 1, actual: 0, .. }), "{err}");
    c.publish("app", "new", "x", PublishOptions { expect_version: Some(0), ..text("") }).await.expect("create-only");

    phase(TEST, started, "formats are validated");
    let json = PublishOptions { format: Format::Json, ..text("") };
    assert!(matches!(c.publish("app", "j", "{bad", json.clone()).await, Err(ConfigError::InvalidValue { .. })));
    c.publish("app", "j", r#"{"ok": true}"#, json).await.expect("valid JSON");
    let toml = PublishOptions { format: Format::Toml, ..text("") };
    assert!(matches!(c.publish("app", "t", "a = nope", toml.clone()).await, Err(ConfigError::InvalidValue { .. })));
    c.publish("app", "t", "[server]\nport = 8080", toml).await.expect("valid TOML");

    phase(TEST, started, "delete is a version; the key is gone from get and list");
    let d = c.delete("app", "k").await.expect("delete");
    assert!(d.deleted && d.version == 6);
    assert_eq!(c.get("app", "k").await.expect("get"), None);
    assert!(matches!(c.delete("app", "k").await, Err(ConfigError::NotFound { .. })));
    let list = c.list("app").await.expect("list");
    assert_eq!(list.entries.keys().collect::<Vec<_>>(), ["j", "new", "t"]);
    assert_eq!(versions(&c.history("app", "k").await.expect("history")), [6, 5, 4]);

    phase(TEST, started, "re-created after a delete, it continues the numbering");
    let r = c.rollback("app", "k", 5).await.expect("undo the delete");
    assert_eq!((r.version, r.value.as_str()), (7, "b"));
    assert!(matches!(c.history("app", "missing").await, Err(ConfigError::NotFound { .. })));
    assert!(matches!(c.get("app", "bad key").await, Err(ConfigError::BadName(_))));
    assert_eq!(c.namespaces().await.expect("namespaces"), ["app"]);
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_final_values_across_restart_reconnect_and_expiry() {
    const TEST: &str = "watch_faults";
    let started = Instant::now();
    let mut zk_server = ZkServer::start().unwrap_or_else(|e| panic!("zookeeper did not start: {e}"));
    let hosts = zk_server.connect_string();
    let writer = client(&hosts, options("/t-watch")).await;
    // The watcher reaches ZooKeeper through a proxy that can cut it off; its own session is
    // passed in so that an ephemeral marker shows when that session has expired.
    let partition = Partition::start(hosts.clone()).await;
    let watcher_zk_options = zk_options(&partition.addr, Duration::from_secs(2));
    let watcher_zk = Zk::connect(&watcher_zk_options).await.expect("watcher session");
    let marker = "/t-watch-marker";
    watcher_zk.put_ephemeral(marker, b"").await.expect("marker");
    let watcher = ConfigClient::with_session(watcher_zk, watcher_zk_options, options("/t-watch")).expect("watcher");
    let observer = Zk::connect(&zk_options(&hosts, Duration::from_secs(4))).await.expect("observer");

    phase(TEST, started, "the watch starts with the current state");
    writer.publish("app", "a", "a1", text("")).await.expect("a1");
    let mut watch = watcher.watch("app").expect("watch");
    tokio::time::timeout(WAIT, watch.ready()).await.expect("ready");
    let events = Collected::start(watch);
    events.wait_for("a", 1, "the initial a1").await;

    writer.publish("app", "b", "b1", text("")).await.expect("b1");
    events.wait_for("b", 1, "b1").await;

    phase(TEST, started, "a burst of versions: the final one is told");
    for i in 2..=6 {
        writer.publish("app", "a", format!("a{i}"), text("")).await.expect("publish");
    }
    let took = events.wait_for("a", 6, "a6").await;
    eprintln!("[{TEST}]   a6 seen after {took:?}");

    phase(TEST, started, "the watcher is cut off briefly (reconnects in its session): changes meanwhile are told");
    partition.set_cut(true);
    events.wait_disconnected().await;
    writer.publish("app", "a", "a7", text("")).await.expect("a7");
    writer.publish("app", "c", "c1", text("")).await.expect("c1");
    writer.delete("app", "b").await.expect("delete b");
    partition.set_cut(false);
    events.wait_for("a", 7, "a7 after the reconnect").await;
    events.wait_for("c", 1, "c1 after the reconnect").await;
    events.wait_for("b", 2, "b's deletion after the reconnect").await;
    assert_eq!(events.last("b").map(|l| l.1), Some(true), "b is told deleted");
    assert!(observer.get(marker).await.expect("get").is_some(), "the watcher's session survived the short cut");

    phase(TEST, started, "the watcher is cut off until its session expires: changes meanwhile are told in the next");
    partition.set_cut(true);
    let (_, took) = wait_until("the watcher's session expired (the marker is gone)", || async {
        observer.get(marker).await.expect("get").is_none().then_some(())
    })
    .await;
    eprintln!("[{TEST}]   expired {took:?} after the cut");
    writer.publish("app", "a", "a8", text("")).await.expect("a8");
    writer.publish("app", "a", "a9", text("")).await.expect("a9");
    writer.publish("app", "a", "a10", text("")).await.expect("a10");
    writer.publish("app", "c", "c2", text("")).await.expect("c2");
    writer.publish("app", "d", "d1", text("")).await.expect("d1");
    partition.set_cut(false);
    let took = events.wait_for("a", 10, "a10 in the new session").await;
    eprintln!("[{TEST}]   caught up {took:?} after the heal");
    events.wait_for("c", 2, "c2 in the new session").await;
    events.wait_for("d", 1, "d1 in the new session").await;

    phase(TEST, started, "ZooKeeper restarts: writes around it are all told");
    writer.publish("app", "e", "e1", text("")).await.expect("e1");
    zk_server.restart().unwrap_or_else(|e| panic!("zookeeper did not restart: {e}"));
    publish_retrying(&writer, "app", "e", "e2").await;
    publish_retrying(&writer, "app", "a", "a11").await;
    events.wait_for("e", 2, "e2 after the restart").await;
    events.wait_for("a", 11, "a11 after the restart").await;

    phase(TEST, started, "nothing ever went backwards, nothing was told twice");
    events.assert_never_backwards();
    assert_eq!(events.last("a").map(|l| l.2), Some("a11".to_string()));
    // Live writes keep flowing in the new session.
    writer.publish("app", "d", "d2", text("")).await.expect("d2");
    events.wait_for("d", 2, "d2").await;
    events.assert_never_backwards();
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_served_while_zookeeper_is_down() {
    const TEST: &str = "snapshot";
    let started = Instant::now();
    let mut zk_server = ZkServer::start().unwrap_or_else(|e| panic!("zookeeper did not start: {e}"));
    let hosts = zk_server.connect_string();
    let dir = std::env::temp_dir().join(format!("zedis-config-snapshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let with_snapshots = || ConfigOptions { snapshot_dir: Some(dir.clone()), ..options("/t-snap") };

    phase(TEST, started, "a client reads a namespace: its snapshot is written");
    let first = client(&hosts, with_snapshots()).await;
    first.publish("app", "url", "db://one", text("")).await.expect("publish");
    first.publish("app", "gone", "x", text("")).await.expect("publish");
    first.delete("app", "gone").await.expect("delete");
    let value = first.get("app", "url").await.expect("get").expect("exists");
    assert_eq!(value.source, Source::ZooKeeper);
    let file = dir.join("app.json");
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("snapshot written")).expect("snapshot is JSON");
    assert_eq!(snapshot["entries"]["url"]["value"], "db://one");
    assert_eq!(snapshot["entries"]["gone"]["deleted"], true, "deletions are kept in the snapshot");
    first.publish("app", "url", "db://two", text("")).await.expect("publish");
    first.get("app", "url").await.expect("get");
    let snapshot: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("JSON");
    assert_eq!(snapshot["entries"]["url"]["version"], 2, "the snapshot follows what the client reads");
    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).expect("dir").filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files: {leftovers:?}");
    drop(first);

    phase(TEST, started, "ZooKeeper stops; a new client starts from the snapshot and says so");
    zk_server.stop();
    let offline = ConfigClient::connect(zk_options(&hosts, Duration::from_secs(4)), with_snapshots())
        .await
        .expect("starts without ZooKeeper");
    assert!(!offline.is_connected());
    let value = offline.get("app", "url").await.expect("served from the snapshot").expect("exists");
    assert_eq!((value.record.value.as_str(), value.record.version), ("db://two", 2));
    let Source::LocalSnapshot { taken_at_ms } = value.source else { panic!("not from the snapshot: {value:?}") };
    assert!(taken_at_ms > 0 && value.source.is_stale());
    assert_eq!(offline.get("app", "gone").await.expect("get"), None, "a deleted key stays deleted");
    let list = offline.list("app").await.expect("list from the snapshot");
    assert!(list.source.is_stale() && list.entries.len() == 1);
    assert!(matches!(offline.publish("app", "url", "x", text("")).await, Err(ConfigError::Offline)));
    assert!(matches!(offline.get("other", "k").await, Err(ConfigError::Unavailable { .. })));
    let mut watch = offline.watch("app").expect("watch");
    tokio::time::timeout(WAIT, watch.ready()).await.expect("ready from the snapshot");
    let event = watch.next().await.expect("the snapshot's value is told");
    assert_eq!((event.key.as_str(), event.version()), ("url", 2));
    assert!(event.source.is_stale());

    phase(TEST, started, "a client without snapshots fails instead");
    let err = ConfigClient::connect(zk_options(&hosts, Duration::from_secs(1)), options("/t-snap")).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");

    phase(TEST, started, "ZooKeeper is back: the client connects by itself and serves live values");
    zk_server.restart().unwrap_or_else(|e| panic!("zookeeper did not restart: {e}"));
    let writer = client(&hosts, options("/t-snap")).await;
    writer.publish("app", "url", "db://three", text("")).await.expect("publish");
    let (value, took) = wait_until("the offline client reads from ZooKeeper again", || async {
        offline.get("app", "url").await.ok().flatten().filter(|v| v.source == Source::ZooKeeper)
    })
    .await;
    eprintln!("[{TEST}]   live again {took:?} after the restart");
    assert_eq!((value.record.value.as_str(), value.record.version), ("db://three", 3));
    let event = tokio::time::timeout(WAIT, watch.next()).await.expect("watch goes on").expect("event");
    assert_eq!((event.version(), event.source), (3, Source::ZooKeeper));
    let _ = std::fs::remove_dir_all(&dir);
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_reaches_only_labelled_clients() {
    const TEST: &str = "canary";
    let started = Instant::now();
    let hosts = shared_zk().connect_string();
    let labelled =
        |zone: &str| ConfigOptions { labels: [("zone".to_string(), zone.to_string())].into(), ..options("/t-canary") };
    let admin = client(&hosts, options("/t-canary")).await;
    let in_a = client(&hosts, labelled("a")).await;
    let in_b = client(&hosts, labelled("b")).await;
    let value = |c: ConfigClient| async move {
        c.get("app", "k").await.expect("get").map(|v| (v.record.version, v.record.value))
    };

    phase(TEST, started, "a watch of a namespace that does not exist yet sees it appear");
    let mut late = in_b.watch("late").expect("watch");
    tokio::time::timeout(WAIT, late.ready()).await.expect("ready");
    admin.publish("late", "k", "first", text("")).await.expect("publish");
    let event = tokio::time::timeout(WAIT, late.next()).await.expect("an event").expect("open");
    assert_eq!((event.key.as_str(), event.version(), event.record.value.as_str()), ("k", 1, "first"));
    drop(late);

    phase(TEST, started, "released v1; watches in zones a and b");
    admin.publish("app", "k", "old", text("")).await.expect("v1");
    let mut wa = in_a.watch("app").expect("watch a");
    let mut wb = in_b.watch("app").expect("watch b");
    tokio::time::timeout(WAIT, wa.ready()).await.expect("ready");
    tokio::time::timeout(WAIT, wb.ready()).await.expect("ready");
    let (ea, eb) = (Collected::start(wa), Collected::start(wb));

    phase(TEST, started, "a canary for zone=a");
    let selector: BTreeMap<String, String> = [("zone".to_string(), "a".to_string())].into();
    let canary = admin
        .publish_canary("app", "k", "new", CanaryOptions { selector: selector.clone(), ..CanaryOptions::default() })
        .await
        .expect("canary");
    assert_eq!(canary.version, 2);
    assert_eq!(value(in_a.clone()).await, Some((2, "new".to_string())));
    assert_eq!(value(in_b.clone()).await, Some((1, "old".to_string())));
    assert_eq!(value(admin.clone()).await, Some((1, "old".to_string())));
    let got = in_a.get("app", "k").await.expect("get").expect("exists");
    assert_eq!(got.record.canary.map(|c| c.state), Some(CanaryState::Candidate));
    ea.wait_for("k", 2, "zone a is told the candidate").await;
    assert_eq!(admin.canary("app", "k").await.expect("canary").map(|c| c.version), Some(2));
    assert!(matches!(
        admin.publish("app", "k", "x", text("")).await,
        Err(ConfigError::CanaryActive { version: 2, .. })
    ));

    phase(TEST, started, "promote: everyone has it, under the candidate's number");
    let promoted = admin.promote_canary("app", "k").await.expect("promote");
    assert_eq!((promoted.version, promoted.value.as_str()), (2, "new"));
    assert_eq!(value(in_b.clone()).await, Some((2, "new".to_string())));
    eb.wait_for("k", 2, "zone b is told the promoted version").await;
    assert_eq!(admin.canary("app", "k").await.expect("canary"), None);

    phase(TEST, started, "another canary, abandoned: zone a goes back to the released value, at a higher version");
    admin
        .publish_canary("app", "k", "newer", CanaryOptions { selector, ..CanaryOptions::default() })
        .await
        .expect("canary 2");
    ea.wait_for("k", 3, "zone a is told the second candidate").await;
    assert_eq!(value(in_b.clone()).await, Some((2, "new".to_string())));
    let abandoned = admin.abandon_canary("app", "k").await.expect("abandon");
    assert_eq!((abandoned.version, abandoned.value.as_str()), (4, "new"));
    ea.wait_for("k", 4, "zone a is told the revert").await;
    eb.wait_for("k", 4, "zone b is told the revert").await;
    assert_eq!(value(in_a.clone()).await, Some((4, "new".to_string())));
    assert!(matches!(admin.abandon_canary("app", "k").await, Err(ConfigError::NoCanary { .. })));

    phase(TEST, started, "what each zone was told, and the history");
    let told = |c: &Collected| c.snapshot().iter().map(|e| (e.version(), e.record.value.clone())).collect::<Vec<_>>();
    let s = |v: &str| v.to_string();
    assert_eq!(told(&ea), [(1, s("old")), (2, s("new")), (3, s("newer")), (4, s("new"))]);
    assert_eq!(told(&eb), [(1, s("old")), (2, s("new")), (4, s("new"))]);
    let history = admin.history("app", "k").await.expect("history");
    let states: Vec<(u64, Option<CanaryState>)> =
        history.iter().map(|r| (r.version, r.canary.as_ref().map(|c| c.state))).collect();
    assert_eq!(states, [(4, None), (3, Some(CanaryState::Abandoned)), (2, Some(CanaryState::Promoted)), (1, None)]);
    phase(TEST, started, "done");
}

/// A write target that can be switched to another server and reports an epoch, like a
/// cluster client after a failover.
#[derive(Clone)]
struct Switchable {
    conn: Arc<Mutex<redis::aio::ConnectionManager>>,
    epoch: Arc<AtomicU64>,
}

impl MirrorTarget for Switchable {
    fn query(&self, args: Vec<Vec<u8>>) -> impl Future<Output = Result<redis::Value, TargetError>> + Send {
        let conn = self.conn.lock().unwrap().clone();
        async move { conn.query(args).await }
    }

    fn epoch(&self) -> Option<u64> {
        Some(self.epoch.load(Ordering::SeqCst))
    }
}

async fn hget(conn: &redis::aio::ConnectionManager, key: &str, field: &str) -> Option<Option<String>> {
    redis::cmd("HGET").arg(key).arg(field).query_async(&mut conn.clone()).await.ok()
}

/// The version in the mirror's meta hash for `ns/key`.
async fn meta_version(conn: &redis::aio::ConnectionManager, ns: &str, key: &str) -> Option<u64> {
    let json = hget(conn, &meta_key(ns), key).await??;
    serde_json::from_str::<serde_json::Value>(&json).ok()?["version"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_follows_refuses_older_and_catches_up() {
    const TEST: &str = "mirror";
    let started = Instant::now();
    let hosts = shared_zk().connect_string();
    let mut redis_server = RedisServer::start().unwrap_or_else(|e| panic!("redis-server did not start: {e}"));
    let standby = RedisServer::start().unwrap_or_else(|e| panic!("redis-server did not start: {e}"));
    let redis_client = redis::Client::open(redis_server.url()).expect("redis url");
    let conn = redis_client.get_connection_manager().await.expect("redis connection");
    let writer = client(&hosts, options("/t-mirror")).await;

    phase(TEST, started, "a value before the mirror starts, and a stale namespace in Redis");
    writer.publish("app", "url", "db://one", text("")).await.expect("publish");
    redis::cmd("HSET")
        .arg(meta_key("ghost"))
        .arg("k")
        .arg(r#"{"version":1}"#)
        .query_async::<()>(&mut conn.clone())
        .await
        .expect("HSET");
    redis::cmd("HSET")
        .arg(values_key("ghost"))
        .arg("k")
        .arg("boo")
        .query_async::<()>(&mut conn.clone())
        .await
        .expect("HSET");

    phase(TEST, started, "subscribe to the namespace's channel");
    let (note_tx, notes) = mpsc::channel::<String>();
    let (sub_ready_tx, sub_ready) = mpsc::channel();
    let sub_client = redis_client.clone();
    std::thread::spawn(move || {
        let mut sub = sub_client.get_connection().expect("subscriber connection");
        sub.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe(values_key("app")).expect("SUBSCRIBE");
        let _ = sub_ready_tx.send(());
        loop {
            match pubsub.get_message() {
                Ok(msg) => {
                    if note_tx.send(msg.get_payload::<String>().unwrap_or_default()).is_err() {
                        return;
                    }
                }
                Err(e) if e.is_timeout() => {
                    if note_tx.send(String::new()).is_err() {
                        return;
                    }
                }
                // The server went away (the restart phase).
                Err(_) => return,
            }
        }
    });
    sub_ready.recv_timeout(WAIT).expect("subscribed");

    phase(TEST, started, "start the mirror (its ZooKeeper session goes through a proxy that can be cut)");
    let partition = Partition::start(hosts.clone()).await;
    let mirror_client = client(&partition.addr, options("/t-mirror")).await;
    let target = Switchable { conn: Arc::new(Mutex::new(conn.clone())), epoch: Arc::new(AtomicU64::new(1)) };
    let options =
        MirrorOptions { resync_interval: Duration::from_secs(30), probe_interval: Duration::from_millis(200) };
    let mirror = mirror_client.mirror(target.clone(), options);
    let mut stats = mirror.stats();
    let mirror_task = tokio::spawn(mirror.run());
    tokio::time::timeout(WAIT, stats.wait_for(|s| s.full_resyncs >= 1)).await.expect("first resync").expect("stats");
    assert_eq!(hget(&conn, &values_key("app"), "url").await, Some(Some("db://one".to_string())));
    assert_eq!(hget(&conn, &values_key("ghost"), "k").await, Some(None), "a namespace gone from ZooKeeper is purged");

    phase(TEST, started, "changes appear in Redis with their versions, and are announced");
    let deadline = Duration::from_secs(2);
    let r = writer.publish("app", "url", "db://two", text("")).await.expect("publish");
    let published = Instant::now();
    wait_until("db://two in Redis", || async {
        (hget(&conn, &values_key("app"), "url").await?? == "db://two").then_some(())
    })
    .await;
    let took = published.elapsed();
    eprintln!("[{TEST}]   mirrored after {took:?}");
    assert!(took < deadline, "mirrored after {took:?}");
    assert_eq!(meta_version(&conn, "app", "url").await, Some(r.version));
    writer.publish("app", "flag", "on", text("")).await.expect("publish");
    writer.delete("app", "flag").await.expect("delete");
    wait_until("the deletion is mirrored", || async {
        (meta_version(&conn, "app", "flag").await? == 2 && hget(&conn, &values_key("app"), "flag").await?.is_none())
            .then_some(())
    })
    .await;
    let mut seen = Vec::new();
    wait_until("notifications of url v2 and flag's deletion", || {
        while let Ok(n) = notes.try_recv() {
            if !n.is_empty() {
                seen.push(serde_json::from_str::<serde_json::Value>(&n).expect("notification is JSON"));
            }
        }
        let has = |key: &str, version: u64, deleted: bool| {
            seen.iter().any(|n| {
                n["key"] == key && n["version"] == version && n["deleted"] == deleted && n["namespace"] == "app"
            })
        };
        std::future::ready((has("url", 2, false) && has("flag", 2, true)).then_some(()))
    })
    .await;
    let s = stats.borrow().clone();
    assert!(s.applied >= 3 && s.last_lag.is_some(), "{s:?}");
    eprintln!("[{TEST}]   stats: {s:?}");

    phase(TEST, started, "an out-of-order (older) write is refused by Redis");
    let older = ConfigRecord { value: "db://stale".into(), version: 1, ..r.clone() };
    let outcome =
        apply_writes(&conn, "app", &[MirrorWrite::Record { key: "url".into(), record: older }]).await.expect("script");
    assert_eq!(outcome, [WriteOutcome::Refused { stored: 2 }]);
    let raw: Vec<i64> = redis::cmd("EVAL")
        .arg(zedis_recipes::config::mirror_script::SCRIPT)
        .arg(2)
        .arg(values_key("app"))
        .arg(meta_key("app"))
        .arg("set")
        .arg("url")
        .arg(1)
        .arg(r#"{"version":1}"#)
        .arg("db://by-hand")
        .arg("{}")
        .query_async(&mut conn.clone())
        .await
        .expect("EVAL");
    assert_eq!(raw, [-1, 2], "refused, Redis holds version 2");
    assert_eq!(hget(&conn, &values_key("app"), "url").await, Some(Some("db://two".to_string())));

    phase(TEST, started, "Redis restarts empty: the mirror restores it");
    redis_server.kill9();
    redis_server.restart().expect("redis restarts");
    let (_, took) = wait_until("Redis is restored after the restart", || async {
        (hget(&conn, &values_key("app"), "url").await?? == "db://two").then_some(())
    })
    .await;
    eprintln!("[{TEST}]   restored {took:?} after the restart");
    assert_eq!(meta_version(&conn, "app", "flag").await, Some(2), "deletions are restored too");

    phase(TEST, started, "a failover to a server without the data (epoch change): the mirror restores it");
    let standby_conn =
        redis::Client::open(standby.url()).expect("url").get_connection_manager().await.expect("standby connection");
    *target.conn.lock().unwrap() = standby_conn.clone();
    target.epoch.fetch_add(1, Ordering::SeqCst);
    wait_until("the new master has the config", || async {
        (hget(&standby_conn, &values_key("app"), "url").await?? == "db://two").then_some(())
    })
    .await;

    phase(TEST, started, "the mirror is cut off from ZooKeeper; changes meanwhile are mirrored after it reconnects");
    partition.set_cut(true);
    wait_until("the mirror notices the disconnection", || std::future::ready((!stats.borrow().in_sync).then_some(())))
        .await;
    writer.publish("app", "url", "db://three", text("")).await.expect("publish");
    writer.publish("other", "k", "v", text("")).await.expect("publish");
    partition.set_cut(false);
    wait_until("the changes made during the cut reach Redis", || async {
        let url = hget(&standby_conn, &values_key("app"), "url").await??;
        let other = hget(&standby_conn, &values_key("other"), "k").await??;
        (url == "db://three" && other == "v").then_some(())
    })
    .await;
    wait_until("the mirror says it is in sync", || std::future::ready(stats.borrow().in_sync.then_some(()))).await;
    // Changes after the reconnect are followed live again (long before the periodic resync).
    writer.publish("app", "url", "db://four", text("")).await.expect("publish");
    let published = Instant::now();
    wait_until("a change after the reconnect reaches Redis", || async {
        (hget(&standby_conn, &values_key("app"), "url").await?? == "db://four").then_some(())
    })
    .await;
    assert!(published.elapsed() < deadline, "mirrored after {:?}", published.elapsed());
    mirror_task.abort();
    phase(TEST, started, "done");
}
