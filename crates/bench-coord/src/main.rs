//! `zedis-bench-coord`: lock acquire+release cycles per second, side by side in one run —
//! the zedis Redis lease lock against raw `SET NX PX` + `DEL`, and the zedis ZooKeeper lock
//! against raw `create` (ephemeral) + `delete` — with one client and with N contending
//! clients (each with its own connection or session). It starts its own redis-server and
//! ZooKeeper on free loopback ports and stops them on exit. See `docs/benchmarks.md`.
//!
//! Also, on the same ZooKeeper: the election hand-over time ([`election_side`]) and the time
//! from a discovery change to the caches following the service showing it ([`discovery_side`]).

mod discovery_side;
mod election_side;
mod measure;
mod redis_side;
mod report;
mod zk_side;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use zedis_testkit::{RedisServer, ZkServer};

use crate::election_side::Exit;
use crate::measure::{measure, Cycler, Measurement, Window};
use crate::redis_side::{LeaseLockCycler, RawSetNx};
use crate::report::{Latency, Row, System, Variant};
use crate::zk_side::{RawCreateDelete, ZkLockCycler};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    /// Lock cycles/s on Redis.
    Redis,
    /// Lock cycles/s on ZooKeeper.
    Zookeeper,
    /// Election hand-over time.
    Election,
    /// Discovery change -> cache updated latency.
    Discovery,
}

/// Whether the measurement `which` is to be run.
fn wants(only: Option<Only>, which: Only) -> bool {
    only.is_none_or(|o| o == which)
}

#[derive(Parser, Debug)]
#[command(
    name = "zedis-bench-coord",
    about = "Lock acquire+release cycles/s: zedis's Redis lease lock vs raw SET NX + DEL, zedis's ZooKeeper lock vs raw create + delete; election hand-over time; discovery change -> cache updated latency"
)]
struct Args {
    /// Length of every measurement, in seconds (after the warm-up).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    secs: f64,
    /// Warm-up before each measurement, not counted, in milliseconds.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    warmup_ms: u64,
    /// Contending clients in the contended runs (the other runs have one).
    #[arg(long, default_value_t = 8, value_name = "N")]
    clients: usize,
    /// Base wait between tries while the lock is taken, for the raw sides and the lease lock
    /// alike (jittered to 0.5–1.5×). The ZooKeeper lock waits on a watch instead.
    #[arg(long, default_value_t = 1, value_name = "MS")]
    retry_ms: u64,
    /// Rounds: every measurement is repeated this many times, raw and lock alternating, and
    /// the median round is reported (contended runs vary a lot from one run to the next).
    #[arg(long, default_value_t = 3, value_name = "N")]
    rounds: usize,
    /// Election hand-overs timed per kind (resign, session closed).
    #[arg(long, default_value_t = 10, value_name = "N")]
    handovers: usize,
    /// Discovery changes timed per run (registrations and deregistrations alternating).
    #[arg(long, default_value_t = 100, value_name = "N")]
    changes: usize,
    /// Caches following the service at once in the second discovery run (1: no second run).
    #[arg(long, default_value_t = 10, value_name = "N")]
    caches: usize,
    /// Run only one measurement.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Print a JSON summary on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = run(args) {
        eprintln!("zedis-bench-coord: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if !(args.secs.is_finite() && args.secs > 0.0 && args.secs <= 3600.0) {
        bail!("--secs must be in (0, 3600]");
    }
    if args.clients < 2 {
        bail!("--clients must be at least 2 (it is the contended case)");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.retry_ms == 0 {
        bail!("--retry-ms must be at least 1");
    }
    if args.handovers == 0 || args.changes == 0 || args.caches == 0 {
        bail!("--handovers, --changes and --caches must be at least 1");
    }
    let with_redis = wants(args.only, Only::Redis);
    let with_zk = [Only::Zookeeper, Only::Election, Only::Discovery].into_iter().any(|w| wants(args.only, w));
    // Started before the runtime (they block while waiting for readiness); dropped, and so
    // killed, when `run` returns, on success or error.
    let redis = if with_redis {
        eprintln!("starting redis-server ...");
        Some(RedisServer::start().context("start redis-server")?)
    } else {
        None
    };
    let zk = if with_zk {
        eprintln!("starting ZooKeeper ...");
        Some(ZkServer::start().context("start ZooKeeper")?)
    } else {
        None
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")?;
    runtime.block_on(bench(&args, redis.as_ref(), zk.as_ref()))
}

async fn bench(args: &Args, redis: Option<&RedisServer>, zk: Option<&ZkServer>) -> Result<()> {
    let window = Window { warmup: Duration::from_millis(args.warmup_ms), secs: Duration::from_secs_f64(args.secs) };
    let retry = Duration::from_millis(args.retry_ms);
    let json = args.json;
    let say = |line: String| if json { eprintln!("{line}") } else { println!("{line}") };
    let zk_lock = zk.filter(|_| wants(args.only, Only::Zookeeper));
    let mut rows: Vec<Row> = Vec::new();
    if redis.is_some() || zk_lock.is_some() {
        say(format!(
        "lock acquire+release cycles/s; median of {} rounds of {:.1} s after {} ms warm-up, raw and lock alternating; \
         waiters retry every ~{} ms (jittered) on the raw sides and the lease lock; each client has its own \
         connection or session",
        args.rounds, args.secs, args.warmup_ms, args.retry_ms
        ));
        say(report::header());
    }
    let emit = |raw: Vec<Measurement>, lock: Vec<Measurement>, system: System, rows: &mut Vec<Row>| {
        rows.push(Row { system, variant: Variant::Raw, runs: raw });
        rows.push(Row { system, variant: Variant::Lock, runs: lock });
        let ratios = report::ratios(rows);
        for row in &rows[rows.len() - 2..] {
            say(report::line(row, report::ratio_of(row, &ratios)));
        }
    };
    let counts = [1, args.clients];

    if let Some(server) = redis {
        let url = server.url();
        for n in counts {
            let (mut raw_runs, mut lock_runs) = (Vec::new(), Vec::new());
            for _ in 0..args.rounds {
                let key = LeaseLockCycler::key("bench-raw");
                let raw = redis_side::connections(&url, n)
                    .await?
                    .into_iter()
                    .enumerate()
                    .map(|(i, conn)| RawSetNx::new(conn, &key, i, retry))
                    .collect();
                raw_runs.push(run_one(System::Redis, Variant::Raw, raw, window).await?);
                let mut locks = Vec::with_capacity(n);
                for conn in redis_side::connections(&url, n).await? {
                    locks.push(LeaseLockCycler::new(conn, "bench-lock", retry)?);
                }
                lock_runs.push(run_one(System::Redis, Variant::Lock, locks, window).await?);
            }
            emit(raw_runs, lock_runs, System::Redis, &mut rows);
        }
    }

    if let Some(server) = zk_lock {
        let hosts = server.connect_string();
        for n in counts {
            let (mut raw_runs, mut lock_runs) = (Vec::new(), Vec::new());
            for _ in 0..args.rounds {
                let sessions = zk_side::sessions(&hosts, n).await?;
                zk_side::prepare(&sessions[0]).await?;
                let raw = sessions.into_iter().map(|zk| RawCreateDelete::new(zk, "bench", retry)).collect();
                raw_runs.push(run_one(System::ZooKeeper, Variant::Raw, raw, window).await?);
                let mut locks = Vec::with_capacity(n);
                for zk in zk_side::sessions(&hosts, n).await? {
                    locks.push(ZkLockCycler::new(&zk, "zedis-bench")?);
                }
                lock_runs.push(run_one(System::ZooKeeper, Variant::Lock, locks, window).await?);
            }
            emit(raw_runs, lock_runs, System::ZooKeeper, &mut rows);
        }
    }

    let mut latencies: Vec<Latency> = Vec::new();
    let mut emit_latency = |latency: Latency| {
        say(report::latency_line(&latency));
        latencies.push(latency);
    };
    if let Some(server) = zk.filter(|_| wants(args.only, Only::Election)) {
        let hosts = server.connect_string();
        say(String::new());
        say(format!(
            "election hand-over: 2 LeaderLatch candidates, each with its own ZooKeeper session ({} s timeout); \
             from the leader going until the other's await_leadership() returns; {} rounds per kind after {} \
             untimed, fresh election and sessions each. \"session closed\": the leader stops dead and its session is closed, so \
             ZooKeeper deletes its node at once (a clean process exit). A kill -9 without the close is bounded by \
             the session timeout, not measured here: covered by crates/cli/tests/election_cli.rs \
             (election_run_hands_over_when_the_leader_is_killed).",
            zk_side::SESSION_TIMEOUT.as_secs(),
            args.handovers,
            election_side::WARMUP_ROUNDS
        ));
        say(report::latency_header());
        for exit in [Exit::Resign, Exit::SessionClosed] {
            let samples = election_side::handovers(&hosts, exit, args.handovers).await?;
            emit_latency(Latency { kind: "election", what: exit.describe().to_owned(), samples });
        }
    }
    if let Some(server) = zk.filter(|_| wants(args.only, Only::Discovery)) {
        let hosts = server.connect_string();
        say(String::new());
        say(format!(
            "discovery change -> cache updated: ServiceCaches (each with its own session) follow one service; \
             another session registers an instance, then deregisters it, and so on ({} changes per run after {} \
             untimed); from just before register()/deregister() until every cache's changes() shows the new \
             instance set",
            args.changes,
            discovery_side::WARMUP_CHANGES
        ));
        say(report::latency_header());
        let mut counts = vec![1];
        if args.caches > 1 {
            counts.push(args.caches);
        }
        for n in counts {
            let service = format!("bench-svc-{n}-{}", std::process::id());
            let run = discovery_side::propagation(&hosts, &service, n, args.changes)
                .await
                .with_context(|| format!("discovery with {n} cache(s)"))?;
            let caches = if n == 1 { "1 cache".to_owned() } else { format!("all {n} caches") };
            for (call, samples) in [("register", run.register), ("deregister", run.deregister)] {
                emit_latency(Latency { kind: "discovery", what: format!("{call}() -> {caches} updated"), samples });
            }
        }
    }

    if json {
        let settings = serde_json::json!({
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "secs": args.secs,
            "warmup_ms": args.warmup_ms,
            "contended_clients": args.clients,
            "retry_ms": args.retry_ms,
            "rounds": args.rounds,
            "handovers": args.handovers,
            "discovery_changes": args.changes,
            "discovery_caches": args.caches,
            "session_timeout_ms": zk_side::SESSION_TIMEOUT.as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&report::json(&rows, &latencies, settings))?);
    }
    Ok(())
}

async fn run_one<C: Cycler>(system: System, variant: Variant, clients: Vec<C>, window: Window) -> Result<Measurement> {
    let n = clients.len();
    measure(clients, window)
        .await
        .with_context(|| format!("{} {} with {n} client(s)", system.name(), variant.describe(system)))
}
