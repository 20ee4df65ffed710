//! Cache benchmark, on a `redis-server` of its own (started through `zedis-testkit`):
//!
//! 1. Hit throughput: N tasks read one hot key for a few seconds each way, side by side —
//!    a raw `GET` of the same bytes (decoded as JSON), `Cache::get_or_load` hitting Redis with
//!    one `GET` per call (no in-process coalescing: the cache's own overhead), the same with
//!    coalescing (concurrent callers of one key share a `GET`), and `Cache::get_or_load`
//!    hitting the near cache. Ops/s, p50 and p99 per call.
//! 2. Stampede: 200 concurrent `get_or_load` of a cold key whose loader takes 100 ms, with
//!    plain cache-aside, with the cross-process lease only, with lease + in-process
//!    coalescing, and as 4 separate caches (4 connections, like 4 processes) × 50 callers.
//!    Loader calls and caller latency.
//!
//! Run: `cargo run --release -p zedis-cache --example bench_cache` (env `BENCH_SECS`, default
//! 3, seconds per throughput run; `BENCH_TASKS`, default 50). Takes about 15 s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use zedis_cache::{Cache, CacheOptions, NearCacheOptions};
use zedis_testkit::RedisServer;

/// A typical small record (about 120 bytes of JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    tags: Vec<String>,
}

fn profile() -> Profile {
    Profile {
        id: 42,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        tags: vec!["admin".into(), "beta".into(), "eu-west".into()],
    }
}

/// The stored entry's shape, for the raw `GET` to decode the same way the cache does.
#[derive(Deserialize)]
#[allow(dead_code)] // read by serde only
struct Stored {
    value: Profile,
    computed_at_ms: u64,
    delta_ms: u64,
    expires_at_ms: u64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Run {
    ops: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

/// Runs `op` in `tasks` tasks for `secs` seconds; each task records every call's latency.
async fn throughput<F, Fut>(tasks: usize, secs: u64, op: F) -> Result<Run, BoxError>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                while Instant::now() < until {
                    let t = Instant::now();
                    op().await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, BoxError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await??);
    }
    Ok(Run { ops: latencies.len() as u64, elapsed: started.elapsed(), latencies })
}

struct Stampede {
    loads: usize,
    wall: Duration,
    p99: Duration,
}

/// `callers` concurrent `get_or_load` of `key`, spread round-robin over `caches`.
async fn stampede(caches: &[Cache], key: &str, callers: usize) -> Result<Stampede, BoxError> {
    let loads = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..callers)
        .map(|i| {
            let cache = caches[i % caches.len()].clone();
            let loads = loads.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                let t = Instant::now();
                let v = cache
                    .get_or_load(&key, Duration::from_secs(60), || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await; // the slow query
                        Ok::<_, std::io::Error>(Some(profile()))
                    })
                    .await?;
                if v.is_none() {
                    return Err::<Duration, BoxError>("a caller got nothing".into());
                }
                Ok(t.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.push(handle.await??);
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let p99 = latencies[((latencies.len() as f64 - 1.0) * 0.99).round() as usize];
    Ok(Stampede { loads: loads.load(Ordering::SeqCst), wall, p99 })
}

async fn connect(url: &str) -> Result<ConnectionManager, BoxError> {
    Ok(ConnectionManager::new(redis::Client::open(url)?).await?)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let secs = env_or("BENCH_SECS", 3);
    let tasks = env_or("BENCH_TASKS", 50) as usize;
    let server = RedisServer::start()?;
    let url = server.url();
    let conn = connect(&url).await?;
    let client = redis::Client::open(url.as_str())?;

    // --- 1. hit throughput -------------------------------------------------------------
    let cache = Cache::new(conn.clone(), CacheOptions::default())?;
    // Every call its own GET, like raw GET: what the cache's own work costs.
    let uncoalesced = Cache::new(conn.clone(), CacheOptions { coalesce_local: false, ..Default::default() })?;
    let near = Cache::with_near_cache(conn.clone(), &client, CacheOptions::default(), NearCacheOptions::default())?;
    let hot_ttl = Duration::from_secs(3600);
    cache.set("hot", &profile(), hot_ttl).await?;
    // The raw GET reads exactly the bytes the cache stores, so both move the same payload.
    let stored: Vec<u8> = redis::cmd("GET").arg("zedis:cache:{hot}").query_async(&mut conn.clone()).await?;
    let _: () = redis::cmd("SET").arg("raw:hot").arg(&stored).query_async(&mut conn.clone()).await?;
    let near_cache = near.near_cache().ok_or("no near cache")?;
    let live_by = Instant::now() + Duration::from_secs(10);
    while !near_cache.is_live() {
        if Instant::now() > live_by {
            return Err("the near cache did not subscribe within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("hit throughput: {tasks} tasks, {secs} s per run, {} byte entry", stored.len());

    let raw_conn = conn.clone();
    let mut raw = throughput(tasks, secs, move || {
        let mut c = raw_conn.clone();
        async move {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg("raw:hot").query_async(&mut c).await?;
            // Decode into the same typed value, as an application would.
            let _: Stored = serde_json::from_slice(&v.ok_or("missing")?)?;
            Ok(())
        }
    })
    .await?;

    let hit = |cache: Cache| {
        move || {
            let cache = cache.clone();
            async move {
                let v: Option<Profile> =
                    cache.get_or_load("hot", hot_ttl, || async { Ok::<_, std::io::Error>(Some(profile())) }).await?;
                v.ok_or("missing")?;
                Ok(())
            }
        }
    };
    let mut via_redis_each = throughput(tasks, secs, hit(uncoalesced.clone())).await?;
    let mut via_redis = throughput(tasks, secs, hit(cache.clone())).await?;
    let mut via_near = throughput(tasks, secs, hit(near.clone())).await?;
    if cache.stats().loads + uncoalesced.stats().loads + near.stats().loads > 0 {
        return Err("a hit benchmark loaded: the key expired or was evicted".into());
    }

    // --- 2. stampede -------------------------------------------------------------------
    eprintln!("stampede: 200 concurrent callers, cold key, loader takes 100 ms");
    let plain = Cache::new(conn.clone(), CacheOptions { stampede_protection: false, ..Default::default() })?;
    let lease_only = Cache::new(conn.clone(), CacheOptions { coalesce_local: false, ..Default::default() })?;
    let default = Cache::new(conn.clone(), CacheOptions::default())?;
    let mut four = Vec::new();
    for _ in 0..4 {
        four.push(Cache::new(connect(&url).await?, CacheOptions::default())?);
    }
    let s_plain = stampede(&[plain], "cold:plain", 200).await?;
    let s_lease = stampede(&[lease_only], "cold:lease", 200).await?;
    let s_default = stampede(&[default], "cold:default", 200).await?;
    let s_four = stampede(&four, "cold:four", 200).await?;

    // --- report ------------------------------------------------------------------------
    let base = raw.ops_per_sec();
    println!();
    println!(
        "| {:<37} |      ops/s | vs raw GET |        p50 |        p99 |",
        format!("hit path ({tasks} tasks, {secs} s)")
    );
    println!("|---------------------------------------|-----------:|-----------:|-----------:|-----------:|");
    for (name, run) in [
        ("raw GET + JSON decode", &mut raw),
        ("get_or_load, Redis hit, GET per call", &mut via_redis_each),
        ("get_or_load, Redis hit, coalesced", &mut via_redis),
        ("get_or_load, near-cache hit", &mut via_near),
    ] {
        let (p50, p99) = (run.percentile(0.5), run.percentile(0.99));
        println!(
            "| {name:<37} | {:>10.0} | {:>9.2}x | {:>10} | {:>10} |",
            run.ops_per_sec(),
            run.ops_per_sec() / base,
            ms(p50),
            ms(p99)
        );
    }
    println!();
    println!("| stampede (200 callers, 100 ms loader)  | loader calls |  wall time | caller p99 |");
    println!("|----------------------------------------|-------------:|-----------:|-----------:|");
    for (name, s) in [
        ("no protection (plain cache-aside)", &s_plain),
        ("lease only (every caller to Redis)", &s_lease),
        ("lease + in-process coalescing", &s_default),
        ("4 caches x 50 (like 4 processes)", &s_four),
    ] {
        println!("| {name:<38} | {:>12} | {:>10} | {:>10} |", s.loads, ms(s.wall), ms(s.p99));
    }
    let near_stats = near_cache.stats();
    println!();
    println!(
        "near cache: {} hits, {} misses, {} entries; redis-hit cache: {:?}",
        near_stats.hits,
        near_stats.misses,
        near_stats.entries,
        cache.stats()
    );
    Ok(())
}
