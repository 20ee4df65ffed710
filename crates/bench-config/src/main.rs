//! `zedis-bench-config`: how long a configuration change takes to reach N watchers and the
//! Redis mirror. It starts its own ZooKeeper and redis-server on free loopback ports, a
//! `ConfigMirror` (its own session) writing to that Redis, and `--watchers` `ConfigWatch`es,
//! each on its own `ConfigClient` and so its own ZooKeeper session, as separate application
//! instances would have. Then it publishes `--changes` values of one key, one at a time: each
//! change is published only after the previous one reached every watcher and the mirror, plus
//! `--gap-ms`.
//!
//! For every change, from the instant just before `publish` is called:
//! - **all watchers**: until the last of the watchers has received that version from `next()`;
//! - **per watcher**: until each watcher received it (one sample per watcher and change);
//! - **mirror**: until the mirror's notification for that version arrives on a Redis
//!   `SUBSCRIBE zedis:config:<ns>` (the hash is written by the same script, before the
//!   notification); the hash is checked with `HGET` at the end.
//!
//! Everything runs in one process on one machine, so the figures include the benchmark's own
//! CPU use (100 sessions and watch tasks). Goal: p99 ≤ 50 ms for "all watchers" and "mirror".

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use zedis_coord::ZkOptions;
use zedis_recipes::config::{
    channel, values_key, ConfigClient, ConfigOptions, MirrorOptions, Notification, PublishOptions,
};
use zedis_testkit::{RedisServer, ZkServer};

const NAMESPACE: &str = "bench";
const KEY: &str = "value";
/// The goal on loopback, for "all watchers" and "mirror".
const GOAL_P99: Duration = Duration::from_millis(50);
/// The whole run (servers excluded) is cut off after this long.
const RUN_LIMIT: Duration = Duration::from_secs(100);

#[derive(Parser, Debug)]
#[command(
    name = "zedis-bench-config",
    about = "Config change → N watchers and the Redis mirror updated: p50/p90/p99/max latency"
)]
struct Args {
    /// Watchers, each with its own ConfigClient (its own ZooKeeper session).
    #[arg(long, default_value_t = 100, value_name = "N")]
    watchers: usize,
    /// Measured changes, published one after the other.
    #[arg(long, default_value_t = 200, value_name = "N")]
    changes: usize,
    /// Changes published first and not measured (warm-up).
    #[arg(long, default_value_t = 10, value_name = "N")]
    warmup: usize,
    /// Pause after a change has fully propagated, before the next one.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    gap_ms: u64,
    /// A change not seen everywhere after this long fails the run.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    timeout_ms: u64,
    /// Print a JSON summary on stdout (the human report then goes to stderr).
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("zedis-bench-config: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if args.watchers == 0 || args.watchers > 1000 {
        bail!("--watchers must be in 1..=1000");
    }
    if args.changes == 0 || args.changes > 10_000 {
        bail!("--changes must be in 1..=10000");
    }
    // Started before the runtime (they block until ready); dropped, and so killed, when `run`
    // returns, on success or error.
    eprintln!("starting ZooKeeper and redis-server ...");
    let zk = ZkServer::start().context("start ZooKeeper")?;
    let redis = RedisServer::start().context("start redis-server")?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")?;
    let outcome = runtime.block_on(async {
        tokio::time::timeout(RUN_LIMIT, bench(&args, &zk, &redis))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the run took longer than {RUN_LIMIT:?}")))
    });
    // Stops the watch tasks, the mirror and the subscriber before the servers go.
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(redis);
    drop(zk);
    let report = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if report["goal_met"].as_bool() == Some(true) {
        Ok(())
    } else {
        // The figures are printed either way; the exit status says whether the goal was met.
        std::process::exit(2)
    }
}

/// A watcher's receipt: (watcher index, version, when).
type Receipt = (usize, u64, Instant);

async fn bench(args: &Args, zk: &ZkServer, redis: &RedisServer) -> Result<serde_json::Value> {
    let say = |line: String| if args.json { eprintln!("{line}") } else { println!("{line}") };
    let hosts = zk.connect_string();
    let options = ConfigOptions { author: "zedis-bench-config".to_string(), ..ConfigOptions::default() };
    let connect = |what: &'static str| {
        let hosts = hosts.clone();
        let options = options.clone();
        async move { ConfigClient::connect(ZkOptions::new(hosts), options).await.with_context(|| format!("connect {what}")) }
    };
    let publisher = connect("the publisher").await?;
    // The namespace exists before anything watches it.
    let mut next_value = 0u64;
    publisher.publish(NAMESPACE, KEY, next_value.to_string(), PublishOptions::default()).await?;

    // The mirror, on its own session, and a subscriber to its channel.
    let redis_client = redis::Client::open(redis.url()).context("redis url")?;
    let mirror_client = connect("the mirror").await?;
    let target = ConnectionManager::new(redis_client.clone()).await.context("connect to redis")?;
    let mirror = mirror_client.mirror(target, MirrorOptions::default());
    let mut stats = mirror.stats();
    tokio::spawn(mirror.run());
    tokio::time::timeout(Duration::from_secs(10), stats.wait_for(|s| s.full_resyncs >= 1))
        .await
        .context("the mirror's first resync takes over 10 s")?
        .context("the mirror stopped")?;
    let (mirror_tx, mut mirror_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut pubsub = redis_client.get_async_pubsub().await.context("subscribe")?;
    pubsub.subscribe(channel(NAMESPACE)).await.context("subscribe")?;
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let at = Instant::now();
            let payload: String = message.get_payload().unwrap_or_default();
            if let Ok(n) = serde_json::from_str::<Notification>(&payload) {
                if n.key == KEY && mirror_tx.send((n.version, at)).is_err() {
                    break;
                }
            }
        }
    });

    // The watchers: all sessions connected concurrently, then every watch ready.
    eprintln!("connecting {} watchers ...", args.watchers);
    let started = Instant::now();
    let mut connecting = JoinSet::new();
    for i in 0..args.watchers {
        let c = connect("a watcher");
        connecting.spawn(async move { (i, c.await) });
    }
    let mut clients: Vec<Option<ConfigClient>> = (0..args.watchers).map(|_| None).collect();
    while let Some(joined) = connecting.join_next().await {
        let (i, client) = joined.context("connect task")?;
        clients[i] = Some(client?);
    }
    let clients: Vec<ConfigClient> = clients.into_iter().flatten().collect();
    let (watch_tx, mut watch_rx) = mpsc::unbounded_channel::<Receipt>();
    let mut ready = JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let mut watch = client.watch(NAMESPACE)?;
        let tx = watch_tx.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            watch.ready().await;
            let _ = ready_tx.send(());
            while let Some(event) = watch.next().await {
                let at = Instant::now();
                if event.key == KEY && tx.send((i, event.version(), at)).is_err() {
                    break;
                }
            }
        });
        ready.spawn(ready_rx);
    }
    drop(watch_tx);
    while let Some(joined) = ready.join_next().await {
        joined.context("ready task")?.context("a watcher stopped before it was ready")?;
    }
    eprintln!("{} watchers ready in {:.2} s", args.watchers, started.elapsed().as_secs_f64());

    // The changes.
    let timeout = Duration::from_millis(args.timeout_ms);
    let gap = Duration::from_millis(args.gap_ms);
    let mut all_watchers = Vec::with_capacity(args.changes);
    let mut per_watcher = Vec::with_capacity(args.changes * args.watchers);
    let mut mirror_lat = Vec::with_capacity(args.changes);
    let mut publish_lat = Vec::with_capacity(args.changes);
    let mut last_value = String::new();
    let run_started = Instant::now();
    for round in 0..args.warmup + args.changes {
        next_value += 1;
        let value = next_value.to_string();
        let t0 = Instant::now();
        let record = publisher.publish(NAMESPACE, KEY, value.clone(), PublishOptions::default()).await?;
        let acked = t0.elapsed();
        let version = record.version;
        let deadline = t0 + timeout;
        let mut seen: Vec<Option<Duration>> = vec![None; args.watchers];
        let mut missing = args.watchers;
        let mut mirrored: Option<Duration> = None;
        while missing > 0 || mirrored.is_none() {
            tokio::select! {
                Some((i, v, at)) = watch_rx.recv(), if missing > 0 => {
                    if v > version {
                        bail!("watcher {i} saw version {v} while waiting for {version}");
                    }
                    if v == version && seen[i].is_none() {
                        seen[i] = Some(at.saturating_duration_since(t0));
                        missing -= 1;
                    }
                }
                Some((v, at)) = mirror_rx.recv(), if mirrored.is_none() => {
                    if v >= version {
                        mirrored = Some(at.saturating_duration_since(t0));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    bail!(
                        "version {version} not propagated after {timeout:?}: {missing} watchers missing, mirror {}",
                        if mirrored.is_some() { "done" } else { "missing" }
                    );
                }
            }
        }
        if round >= args.warmup {
            let seen: Vec<Duration> = seen.into_iter().flatten().collect();
            all_watchers.push(seen.iter().copied().max().unwrap_or_default());
            per_watcher.extend(seen);
            mirror_lat.extend(mirrored);
            publish_lat.push(acked);
        }
        last_value = value;
        tokio::time::sleep(gap).await;
    }
    let run_secs = run_started.elapsed().as_secs_f64();

    // The hash holds the last value.
    let mut conn = ConnectionManager::new(redis_client).await.context("connect to redis")?;
    let hget: Option<String> =
        redis::cmd("HGET").arg(values_key(NAMESPACE)).arg(KEY).query_async(&mut conn).await.context("HGET")?;
    let hash_ok = hget.as_deref() == Some(last_value.as_str());
    let stats_now = stats.borrow().clone();

    let rows = [
        ("publish (ack)", "publish_ack", summarize(&mut publish_lat)),
        ("all watchers", "all_watchers", summarize(&mut all_watchers)),
        ("per watcher", "per_watcher", summarize(&mut per_watcher)),
        ("mirror", "mirror", summarize(&mut mirror_lat)),
    ];
    say(format!(
        "config change → {} watchers (own sessions) and the Redis mirror; {} changes after {} warm-up, \
         one at a time, {} ms apart; {:.1} s; latency from just before publish",
        args.watchers, args.changes, args.warmup, args.gap_ms, run_secs
    ));
    say(format!("{:<16} {:>8} {:>9} {:>9} {:>9} {:>9}", "", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms"));
    for (name, _, s) in &rows {
        say(format!(
            "{:<16} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            s.samples,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        ));
    }
    let watchers_p99 = rows[1].2.p99;
    let mirror_p99 = rows[3].2.p99;
    let goal_met = watchers_p99 <= GOAL_P99 && mirror_p99 <= GOAL_P99 && hash_ok;
    say(format!(
        "HGET {} {KEY} = {:?} ({}); mirror applied {}, refused {}",
        values_key(NAMESPACE),
        hget,
        if hash_ok { "the last value" } else { "NOT the last value" },
        stats_now.applied,
        stats_now.refused
    ));
    say(format!(
        "goal p99 ≤ {} ms (all watchers {:.2} ms, mirror {:.2} ms): {}",
        GOAL_P99.as_millis(),
        ms(watchers_p99),
        ms(mirror_p99),
        if goal_met { "met" } else { "NOT met" }
    ));
    let latency: serde_json::Map<String, serde_json::Value> =
        rows.iter().map(|(_, key, s)| (key.to_string(), s.json())).collect();
    Ok(serde_json::json!({
        "benchmark": "config-propagation",
        "watchers": args.watchers,
        "changes": args.changes,
        "warmup": args.warmup,
        "gap_ms": args.gap_ms,
        "run_secs": run_secs,
        "latency_ms": latency,
        "mirror_hash_has_last_value": hash_ok,
        "goal_p99_ms": GOAL_P99.as_millis() as u64,
        "goal_met": goal_met,
    }))
}

#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    samples: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.samples,
            "p50": ms(self.p50),
            "p90": ms(self.p90),
            "p99": ms(self.p99),
            "max": ms(self.max),
        })
    }
}

/// Nearest-rank percentiles.
fn summarize(samples: &mut [Duration]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| samples[((p / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    Summary {
        samples: samples.len(),
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: samples[samples.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summarize(&mut v);
        let f = Duration::from_millis;
        assert_eq!((s.p50, s.p90, s.p99, s.max), (f(50), f(90), f(99), f(100)));
        assert_eq!(summarize(&mut []).samples, 0);
        let mut one = [Duration::from_millis(7)];
        assert_eq!(summarize(&mut one).p99, Duration::from_millis(7));
    }
}
