//! The Redis lease lock against a real redis-server: mutual exclusion, compare-and-delete
//! release, the watchdog, the loss signal, and cancellation of an acquisition in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;
use zedis_recipes::lease_lock::{LeaseGuard, LeaseLockOptions, RedisLeaseLock};
use zedis_recipes::Hold;
use zedis_testkit::RedisServer;

async fn connect(server: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(server.url()).expect("redis url");
    ConnectionManager::new(client).await.expect("connect to redis")
}

fn opts(lease_ms: u64) -> LeaseLockOptions {
    LeaseLockOptions {
        lease: Duration::from_millis(lease_ms),
        retry_interval: Duration::from_millis(5),
        ..LeaseLockOptions::default()
    }
}

async fn get(conn: &mut ConnectionManager, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(conn).await.expect("GET")
}

/// Polls `check` every 10 ms until it holds or `within` passed; panics with `what` then.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contenders_never_overlap() {
    const TASKS: usize = 8;
    const CYCLES: usize = 25;
    let server = RedisServer::start().expect("start redis");
    eprintln!("phase: {TASKS} tasks x {CYCLES} cycles on one lock, each with its own connection");
    let inside = Arc::new(AtomicUsize::new(0));
    let intervals = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let conn = connect(&server).await;
        let inside = Arc::clone(&inside);
        let intervals = Arc::clone(&intervals);
        tasks.push(tokio::spawn(async move {
            let lock = RedisLeaseLock::new(conn.clone(), "contended", opts(5_000)).expect("lock");
            let mut data = conn;
            for cycle in 0..CYCLES {
                let mut guard =
                    lock.try_lock(Duration::from_secs(30)).await.expect("try_lock").expect("acquired within 30 s");
                let start = Instant::now();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "task {task} cycle {cycle}: someone else inside");
                // A read-modify-write that loses updates if two critical sections interleave.
                let n: i64 = redis::cmd("GET")
                    .arg("{contended}:counter")
                    .query_async::<Option<i64>>(&mut data)
                    .await
                    .expect("GET")
                    .unwrap_or(0);
                tokio::task::yield_now().await;
                let _: () =
                    redis::cmd("SET").arg("{contended}:counter").arg(n + 1).query_async(&mut data).await.expect("SET");
                assert!(guard.is_held(), "lease lost in the middle of a short critical section");
                inside.fetch_sub(1, Ordering::SeqCst);
                let end = Instant::now();
                intervals.lock().unwrap().push((start, end, task));
                assert!(guard.release().await.expect("release"), "our value was still there");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task panicked");
    }
    eprintln!("phase: check the recorded critical sections");
    let mut intervals = intervals.lock().unwrap().clone();
    assert_eq!(intervals.len(), TASKS * CYCLES);
    intervals.sort_by_key(|(start, _, _)| *start);
    for pair in intervals.windows(2) {
        let (_, prev_end, prev_task) = pair[0];
        let (next_start, _, next_task) = pair[1];
        assert!(next_start >= prev_end, "task {next_task} entered before task {prev_task} left");
    }
    let mut conn = connect(&server).await;
    assert_eq!(get(&mut conn, "{contended}:counter").await.as_deref(), Some("200"), "lost updates");
    assert_eq!(get(&mut conn, "zedis:lease:{contended}").await, None, "the lock is free at the end");
}

#[tokio::test]
async fn release_only_deletes_our_own_value() {
    let server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    eprintln!("phase: A takes a 300 ms lease without a watchdog");
    let plain = LeaseLockOptions { watchdog: false, ..opts(300) };
    let a_lock = RedisLeaseLock::new(conn.clone(), "shared", plain).expect("lock");
    let mut a = a_lock.try_acquire().await.expect("acquire").expect("free lock");
    let mut a_loss = a.loss();
    eprintln!("phase: B waits until A's lease runs out, then takes the lock");
    let b_lock = RedisLeaseLock::new(conn.clone(), "shared", opts(10_000)).expect("lock");
    let mut b = b_lock.try_lock(Duration::from_secs(5)).await.expect("try_lock").expect("B acquires after A's lease");
    tokio::time::timeout(Duration::from_secs(1), a_loss.lost()).await.expect("A learns its lease ended");
    assert_eq!(a.hold(), Hold::Lost);
    eprintln!("phase: A's late release must not delete B's lease");
    assert!(!a.release().await.expect("release A"), "A's value was gone");
    assert!(!a.release().await.expect("release A again"), "release is idempotent");
    let mut check = conn.clone();
    assert_eq!(get(&mut check, b.key()).await.as_deref(), Some(b.value()));
    assert!(b.is_held());
    eprintln!("phase: B releases");
    assert!(b.release().await.expect("release B"));
    assert_eq!(b.hold(), Hold::Lost, "lost after release");
    assert_eq!(get(&mut check, b.key()).await, None);
}

#[tokio::test]
async fn watchdog_keeps_the_lease_for_several_leases() {
    let server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    let lock = RedisLeaseLock::new(conn.clone(), "long", opts(600)).expect("lock");
    let guard = lock.try_acquire().await.expect("acquire").expect("free lock");
    let first_end = guard.valid_until();
    eprintln!("phase: hold for three leases (1.8 s) and watch the signal");
    let until = Instant::now() + Duration::from_millis(1_800);
    while Instant::now() < until {
        assert_eq!(guard.hold(), Hold::Held, "the watchdog let the lease go");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut check = conn.clone();
    assert_eq!(get(&mut check, guard.key()).await.as_deref(), Some(guard.value()), "the key still holds our value");
    let pttl: i64 = redis::cmd("PTTL").arg(guard.key()).query_async(&mut check).await.expect("PTTL");
    assert!(pttl > 0 && pttl <= 600, "the lease is still timed: PTTL {pttl}");
    assert!(guard.valid_until() > first_end, "the lease end moved on with the renewals");
    eprintln!("phase: the lock is still taken for another contender");
    let other = RedisLeaseLock::new(conn.clone(), "long", opts(600)).expect("lock");
    let started = Instant::now();
    assert!(other.try_lock(Duration::from_millis(200)).await.expect("try_lock").is_none());
    assert!(started.elapsed() >= Duration::from_millis(200), "try_lock waited its timeout");
    eprintln!("phase: dropping the guard releases the lease in the background");
    let key = guard.key().to_owned();
    let mut loss = guard.loss();
    drop(guard);
    assert_eq!(loss.may_be_lost().await, Hold::Lost, "lost once dropped");
    eventually(Duration::from_secs(2), "the dropped lease is deleted", || {
        let mut check = check.clone();
        let key = key.clone();
        async move { get(&mut check, &key).await.is_none() }
    })
    .await;
}

#[tokio::test]
async fn a_lease_taken_away_is_lost_promptly() {
    let server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    let lock = RedisLeaseLock::new(conn.clone(), "stolen", opts(600)).expect("lock");
    let mut other = conn.clone();
    // (what another client does to our key, the command)
    let cases: &[(&str, &[&str])] =
        &[("overwrite", &["SET", "zedis:lease:{stolen}", "intruder"]), ("delete", &["DEL", "zedis:lease:{stolen}"])];
    for (what, command) in cases {
        eprintln!("phase: {what} the key from another connection");
        let guard = lock.try_acquire().await.expect("acquire").expect("free lock");
        let mut loss = guard.loss();
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd.query_async(&mut other).await.expect("tamper");
        let since = Instant::now();
        // The next renewal (at most a third of the lease away) finds the value changed.
        tokio::time::timeout(Duration::from_millis(600), loss.lost()).await.expect("lost before the lease would end");
        eprintln!("  lost after {:?}", since.elapsed());
        assert_eq!(guard.hold(), Hold::Lost);
        drop(guard);
        let _: () = redis::cmd("DEL").arg("zedis:lease:{stolen}").query_async(&mut other).await.expect("DEL");
    }
}

#[tokio::test]
async fn a_dead_server_makes_the_lease_maybe_lost_then_lost_at_its_end() {
    let mut server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    let lock = RedisLeaseLock::new(conn, "fragile", opts(1_500)).expect("lock");
    let mut guard: LeaseGuard = lock.try_acquire().await.expect("acquire").expect("free lock");
    let mut loss = guard.loss();
    eprintln!("phase: kill -9 the server");
    server.kill9();
    let hold =
        tokio::time::timeout(Duration::from_millis(1_500), loss.may_be_lost()).await.expect("a signal within a lease");
    assert_eq!(hold, Hold::MayBeLost, "a failed renewal before the lease end means 'may be lost'");
    let end = guard.valid_until();
    assert!(Instant::now() < end, "MayBeLost came before the lease end");
    eprintln!("phase: wait for the lease end");
    tokio::time::timeout(Duration::from_millis(2_000), loss.lost()).await.expect("lost after the lease end");
    assert!(Instant::now() >= end, "not lost before the lease end by our clock");
    assert_eq!(guard.hold(), Hold::Lost);
    eprintln!("phase: release fails with a transient error, quickly");
    let started = Instant::now();
    let err = guard.release().await.expect_err("the server is dead");
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "release is bounded by op_timeout");
}

#[tokio::test]
async fn a_cancelled_acquisition_leaves_no_lease_behind() {
    let server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    let lock = RedisLeaseLock::new(conn.clone(), "cancelled", opts(30_000)).expect("lock");
    let mut check = conn.clone();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut check).await.expect("RESETSTAT");
    eprintln!("phase: freeze the server, start an acquisition and drop it while its SET is in flight");
    server.sigstop();
    let attempt = tokio::time::timeout(Duration::from_millis(100), lock.try_lock(Duration::from_secs(10))).await;
    assert!(attempt.is_err(), "the acquisition cannot finish while the server is frozen");
    server.sigcont();
    eprintln!("phase: the SET lands, then the release spawned by the drop deletes it");
    eventually(Duration::from_secs(5), "the SET ran and the key is gone again", || {
        let mut check = check.clone();
        async move {
            let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut check).await.expect("INFO");
            let set_ran = stats.lines().any(|l| l.starts_with("cmdstat_set:"));
            set_ran && get(&mut check, "zedis:lease:{cancelled}").await.is_none()
        }
    })
    .await;
    eprintln!("phase: the lock is free at once, not after 30 s");
    assert!(lock.try_acquire().await.expect("acquire").is_some());
}
