//! `zedis_cache` against a real `redis-server`: hits and misses, TTL jitter, negative
//! caching, invalidation (also of a load in progress), a stampede with and without
//! protection, 200 callers over 4 processes loading a cold key once, XFetch refreshing before
//! expiry, the near cache following other writers and being cleared when its subscription
//! drops, and falling back to the loader with Redis down.
//!
//! Each test starts its own server. The decisions themselves are table-tested in
//! `src/decision.rs`; here they meet real connections and timing.

use std::future::Future;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::Notify;
use zedis_cache::{Cache, CacheError, CacheOptions, NearCacheOptions};
use zedis_testkit::{spawn_supervised, RedisServer};

/// Longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

/// Set in the children of [`four_processes_load_a_cold_key_once`]: the Redis URL.
const CHILD_URL: &str = "ZEDIS_CACHE_TEST_CHILD_URL";
/// The child's name (for its log lines and result line).
const CHILD_NAME: &str = "ZEDIS_CACHE_TEST_CHILD_NAME";
const CHILDREN: usize = 4;
const TASKS_PER_CHILD: usize = 50;
/// Keys the parent and the children share.
const STAMPEDE_KEY: &str = "cold:stampede";
const LOADS_COUNTER: &str = "test:loads";
const READY_COUNTER: &str = "test:ready";
const GO_KEY: &str = "test:go";

fn phase(test: &str, started: Instant, what: &str) {
    eprintln!("[{test} +{:.2}s] phase: {what}", started.elapsed().as_secs_f64());
}

fn start_redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("redis-server did not start: {e}"))
}

async fn connect(url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).expect("valid url");
    ConnectionManager::new(client).await.expect("connects to redis")
}

fn cache(conn: ConnectionManager, options: CacheOptions) -> Cache {
    Cache::new(conn, options).expect("valid options")
}

/// Polls `check` every 10 ms until it returns `Some`, at most `limit`.
async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type LoadResult = Result<Option<String>, std::io::Error>;

/// A loader that counts its calls and returns `value`.
fn counting(calls: &Arc<AtomicUsize>, value: &str) -> impl FnOnce() -> std::future::Ready<LoadResult> {
    let calls = calls.clone();
    let value = value.to_string();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Some(value)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_miss_negative_and_loader_errors() {
    let t = "hit_miss_negative_and_loader_errors";
    let started = Instant::now();
    let server = start_redis();
    let cache = cache(connect(&server.url()).await, CacheOptions::default());
    let ttl = Duration::from_secs(60);
    let calls = Arc::new(AtomicUsize::new(0));

    phase(t, started, "a cold key loads once, then hits");
    let v: Option<String> = cache.get_or_load("user:1", ttl, counting(&calls, "ada")).await.expect("loads");
    assert_eq!(v.as_deref(), Some("ada"));
    for _ in 0..5 {
        let v: Option<String> = cache.get_or_load("user:1", ttl, counting(&calls, "other")).await.expect("hits");
        assert_eq!(v.as_deref(), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.loads, stats.hits), (1, 1, 5), "{stats:?}");
    let entry = cache.peek::<String>("user:1").await.expect("peek").expect("stored");
    assert!(entry.is_fresh() && !entry.is_negative());
    assert!(entry.logical_ttl() <= ttl && entry.logical_ttl() >= ttl.mul_f64(0.9), "{:?}", entry.logical_ttl());

    phase(t, started, "the stored entry is plain JSON under a hash-tagged key, with a longer physical TTL");
    let mut raw = connect(&server.url()).await;
    let json: String = raw.get("zedis:cache:{user:1}").await.expect("raw GET");
    assert!(json.contains(r#""value":"ada""#), "{json}");
    let pttl: i64 = raw.pttl("zedis:cache:{user:1}").await.expect("PTTL");
    assert!(pttl > 60_000, "kept past the logical expiry as a stale copy: {pttl} ms");

    phase(t, started, "a None from the loader is cached as a negative entry");
    let negative_ttl = CacheOptions::default().negative_ttl;
    let none = || async { Ok::<Option<String>, std::io::Error>(None) };
    assert_eq!(cache.get_or_load("user:404", ttl, none).await.expect("loads"), None);
    let v: Option<String> = cache.get_or_load("user:404", ttl, counting(&calls, "found?")).await.expect("hit");
    assert_eq!(v, None, "served the tombstone without loading");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let entry = cache.peek::<String>("user:404").await.expect("peek").expect("stored");
    assert!(entry.is_negative());
    assert!(entry.logical_ttl() <= negative_ttl, "tombstone lives negative_ttl, not ttl");

    phase(t, started, "a loader error is returned and not cached; the lease is released");
    let failing = || async { Err::<Option<String>, _>(std::io::Error::other("db down")) };
    let err = cache.get_or_load("user:2", ttl, failing).await.expect_err("fails");
    assert!(matches!(err, CacheError::Loader(ref e) if e.to_string() == "db down"), "{err}");
    let lock_exists: bool = raw.exists("zedis:cache:{user:2}:lock").await.expect("EXISTS");
    assert!(!lock_exists, "the failed loader released its lease");
    let v: Option<String> = cache.get_or_load("user:2", ttl, counting(&calls, "bob")).await.expect("loads");
    assert_eq!(v.as_deref(), Some("bob"));

    phase(t, started, "callers that shared a failed load get its error, and nothing is cached");
    let gate = Arc::new(Notify::new());
    let leader = {
        let cache = cache.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            cache
                .get_or_load::<String, _, _, _>("user:5", ttl, || async move {
                    gate.notified().await;
                    Err(std::io::Error::other("db timeout"))
                })
                .await
        })
    };
    let coalesced_before = cache.stats().coalesced;
    let follower = {
        let cache = cache.clone();
        let calls = calls.clone();
        tokio::spawn(async move { cache.get_or_load::<String, _, _, _>("user:5", ttl, counting(&calls, "x")).await })
    };
    wait_until("the second caller to join the first", WAIT, || {
        std::future::ready((cache.stats().coalesced > coalesced_before).then_some(()))
    })
    .await;
    gate.notify_one();
    let err = leader.await.expect("task").expect_err("leader fails");
    assert!(matches!(err, CacheError::Loader(_)), "{err}");
    let err = follower.await.expect("task").expect_err("follower fails too");
    assert!(matches!(err, CacheError::SharedLoadFailed { ref message } if message.contains("db timeout")), "{err}");
    assert!(cache.peek::<String>("user:5").await.expect("peek").is_none());

    phase(t, started, "bad keys are refused");
    let err = cache.get_or_load("", ttl, counting(&calls, "x")).await.expect_err("empty key");
    assert!(matches!(err, CacheError::InvalidKey { .. }));
    let err = cache.get_or_load("a{b", ttl, counting(&calls, "x")).await.expect_err("half a tag");
    assert!(matches!(err, CacheError::InvalidKey { .. }));

    phase(t, started, "a key with its own hash tag keeps it; set() writes through");
    cache.set("{user:3}:profile", &"eve".to_string(), ttl).await.expect("set");
    let exists: bool = raw.exists("zedis:cache:{user:3}:profile").await.expect("EXISTS");
    assert!(exists);
    let v: Option<String> = cache.get_or_load("{user:3}:profile", ttl, counting(&calls, "x")).await.expect("hit");
    assert_eq!(v.as_deref(), Some("eve"));
    phase(t, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_jitter_spreads_expiries() {
    let t = "ttl_jitter_spreads_expiries";
    let started = Instant::now();
    let server = start_redis();
    let options = CacheOptions { ttl_jitter: 0.2, ..Default::default() };
    let cache = cache(connect(&server.url()).await, options);
    let ttl = Duration::from_secs(100);
    let calls = Arc::new(AtomicUsize::new(0));

    phase(t, started, "write 200 keys with the same TTL");
    let mut ttls = Vec::new();
    for i in 0..200 {
        let key = format!("jitter:{i}");
        let _: Option<String> = cache.get_or_load(&key, ttl, counting(&calls, "v")).await.expect("loads");
        let entry = cache.peek::<String>(&key).await.expect("peek").expect("stored");
        ttls.push(entry.logical_ttl());
    }
    let min = *ttls.iter().min().expect("some");
    let max = *ttls.iter().max().expect("some");
    phase(t, started, &format!("logical TTLs span {min:?} ..= {max:?}"));
    assert!(min >= Duration::from_secs(80), "jitter only shortens, by at most 20%: {min:?}");
    assert!(max <= ttl, "never longer than asked: {max:?}");
    assert!(max - min >= Duration::from_secs(15), "spread over most of the 20 s window: {:?}", max - min);
    let mut distinct: Vec<u128> = ttls.iter().map(|d| d.as_millis() / 1000).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 15, "expiries fall in many different seconds: {distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_drops_the_entry_and_revokes_a_running_load() {
    let t = "invalidate_drops_the_entry_and_revokes_a_running_load";
    let started = Instant::now();
    let server = start_redis();
    let cache = cache(connect(&server.url()).await, CacheOptions::default());
    let ttl = Duration::from_secs(60);
    let calls = Arc::new(AtomicUsize::new(0));

    phase(t, started, "cache a value, invalidate it, the next read reloads");
    let _: Option<String> = cache.get_or_load("k", ttl, counting(&calls, "v1")).await.expect("loads");
    cache.invalidate("k").await.expect("invalidates");
    assert!(cache.peek::<String>("k").await.expect("peek").is_none());
    let v: Option<String> = cache.get_or_load("k", ttl, counting(&calls, "v2")).await.expect("reloads");
    assert_eq!(v.as_deref(), Some("v2"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    phase(t, started, "an invalidation during a load keeps that load's (older) value out of the cache");
    cache.invalidate("k").await.expect("invalidates");
    let loading = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let slow = {
        let cache = cache.clone();
        let (loading, proceed) = (loading.clone(), proceed.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("k", ttl, || async move {
                    loading.notify_one();
                    proceed.notified().await;
                    Ok::<_, std::io::Error>(Some("read before the change".to_string()))
                })
                .await
        })
    };
    tokio::time::timeout(WAIT, loading.notified()).await.expect("the loader started");
    cache.invalidate("k").await.expect("invalidates while the load runs");
    proceed.notify_one();
    let v = tokio::time::timeout(WAIT, slow).await.expect("load finishes").expect("task").expect("loads");
    assert_eq!(v.as_deref(), Some("read before the change"), "the caller still gets its value");
    assert!(cache.peek::<String>("k").await.expect("peek").is_none(), "but it was not written");
    assert_eq!(cache.stats().lost_leases, 1);
    phase(t, started, "done");
}

type GatedTask = tokio::task::JoinHandle<Result<Option<String>, CacheError<std::io::Error>>>;

/// Starts a load of `key` on `cache` whose loader signals when it runs and then waits for
/// `proceed`; it returns `outcome`.
fn gated_load(cache: &Cache, key: &str, outcome: Result<&str, &str>) -> (Arc<Notify>, Arc<Notify>, GatedTask) {
    let (loading, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let cache = cache.clone();
    let key = key.to_string();
    let outcome = outcome.map(str::to_string).map_err(str::to_string);
    let task = {
        let (loading, proceed) = (loading.clone(), proceed.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, Duration::from_secs(60), || async move {
                    loading.notify_one();
                    proceed.notified().await;
                    outcome.map(Some).map_err(std::io::Error::other)
                })
                .await
        })
    };
    (loading, proceed, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_callers_serve_stale_load_themselves_or_take_over() {
    let t = "waiting_callers_serve_stale_load_themselves_or_take_over";
    let started = Instant::now();
    let server = start_redis();
    // Two caches on separate connections stand for two processes.
    let loader_side = cache(connect(&server.url()).await, CacheOptions { ttl_jitter: 0.0, ..Default::default() });
    let waiter_options = CacheOptions { wait_for_loader: Duration::from_millis(300), ..Default::default() };
    let waiter = cache(connect(&server.url()).await, waiter_options.clone());
    let impatient =
        cache(connect(&server.url()).await, CacheOptions { wait_for_loader: Duration::ZERO, ..waiter_options });
    let calls = Arc::new(AtomicUsize::new(0));

    phase(t, started, "an entry goes stale");
    let _: Option<String> =
        loader_side.get_or_load("s", Duration::from_millis(100), counting(&calls, "old")).await.expect("loads");
    wait_until("the entry to go stale", WAIT, || {
        let c = loader_side.clone();
        async move { c.peek::<String>("s").await.ok().flatten().filter(|e| !e.is_fresh()).map(|_| ()) }
    })
    .await;

    phase(t, started, "one process reloads slowly; the others serve the stale copy (after waiting, or at once)");
    let (loading, proceed, slow) = gated_load(&loader_side, "s", Ok("new"));
    tokio::time::timeout(WAIT, loading.notified()).await.expect("loader runs");
    let waited = Instant::now();
    let v: Option<String> = waiter.get_or_load("s", Duration::from_secs(60), counting(&calls, "x")).await.expect("ok");
    assert_eq!(v.as_deref(), Some("old"));
    assert!(waited.elapsed() >= Duration::from_millis(300), "waited for the loader first");
    let v: Option<String> =
        impatient.get_or_load("s", Duration::from_secs(60), counting(&calls, "x")).await.expect("ok");
    assert_eq!(v.as_deref(), Some("old"));
    assert_eq!((waiter.stats().stale_served, impatient.stats().stale_served), (1, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "neither loaded");
    proceed.notify_one();
    assert_eq!(slow.await.expect("task").expect("loads").as_deref(), Some("new"));
    let v: Option<String> = waiter.get_or_load("s", Duration::from_secs(60), counting(&calls, "x")).await.expect("ok");
    assert_eq!(v.as_deref(), Some("new"));

    phase(t, started, "a missing key whose loader is slow: the waiter loads by itself, without writing");
    let (loading, proceed, slow) = gated_load(&loader_side, "m", Ok("from the lease holder"));
    tokio::time::timeout(WAIT, loading.notified()).await.expect("loader runs");
    let v: Option<String> =
        waiter.get_or_load("m", Duration::from_secs(60), counting(&calls, "loaded by the waiter")).await.expect("ok");
    assert_eq!(v.as_deref(), Some("loaded by the waiter"));
    assert_eq!(waiter.stats().loads_without_lease, 1);
    assert!(waiter.peek::<String>("m").await.expect("peek").is_none(), "only the lease holder writes");
    proceed.notify_one();
    slow.await.expect("task").expect("loads");
    let stored = waiter.peek::<String>("m").await.expect("peek").expect("written");
    assert_eq!(stored.value.as_deref(), Some("from the lease holder"));

    phase(t, started, "the lease holder's load fails: a waiter takes over before its wait is up");
    let patient = cache(
        connect(&server.url()).await,
        CacheOptions { wait_for_loader: Duration::from_secs(10), ..Default::default() },
    );
    let (loading, proceed, failing) = gated_load(&loader_side, "f", Err("db down"));
    tokio::time::timeout(WAIT, loading.notified()).await.expect("loader runs");
    let waiting = {
        let patient = patient.clone();
        let calls = calls.clone();
        tokio::spawn(async move {
            patient.get_or_load::<String, _, _, _>("f", Duration::from_secs(60), counting(&calls, "recovered")).await
        })
    };
    wait_until("the waiter to start waiting", WAIT, || std::future::ready((patient.stats().waits == 1).then_some(())))
        .await;
    let failed_at = Instant::now();
    proceed.notify_one();
    assert!(failing.await.expect("task").is_err());
    let v = tokio::time::timeout(WAIT, waiting).await.expect("in time").expect("task").expect("ok");
    assert_eq!(v.as_deref(), Some("recovered"));
    assert!(
        failed_at.elapsed() < Duration::from_secs(5),
        "took over well before the 10 s wait: {:?}",
        failed_at.elapsed()
    );
    let stats = patient.stats();
    assert_eq!((stats.loads, stats.loads_without_lease), (1, 0), "took the lease and wrote: {stats:?}");
    let stored = patient.peek::<String>("f").await.expect("peek").expect("written");
    assert_eq!(stored.value.as_deref(), Some("recovered"));
    phase(t, started, "done");
}

/// The child half of [`four_processes_load_a_cold_key_once`]; does nothing in a normal run.
#[test]
fn child_stampede() {
    let Ok(url) = std::env::var(CHILD_URL) else { return };
    let name = std::env::var(CHILD_NAME).unwrap_or_else(|_| "child".to_string());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let started = Instant::now();
        phase(&name, started, "connect");
        // Every task of this process hits Redis on its own (no in-process coalescing), so
        // the lease is what keeps 200 callers from loading.
        let options =
            CacheOptions { coalesce_local: false, wait_for_loader: Duration::from_secs(15), ..Default::default() };
        let cache = cache(connect(&url).await, options);
        let mut counter = connect(&url).await;
        let _: i64 = counter.incr(READY_COUNTER, 1).await.expect("INCR ready");
        phase(&name, started, "ready; waiting for go");
        wait_until("the go signal", WAIT, || {
            let mut conn = counter.clone();
            async move { conn.exists::<_, bool>(GO_KEY).await.ok().filter(|&b| b) }
        })
        .await;
        phase(&name, started, &format!("{TASKS_PER_CHILD} concurrent get_or_load"));
        let tasks: Vec<_> = (0..TASKS_PER_CHILD)
            .map(|_| {
                let cache = cache.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    cache
                        .get_or_load(STAMPEDE_KEY, Duration::from_secs(60), || async move {
                            let mut counter = counter;
                            let _: i64 = counter.incr(LOADS_COUNTER, 1).await.map_err(std::io::Error::other)?;
                            // The slow query that makes a stampede hurt.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            Ok::<_, std::io::Error>(Some("expensive".to_string()))
                        })
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            let v = task.await.expect("task").expect("get_or_load");
            assert_eq!(v.as_deref(), Some("expensive"));
            ok += 1;
        }
        let stats = cache.stats();
        phase(&name, started, "done");
        println!(
            "CHILD_RESULT {name} ok={ok} loads={} waits={} hits={} stale={}",
            stats.loads, stats.waits, stats.hits, stats.stale_served
        );
        let _ = counter.incr::<_, _, i64>("test:children_done", 1).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_load_a_cold_key_once() {
    let t = "four_processes_load_a_cold_key_once";
    let started = Instant::now();
    let server = start_redis();
    let mut conn = connect(&server.url()).await;
    let exe = std::env::current_exe().expect("this test binary's path");

    phase(t, started, &format!("spawn {CHILDREN} processes x {TASKS_PER_CHILD} tasks"));
    let mut children = Vec::new();
    for i in 0..CHILDREN {
        let mut command = Command::new(&exe);
        command
            .args(["--exact", "child_stampede", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, server.url())
            .env(CHILD_NAME, format!("child-{i}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        children.push(spawn_supervised(command).expect("child starts"));
    }
    wait_until("all children ready", WAIT, || {
        let mut conn = conn.clone();
        async move { conn.get::<_, Option<usize>>(READY_COUNTER).await.ok().flatten().filter(|&n| n == CHILDREN) }
    })
    .await;

    phase(t, started, "go: 200 concurrent get_or_load of one cold key");
    let _: () = conn.set(GO_KEY, 1).await.expect("SET go");
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut outputs = Vec::new();
    for mut child in children {
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "a child did not finish in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            use std::io::Read;
            stdout.read_to_string(&mut out).expect("child stdout");
        }
        assert!(status.success(), "child failed: {status}; output:\n{out}");
        outputs.push(out);
    }
    for line in outputs.iter().flat_map(|o| o.lines()).filter(|l| l.starts_with("CHILD_RESULT")) {
        phase(t, started, line);
    }
    let results = outputs.iter().flat_map(|o| o.lines()).filter(|l| l.contains(&format!("ok={TASKS_PER_CHILD}")));
    assert_eq!(results.count(), CHILDREN, "every child reports all its tasks served: {outputs:?}");
    let loads: usize = conn.get(LOADS_COUNTER).await.expect("GET loads");
    phase(t, started, &format!("loader calls across all processes: {loads}"));
    assert_eq!(loads, 1, "200 callers over 4 processes, one load");
}

/// Runs `callers` concurrent `get_or_load`s of one cold key with a 100 ms loader; returns how
/// many times the loader ran.
async fn stampede(cache: &Cache, key: &str, callers: usize) -> usize {
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let cache = cache.clone();
            let calls = calls.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, Duration::from_secs(60), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, std::io::Error>(Some(42u64))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("get_or_load"), Some(42));
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_with_and_without_protection() {
    let t = "stampede_with_and_without_protection";
    let started = Instant::now();
    let server = start_redis();
    let conn = connect(&server.url()).await;

    phase(t, started, "200 callers, plain cache-aside");
    let unprotected = cache(conn.clone(), CacheOptions { stampede_protection: false, ..Default::default() });
    let loads_unprotected = stampede(&unprotected, "s:plain", 200).await;
    phase(t, started, &format!("unprotected: {loads_unprotected} loads"));
    assert!(loads_unprotected >= 50, "without protection most callers load: {loads_unprotected}");

    phase(t, started, "200 callers, lease only (no in-process coalescing)");
    let lease_only = cache(conn.clone(), CacheOptions { coalesce_local: false, ..Default::default() });
    let loads_lease = stampede(&lease_only, "s:lease", 200).await;
    phase(t, started, &format!("lease only: {loads_lease} loads; {:?}", lease_only.stats()));
    assert_eq!(loads_lease, 1);

    phase(t, started, "200 callers, lease + coalescing (the default)");
    let default = cache(conn.clone(), CacheOptions::default());
    let loads_default = stampede(&default, "s:default", 200).await;
    let stats = default.stats();
    phase(t, started, &format!("default: {loads_default} loads; {stats:?}"));
    assert_eq!(loads_default, 1);
    assert!(stats.coalesced >= 150, "most callers shared the one trip: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xfetch_recomputes_before_expiry_under_load() {
    let t = "xfetch_recomputes_before_expiry_under_load";
    let started = Instant::now();
    let server = start_redis();
    let options = CacheOptions { ttl_jitter: 0.0, beta: 1.0, ..Default::default() };
    let cache = cache(connect(&server.url()).await, options);
    // XFetch recomputes about `delta * ln(rate * delta)` before expiry, for `rate` reads of Redis
    // per second: with delta = 100 ms and a few thousand reads/s, some 0.5-0.8 s ahead. A TTL
    // of 3 s leaves room for exactly one refresh before the test ends.
    let ttl = Duration::from_secs(3);
    let load_starts: Arc<Mutex<Vec<SystemTime>>> = Arc::default();
    let loader = |starts: Arc<Mutex<Vec<SystemTime>>>| {
        move || async move {
            starts.lock().expect("lock").push(SystemTime::now());
            // The slow query: delta = 100 ms.
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, std::io::Error>(Some(SystemTime::now()))
        }
    };

    phase(t, started, "first load");
    let _: Option<SystemTime> = cache.get_or_load("hot", ttl, loader(load_starts.clone())).await.expect("loads");
    let first = cache.peek::<SystemTime>("hot").await.expect("peek").expect("stored");
    phase(t, started, "20 tasks read the key continuously until past its expiry");
    let until = first.expires_at + Duration::from_millis(300);
    let misses_before = cache.stats().misses;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            let starts = load_starts.clone();
            tokio::spawn(async move {
                let mut reads = 0u64;
                while SystemTime::now() < until {
                    let v = cache.get_or_load("hot", ttl, loader(starts.clone())).await.expect("get_or_load");
                    assert!(v.is_some());
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut reads = 0;
    for task in tasks {
        reads += task.await.expect("task");
    }
    let starts = load_starts.lock().expect("lock").clone();
    let stats = cache.stats();
    phase(t, started, &format!("{reads} reads, {} loads, {stats:?}", starts.len()));
    assert!(starts.len() >= 2, "the value was recomputed");
    let second = starts[1];
    let ahead = first.expires_at.duration_since(second).unwrap_or_default();
    phase(t, started, &format!("recompute started {ahead:?} before expiry"));
    assert!(second < first.expires_at, "XFetch recomputed before the entry expired");
    assert!(stats.early_recomputes >= 1, "{stats:?}");
    assert_eq!(stats.misses, misses_before, "no reader ever found the entry expired: {stats:?}");
    assert!(starts.len() <= 3, "one refresh per expiry, not a herd: {} loads", starts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_follows_other_writers_and_clears_on_reconnect() {
    let t = "near_cache_follows_other_writers_and_clears_on_reconnect";
    let started = Instant::now();
    let mut server = start_redis();
    let client = redis::Client::open(server.url()).expect("url");
    let near_options = NearCacheOptions {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let options = CacheOptions { redis_timeout: Duration::from_millis(500), ..Default::default() };
    let a = Cache::with_near_cache(connect(&server.url()).await, &client, options.clone(), near_options.clone())
        .expect("cache a");
    let b =
        Cache::with_near_cache(connect(&server.url()).await, &client, options.clone(), near_options).expect("cache b");
    let near_a = a.near_cache().expect("a has a near cache");
    let ttl = Duration::from_secs(60);
    let calls = Arc::new(AtomicUsize::new(0));

    phase(t, started, "wait until both near caches are subscribed");
    for cache in [&a, &b] {
        let near = cache.near_cache().expect("near");
        wait_until("near cache live", WAIT, || std::future::ready(near.is_live().then_some(()))).await;
    }

    phase(t, started, "a loads, then serves from memory");
    let v: Option<String> = a.get_or_load("k", ttl, counting(&calls, "v1")).await.expect("loads");
    assert_eq!(v.as_deref(), Some("v1"));
    assert!(near_a.contains("k"));
    let hits_before = near_a.stats().hits;
    let v: Option<String> = a.get_or_load("k", ttl, counting(&calls, "x")).await.expect("hit");
    assert_eq!(v.as_deref(), Some("v1"));
    assert_eq!(near_a.stats().hits, hits_before + 1, "served from memory");

    phase(t, started, "b (another connection) writes; a drops its copy and reads the new value");
    let written = Instant::now();
    b.set("k", &"v2".to_string(), ttl).await.expect("b sets");
    wait_until("a to drop k", Duration::from_secs(2), || std::future::ready((!near_a.contains("k")).then_some(())))
        .await;
    phase(t, started, &format!("a saw b's write after {:?}", written.elapsed()));
    let v: Option<String> = a.get_or_load("k", ttl, counting(&calls, "x")).await.expect("reads");
    assert_eq!(v.as_deref(), Some("v2"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "read from Redis, not loaded");

    phase(t, started, "b invalidates; a drops its copy");
    assert!(near_a.contains("k"));
    b.invalidate("k").await.expect("b invalidates");
    wait_until("a to drop k", Duration::from_secs(2), || std::future::ready((!near_a.contains("k")).then_some(())))
        .await;

    phase(t, started, "any client can drop a key with a bare PUBLISH");
    let _: Option<String> = a.get_or_load("k2", ttl, counting(&calls, "w")).await.expect("loads");
    assert!(near_a.contains("k2"));
    let mut raw = connect(&server.url()).await;
    let _: i64 = raw.publish("zedis:cache:invalidate", "zedis:cache:{k2}").await.expect("PUBLISH");
    wait_until("a to drop k2", Duration::from_secs(2), || std::future::ready((!near_a.contains("k2")).then_some(())))
        .await;

    phase(t, started, "restart redis: the near cache is cleared and stops serving until resubscribed");
    let _: Option<String> = a.get_or_load("k3", ttl, counting(&calls, "z")).await.expect("loads");
    assert!(near_a.contains("k3"));
    let before = near_a.stats();
    server.restart().expect("redis restarts");
    wait_until("a's near cache to be cleared", WAIT, || {
        let stats = near_a.stats();
        std::future::ready((stats.clears > before.clears && stats.subscriptions > before.subscriptions).then_some(()))
    })
    .await;
    let stats = near_a.stats();
    phase(t, started, &format!("after restart: {stats:?}"));
    assert!(stats.clears >= 1);
    assert!(!near_a.contains("k3"), "nothing from before the reconnect survives");

    phase(t, started, "after resubscribing, the cache loads (Redis lost its data) and serves again");
    let v: Option<String> = wait_until("a read after the restart", WAIT, || {
        let a = a.clone();
        let calls = calls.clone();
        async move { a.get_or_load("k3", ttl, counting(&calls, "z2")).await.ok() }
    })
    .await;
    assert!(v.is_some());
    wait_until("k3 back in a's near cache", WAIT, || {
        let a = a.clone();
        let near_a = near_a.clone();
        let calls = calls.clone();
        async move {
            let _ = a.get_or_load::<String, _, _, _>("k3", ttl, counting(&calls, "z3")).await;
            near_a.contains("k3").then_some(())
        }
    })
    .await;
    phase(t, started, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_to_the_loader() {
    let t = "redis_down_falls_back_to_the_loader";
    let started = Instant::now();
    let mut server = start_redis();
    let conn = connect(&server.url()).await;
    let options = CacheOptions { redis_timeout: Duration::from_millis(300), ..Default::default() };
    let lenient = cache(conn.clone(), options.clone());
    let strict = cache(conn, CacheOptions { load_on_redis_error: false, ..options });
    let calls = Arc::new(AtomicUsize::new(0));

    phase(t, started, "kill -9 redis");
    server.kill9();
    let v: Option<String> =
        lenient.get_or_load("k", Duration::from_secs(60), counting(&calls, "from the db")).await.expect("falls back");
    assert_eq!(v.as_deref(), Some("from the db"));
    assert!(lenient.stats().redis_errors >= 1);

    phase(t, started, "with load_on_redis_error off, the failure is returned");
    let err = strict
        .get_or_load::<String, _, _, _>("k", Duration::from_secs(60), counting(&calls, "x"))
        .await
        .expect_err("fails");
    assert!(err.is_redis_failure(), "{err}");
    phase(t, started, "done");
}
