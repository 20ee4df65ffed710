//! Service discovery against a real ZooKeeper (and Redis for the mirror): register, list and
//! update; an instance vanishing when its process dies and when it is dropped; re-creation
//! after session expiry; the cache following adds, updates and removes, also after a
//! reconnect within the session; the Redis mirror (equality, notifications, resync after
//! FLUSHALL and after a Redis restart, following after a reconnect within the session).
//!
//! The tests share one ZooKeeper, each under its own root. Picker distributions are unit
//! tests in `src/discovery/picker.rs` (pure).

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::Partition;
use zedis_coord::{Zk, ZkOptions};
use zedis_recipes::discovery::{
    Discovery, DiscoveryError, DiscoveryOptions, MirrorOptions, RegistrationState, ServiceInstance,
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

fn zk_options(session_timeout: Duration) -> ZkOptions {
    let mut options = ZkOptions::new(shared_zk().connect_string());
    options.session_timeout = session_timeout;
    options
}

async fn discovery(root: &str, session_timeout: Duration) -> Discovery {
    Discovery::connect(zk_options(session_timeout), DiscoveryOptions { root: root.to_string() })
        .await
        .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper: {e}"))
}

/// A plain session for looking at the nodes from outside.
async fn observer() -> Zk {
    Zk::connect(&zk_options(Duration::from_secs(6))).await.expect("observer session")
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

fn instance(service: &str, id: &str, port: u16) -> ServiceInstance {
    ServiceInstance::new(service, id, "127.0.0.1", port)
}

fn ids(instances: &[ServiceInstance]) -> Vec<&str> {
    instances.iter().map(|i| i.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_update_deregister() {
    const TEST: &str = "register_list_update";
    let started = Instant::now();
    let root = "/t-register";
    let d = discovery(root, Duration::from_secs(4)).await;
    let zk = observer().await;

    phase(TEST, started, "register two instances");
    let a = d.register(instance("api", "a", 8001).with_metadata("zone", "z1")).await.expect("register a");
    let b = d.register(instance("api", "b", 8002).with_weight(5)).await.expect("register b");
    assert!(matches!(a.state(), RegistrationState::Registered { generation: 0, .. }), "{:?}", a.state());
    assert_eq!(a.path(), format!("{root}/services/api/a"));
    let listed = d.instances("api").await.expect("list");
    assert_eq!(ids(&listed), ["a", "b"]);
    assert_eq!(listed[0].metadata.get("zone").map(String::as_str), Some("z1"));
    assert_eq!(listed[1].weight, 5);
    assert!(listed[0].registered_at > 0, "registered_at is set");
    assert_eq!(d.services().await.expect("services"), ["api"]);

    phase(TEST, started, "the node is ephemeral JSON a person can read");
    let (data, stat) = zk.get(a.path()).await.expect("get").expect("node exists");
    assert_ne!(stat.ephemeral_owner, 0, "ephemeral");
    let json: serde_json::Value = serde_json::from_slice(&data).expect("JSON record");
    assert_eq!(json["address"], "127.0.0.1");
    assert_eq!(json["port"], 8001);

    phase(TEST, started, "update in place: same node, new record");
    a.update(|i| {
        i.weight = 42;
        i.enabled = false;
        i.id = "renamed".into(); // ignored: the id is the node's name
    })
    .await
    .expect("update");
    let (_, stat2) = zk.get(a.path()).await.expect("get").expect("node still exists");
    assert_eq!(stat2.czxid, stat.czxid, "updated in place, not re-created");
    let listed = d.instances("api").await.expect("list");
    assert_eq!((listed[0].id.as_str(), listed[0].weight, listed[0].enabled), ("a", 42, false));
    assert_eq!(listed[0].registered_at, a.instance().registered_at);

    phase(TEST, started, "bad input is refused");
    let err = d.register(instance("api", "bad id", 1)).await.unwrap_err();
    assert!(err.to_string().contains("instance id"), "{err}");
    let err = a.update(|i| i.port = 0).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::InvalidInstance(_)), "{err}");
    assert!(d.instances("no/such").await.is_err());

    phase(TEST, started, "one id cannot be claimed by two live sessions");
    let other = discovery(root, Duration::from_secs(4)).await;
    let err = other.register(instance("api", "b", 9999)).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::IdTaken { .. }), "{err}");

    phase(TEST, started, "deregister deletes at once; dropping deletes in the background");
    a.deregister().await.expect("deregister");
    assert_eq!(ids(&d.instances("api").await.expect("list")), ["b"]);
    drop(b);
    wait_until("the dropped registration's node is gone", || async {
        d.instances("api").await.expect("list").is_empty().then_some(())
    })
    .await;
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_vanishes_when_its_process_dies() {
    const TEST: &str = "vanishes_on_death";
    let started = Instant::now();
    let root = "/t-runtime-dropped";
    let session_timeout = Duration::from_secs(2);
    let d = discovery(root, Duration::from_secs(4)).await;

    phase(TEST, started, "register from a runtime of its own (the 'process')");
    let process = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let registration = rt.block_on(async move {
            let d = discovery(root, session_timeout).await;
            d.register(instance("worker", "w-1", 7001)).await.expect("register")
        });
        // Tearing the runtime down drops every task (the supervisor, the session loop)
        // without running any of them again: no delete, no CloseSession, like `kill -9`.
        std::mem::forget(registration);
        drop(rt);
    });
    process.join().expect("the 'process' thread");
    let died = Instant::now();
    assert_eq!(ids(&d.instances("worker").await.expect("list")), ["w-1"], "still there right after death");

    phase(TEST, started, "the instance vanishes within the session timeout");
    let (_, took) = wait_until("the dead process's instance is gone", || async {
        d.instances("worker").await.expect("list").is_empty().then_some(())
    })
    .await;
    let since_death = died.elapsed();
    eprintln!("[{TEST}]   gone {since_death:?} after the death (polled {took:?})");
    assert!(since_death < session_timeout * 3, "gone after {since_death:?}, session timeout {session_timeout:?}");
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_comes_back_after_session_expiry() {
    const TEST: &str = "back_after_expiry";
    let started = Instant::now();
    let root = "/t-expiry";
    let partition = Partition::start(shared_zk().connect_string()).await;
    let mut options = ZkOptions::new(partition.addr.clone());
    options.session_timeout = Duration::from_secs(2);
    let d = Discovery::connect(options, DiscoveryOptions { root: root.to_string() }).await.expect("connect via proxy");
    let zk = observer().await;
    let cache = d.cache("api").expect("cache");
    let registration = d.register(instance("api", "a", 8001)).await.expect("register");
    let path = registration.path().to_string();
    let (_, first) = zk.get(&path).await.expect("get").expect("registered");
    // The cache may have become ready (its first read) before the registration's node
    // existed: wait for the event that brings the instance, not just for readiness.
    cache.ready().await;
    wait_until("the cache lists the registered instance", || async {
        (ids(&cache.instances()) == ["a"]).then_some(())
    })
    .await;
    let mut states = registration.watch_state();

    phase(TEST, started, "partition the client from ZooKeeper until its session expires");
    partition.set_cut(true);
    let (_, took) = wait_until("ZooKeeper expired the session (the node is gone)", || async {
        zk.get(&path).await.expect("get").is_none().then_some(())
    })
    .await;
    eprintln!("[{TEST}]   expired {took:?} after the cut");
    tokio::time::timeout(WAIT, states.wait_for(|s| !matches!(s, RegistrationState::Registered { .. })))
        .await
        .expect("the registration noticed the partition")
        .expect("state channel open");
    assert!(!cache.view().connected, "the cache knows it is disconnected");
    assert_eq!(ids(&cache.instances()), ["a"], "the cache serves the last instances it saw");

    phase(TEST, started, "heal the partition");
    partition.set_cut(false);
    phase(TEST, started, "the registration comes back in a new session");
    let (stat, took) = wait_until("the node is owned by a new session", || {
        let zk = zk.clone();
        let path = path.clone();
        async move {
            let (_, stat) = zk.get(&path).await.expect("get")?;
            (stat.ephemeral_owner != first.ephemeral_owner).then_some(stat)
        }
    })
    .await;
    eprintln!("[{TEST}]   re-registered after {took:?}");
    assert_eq!(stat.ephemeral_owner, d.keeper().zk().client().session_id().0, "owned by the keeper's new session");
    let state = tokio::time::timeout(
        WAIT,
        states.wait_for(|s| matches!(s, RegistrationState::Registered { generation: 1, .. })),
    )
    .await
    .expect("state reports the new session")
    .expect("state channel open")
    .clone();
    eprintln!("[{TEST}]   state: {state:?}");

    phase(TEST, started, "the cache follows into the new session");
    wait_until("the cache lists the instance again and is connected", || async {
        let view = cache.view();
        (view.connected && ids(&view.instances) == ["a"]).then_some(())
    })
    .await;
    // Updates keep working in the new session.
    registration.update(|i| i.weight = 7).await.expect("update after expiry");
    wait_until("the cache sees the update", || async { (cache.instances()[0].weight == 7).then_some(()) }).await;
    phase(TEST, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_follows_adds_updates_removes() {
    const TEST: &str = "cache_follows";
    let started = Instant::now();
    let root = "/t-cache";
    let reader = discovery(root, Duration::from_secs(4)).await;
    let writer = discovery(root, Duration::from_secs(4)).await;
    // The deadline for a change to reach the cache (a watch event and one read: milliseconds).
    let deadline = Duration::from_secs(2);

    phase(TEST, started, "an empty service is ready and empty");
    let cache = reader.cache("orders").expect("cache");
    tokio::time::timeout(WAIT, cache.ready()).await.expect("ready");
    assert!(cache.instances().is_empty());
    let mut changes = cache.changes();

    phase(TEST, started, "adds");
    let one = writer.register(instance("orders", "o-1", 9001)).await.expect("register o-1");
    let two = writer.register(instance("orders", "o-2", 9002)).await.expect("register o-2");
    let (_, took) =
        wait_until("cache has o-1 and o-2", || async { (ids(&cache.instances()) == ["o-1", "o-2"]).then_some(()) })
            .await;
    eprintln!("[{TEST}]   adds seen after {took:?}");
    assert!(took < deadline, "{took:?}");
    assert!(changes.has_changed().expect("cache alive"), "changes() reported the adds");
    changes.mark_unchanged();

    phase(TEST, started, "update");
    one.update(|i| {
        i.weight = 1;
        i.metadata.insert("version".into(), "2".into());
    })
    .await
    .expect("update");
    let (_, took) = wait_until("cache has the update", || async {
        let all = cache.instances();
        (all[0].weight == 1 && all[0].metadata.get("version").map(String::as_str) == Some("2")).then_some(())
    })
    .await;
    eprintln!("[{TEST}]   update seen after {took:?}");
    assert!(took < deadline, "{took:?}");
    assert!(changes.has_changed().expect("cache alive"));

    phase(TEST, started, "remove");
    two.deregister().await.expect("deregister");
    let (_, took) = wait_until("cache lost o-2", || async { (ids(&cache.instances()) == ["o-1"]).then_some(()) }).await;
    eprintln!("[{TEST}]   remove seen after {took:?}");
    assert!(took < deadline, "{took:?}");

    phase(TEST, started, "a record that is not an instance is ignored, not fatal");
    let zk = observer().await;
    let ephemeral = zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
    zk.create(&format!("{root}/services/orders/junk"), b"not json", &ephemeral).await.expect("create junk");
    let three = writer.register(instance("orders", "o-3", 9003)).await.expect("register o-3");
    wait_until("cache has o-1 and o-3, not the junk", || async {
        (ids(&cache.instances()) == ["o-1", "o-3"]).then_some(())
    })
    .await;
    drop(three);
    drop(one);
    phase(TEST, started, "done");
}

/// A short cut of the TCP connection, well under the session timeout: the client reconnects in
/// the same session. zookeeper-client 0.11.2 does not re-register persistent watches then, so
/// the cache and the mirror must add theirs again, or they stop seeing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_and_mirror_follow_after_reconnect_in_session() {
    const TEST: &str = "reconnect_in_session";
    let started = Instant::now();
    let root = "/t-reconnect";
    let session_timeout = Duration::from_secs(4);
    // The deadline for a change to reach the cache and the mirror (a watch event and a read).
    let deadline = Duration::from_secs(3);
    let redis_server = RedisServer::start().unwrap_or_else(|e| panic!("redis-server did not start: {e}"));
    let redis_client = redis::Client::open(redis_server.url()).expect("redis url");
    let conn = redis_client.get_connection_manager().await.expect("redis connection");
    let partition = Partition::start(shared_zk().connect_string()).await;
    let mut options = ZkOptions::new(partition.addr.clone());
    options.session_timeout = session_timeout;
    // One session each: watch events are dispatched per client, so a cache's watch on
    // `services/api` would also feed a mirror's watch on `services` in the same session.
    let d = Discovery::connect(options.clone(), DiscoveryOptions { root: root.to_string() })
        .await
        .expect("connect via proxy");
    let dm = Discovery::connect(options, DiscoveryOptions { root: root.to_string() }).await.expect("connect via proxy");
    // Writes and looks from outside, straight to ZooKeeper.
    let writer = discovery(root, session_timeout).await;
    let zk = observer().await;

    phase(TEST, started, "the cache and the mirror follow the service");
    let cache = d.cache("api").expect("cache");
    tokio::time::timeout(WAIT, cache.ready()).await.expect("cache ready");
    // No periodic resync within the test: only watch events (and the resync after the
    // reconnect, which comes before the change below) can bring a change to Redis.
    let mirror = dm.mirror(conn.clone(), MirrorOptions { resync_interval: Duration::from_secs(3600) });
    let mut status = mirror.status();
    let mirror_task = tokio::spawn(mirror.run());
    tokio::time::timeout(WAIT, status.wait_for(|s| s.full_resyncs >= 1)).await.expect("first resync").expect("status");
    let _a = writer.register(instance("api", "a", 8001)).await.expect("register a");
    wait_until("the cache has a", || async { (ids(&cache.instances()) == ["a"]).then_some(()) }).await;
    wait_until("Redis has a", || async { mirrored(&zk, &conn, root, "api").await.filter(|h| h.len() == 1) }).await;
    let sessions = || (d.keeper().zk().client().session_id(), dm.keeper().zk().client().session_id());
    let before = sessions();
    let resyncs = status.borrow().full_resyncs;

    phase(TEST, started, "cut the connection briefly, well under the session timeout");
    partition.set_cut(true);
    wait_until("the cache noticed the disconnection", || async { (!cache.view().connected).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    partition.set_cut(false);
    let (_, took) = wait_until("the cache is connected again", || async { cache.view().connected.then_some(()) }).await;
    eprintln!("[{TEST}]   cache reconnected {took:?} after the heal");
    tokio::time::timeout(WAIT, status.wait_for(|s| s.full_resyncs > resyncs && s.in_sync))
        .await
        .expect("the mirror resynced after the reconnect")
        .expect("status");
    assert_eq!(sessions(), before, "reconnected within the same sessions");

    phase(TEST, started, "changes after the reconnect still reach the cache and the mirror");
    let b = writer.register(instance("api", "b", 8002)).await.expect("register b");
    let (_, took) =
        wait_until("the cache has a and b", || async { (ids(&cache.instances()) == ["a", "b"]).then_some(()) }).await;
    eprintln!("[{TEST}]   add seen by the cache after {took:?}");
    assert!(took < deadline, "{took:?}");
    let (_, took) =
        wait_until("Redis has a and b", || async { mirrored(&zk, &conn, root, "api").await.filter(|h| h.len() == 2) })
            .await;
    eprintln!("[{TEST}]   add mirrored after {took:?}");
    assert!(took < deadline, "{took:?}");
    b.deregister().await.expect("deregister b");
    wait_until("the cache lost b", || async { (ids(&cache.instances()) == ["a"]).then_some(()) }).await;
    wait_until("Redis lost b", || async { mirrored(&zk, &conn, root, "api").await.filter(|h| h.len() == 1) }).await;
    assert_eq!(sessions(), before, "still the same sessions");
    mirror_task.abort();
    phase(TEST, started, "done");
}

/// The mirror's hash of `service` as field → value.
/// `None` while Redis does not answer (the restart phase).
async fn redis_hash(conn: &mut redis::aio::ConnectionManager, service: &str) -> Option<BTreeMap<String, String>> {
    redis::cmd("HGETALL").arg(format!("zedis:services:{service}")).query_async(conn).await.ok()
}

/// ZooKeeper's records of `service` as id → exact bytes.
async fn zk_records(zk: &Zk, root: &str, service: &str) -> BTreeMap<String, String> {
    let dir = format!("{root}/services/{service}");
    let mut out = BTreeMap::new();
    for id in zk.children(&dir).await.expect("children") {
        if let Some((data, _)) = zk.get(&format!("{dir}/{id}")).await.expect("get") {
            out.insert(id, String::from_utf8(data).expect("utf-8"));
        }
    }
    out
}

/// `Some(hash)` when the mirror's hash of `service` equals ZooKeeper's records.
async fn mirrored(
    zk: &Zk,
    conn: &redis::aio::ConnectionManager,
    root: &str,
    service: &str,
) -> Option<BTreeMap<String, String>> {
    let want = zk_records(zk, root, service).await;
    let got = redis_hash(&mut conn.clone(), service).await?;
    (want == got).then_some(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mirror_follows_zookeeper() {
    const TEST: &str = "redis_mirror";
    let started = Instant::now();
    let root = "/t-mirror";
    let mut redis_server = RedisServer::start().unwrap_or_else(|e| panic!("redis-server did not start: {e}"));
    let client = redis::Client::open(redis_server.url()).expect("redis url");
    let mut conn = client.get_connection_manager().await.expect("redis connection");
    let zk = observer().await;

    phase(TEST, started, "a stale hash of a service that is not in ZooKeeper, and one instance before the start");
    redis::cmd("HSET").arg("zedis:services:ghost").arg("x").arg("{}").query_async::<()>(&mut conn).await.expect("HSET");
    redis::cmd("SET").arg("zedis:services:billing").arg("a string").query_async::<()>(&mut conn).await.expect("SET");
    let d = discovery(root, Duration::from_secs(4)).await;
    let _early = d.register(instance("api", "a", 8001)).await.expect("register a");

    phase(TEST, started, "subscribe to the api channel");
    let (note_tx, notes) = mpsc::channel::<String>();
    let sub_client = client.clone();
    let (sub_ready_tx, sub_ready) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sub = sub_client.get_connection().expect("subscriber connection");
        sub.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe("zedis:services:api").expect("SUBSCRIBE");
        let _ = sub_ready_tx.send(());
        loop {
            match pubsub.get_message() {
                Ok(msg) => {
                    if note_tx.send(msg.get_payload::<String>().unwrap_or_default()).is_err() {
                        return;
                    }
                }
                Err(e) if e.is_timeout() => {
                    // The test ended when nobody reads any more.
                    if note_tx.send(String::new()).is_err() {
                        return;
                    }
                }
                // The server went away (the restart phase): the notifications checked came before.
                Err(_) => return,
            }
        }
    });
    sub_ready.recv_timeout(WAIT).expect("subscribed");

    phase(TEST, started, "start the mirror");
    let mirror = d.mirror(conn.clone(), MirrorOptions { resync_interval: Duration::from_secs(1) });
    let mut status = mirror.status();
    let mirror_task = tokio::spawn(mirror.run());
    tokio::time::timeout(WAIT, status.wait_for(|s| s.full_resyncs >= 1)).await.expect("first resync").expect("status");
    assert_eq!(redis_hash(&mut conn, "ghost").await, Some(BTreeMap::new()), "the ghost's hash is deleted at start");
    let (hash, _) = wait_until("Redis has the early instance", || mirrored(&zk, &conn, root, "api")).await;
    assert_eq!(hash.keys().collect::<Vec<_>>(), ["a"]);

    phase(TEST, started, "adds, an update and a remove are mirrored exactly, with notifications");
    let b = d.register(instance("api", "b", 8002)).await.expect("register b");
    let c = d.register(instance("api", "c", 8003)).await.expect("register c");
    let _other = d.register(instance("billing", "x", 8100)).await.expect("register billing");
    let (hash, took) = wait_until("Redis has a, b and c", || mirrored(&zk, &conn, root, "api")).await;
    eprintln!("[{TEST}]   adds mirrored after {took:?}");
    assert_eq!(hash.len(), 3);
    wait_until("billing is mirrored too", || mirrored(&zk, &conn, root, "billing")).await;
    b.update(|i| i.weight = 3).await.expect("update b");
    c.deregister().await.expect("deregister c");
    let (hash, _) = wait_until("Redis has a and the updated b", || mirrored(&zk, &conn, root, "api")).await;
    assert_eq!(hash.keys().collect::<Vec<_>>(), ["a", "b"]);
    let b_record: serde_json::Value = serde_json::from_str(&hash["b"]).expect("JSON value");
    assert_eq!(b_record["weight"], 3);
    let mut seen = Vec::new();
    let (_, _) = wait_until("a notification that c was removed", || {
        while let Ok(n) = notes.try_recv() {
            if !n.is_empty() {
                seen.push(serde_json::from_str::<serde_json::Value>(&n).expect("notification is JSON"));
            }
        }
        let found = seen.iter().any(|n| n["removed"] == serde_json::json!(["c"]) && n["service"] == "api");
        std::future::ready(found.then_some(()))
    })
    .await;
    assert!(seen.iter().any(|n| n["added"].as_array().is_some_and(|a| a.contains(&"b".into()))), "{seen:?}");
    assert!(seen.iter().any(|n| n["updated"] == serde_json::json!(["b"])), "{seen:?}");

    phase(TEST, started, "FLUSHALL behind the mirror's back: the periodic resync restores it");
    redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await.expect("FLUSHALL");
    let (_, took) = wait_until("Redis is restored after FLUSHALL", || async {
        mirrored(&zk, &conn, root, "api").await.filter(|hash| !hash.is_empty())
    })
    .await;
    eprintln!("[{TEST}]   restored {took:?} after the flush");

    phase(TEST, started, "Redis restarts empty: the mirror resyncs after reconnecting");
    redis_server.kill9();
    redis_server.restart().expect("redis restarts");
    wait_until("Redis is restored after the restart", || async {
        mirrored(&zk, &conn, root, "billing").await.filter(|hash| !hash.is_empty())
    })
    .await;
    wait_until("api too", || mirrored(&zk, &conn, root, "api")).await;

    phase(TEST, started, "every instance gone: the hash is gone");
    drop(b);
    drop(_early);
    wait_until("the api hash is deleted", || {
        let mut conn = conn.clone();
        async move {
            let exists: bool = redis::cmd("EXISTS").arg("zedis:services:api").query_async(&mut conn).await.ok()?;
            (!exists).then_some(())
        }
    })
    .await;
    mirror_task.abort();
    phase(TEST, started, "done");
}
