//! `zedis-bench-failover`: time from `kill -9` of a Redis master to the first successful
//! write on the new master, zedis against Redis Sentinel on the same machine with the same
//! detection time. Runs alternate (zedis run i, then Sentinel run i) so both see the same
//! machine load. See `docs/benchmarks.md`.

mod measure;
mod proc;
mod redis_io;
mod sentinel_side;
mod stats;
mod zedis_side;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Parser;

use crate::measure::{Sample, RETRY};
use crate::sentinel_side::SentinelSide;
use crate::stats::Summary;
use crate::zedis_side::ZedisSide;

/// The goal of the benchmark's issue: zedis's p50 at defaults.
const GOAL_P50: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(
    name = "zedis-bench-failover",
    about = "kill -9 of a master -> first successful write to the new master: zedis against Redis Sentinel"
)]
struct Args {
    /// Failovers per system.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Detection time for both: zedis's `down_after_ms` and Sentinel's
    /// `down-after-milliseconds`. The default is zedis's default.
    #[arg(long, default_value_t = zedis_topology::ClusterSettings::default().down_after_ms, value_name = "MS")]
    down_after_ms: u64,
    /// zedis controllers to run; the leader fails over when a majority of them see the
    /// master down.
    #[arg(long, default_value_t = 1, value_name = "N")]
    controllers: usize,
    /// Deadline of every wait (setup, failover, rejoin), in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout_secs: u64,
    /// The `zedis` binary (default: `zedis` next to this executable).
    #[arg(long, env = "ZEDIS_BIN", value_name = "PATH")]
    zedis_bin: Option<PathBuf>,
    /// The `redis-sentinel` binary.
    #[arg(long, env = "ZEDIS_REDIS_SENTINEL", default_value = "/usr/bin/redis-sentinel", value_name = "PATH")]
    sentinel_bin: PathBuf,
    /// Print a JSON summary on stdout (the human-readable report goes to stderr).
    #[arg(long)]
    json: bool,
    /// Keep the controller's and the sentinels' directories (logs, sentinel.conf) and print
    /// where they are.
    #[arg(long)]
    keep_dirs: bool,
}

/// What both sides need.
#[derive(Clone, Debug)]
pub struct Settings {
    pub zedis_bin: PathBuf,
    pub sentinel_bin: PathBuf,
    pub down_after_ms: u64,
    pub timeout: Duration,
    pub keep_dirs: bool,
    pub controllers: usize,
}

/// A working directory: temporary, or kept when `--keep-dirs` says so.
pub struct WorkDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn create(prefix: &str, keep: bool) -> Result<WorkDir> {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        if keep {
            let path = temp.keep();
            eprintln!("  keeping {}", path.display());
            Ok(WorkDir { path, _temp: None })
        } else {
            Ok(WorkDir { path: temp.path().to_path_buf(), _temp: Some(temp) })
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zedis-bench-failover: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    // Every process is stopped when `run` returns, on success or error (drops kill them).
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("zedis-bench-failover: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.controllers == 0 {
        bail!("--controllers must be at least 1");
    }
    if !args.sentinel_bin.is_file() {
        bail!("{} not found: install redis-sentinel or set ZEDIS_REDIS_SENTINEL", args.sentinel_bin.display());
    }
    let settings = Settings {
        zedis_bin: zedis_side::zedis_binary(args.zedis_bin.clone())?,
        sentinel_bin: args.sentinel_bin.clone(),
        down_after_ms: args.down_after_ms,
        timeout: Duration::from_secs(args.timeout_secs),
        keep_dirs: args.keep_dirs,
        controllers: args.controllers,
    };
    let json = args.json;
    let say = |line: String| if json { eprintln!("{line}") } else { println!("{line}") };

    eprintln!("starting zedis: ZooKeeper, 3 redis-server, {} controller(s) ...", settings.controllers);
    let mut zedis = ZedisSide::start(&settings).await?;
    eprintln!("  {}", zedis.describe());
    eprintln!("starting Sentinel: 3 redis-server, 3 redis-sentinel ...");
    let mut sentinel = SentinelSide::start(&settings).await?;
    eprintln!("  {}", sentinel.describe());

    say(format!(
        "kill -9 master -> first successful SET on the new master; detection time {} ms for both; \
         client retries every {} ms",
        settings.down_after_ms,
        RETRY.as_millis()
    ));
    say(format!(
        "zedis: {} controller(s); Sentinel: 3 sentinels, quorum 2, failover-timeout 10000 ms; times in seconds",
        settings.controllers
    ));
    say(format!("{:>4}  {:>10} {:>10}   {:>10} {:>10}", "run", "zedis", "(found)", "sentinel", "(found)"));
    let mut zedis_samples = Vec::new();
    let mut sentinel_samples = Vec::new();
    for run in 1..=args.runs {
        let z = zedis.run_once(run).await.map_err(|e| e.context(format!("zedis run {run}")))?;
        let s = sentinel.run_once(run).await.map_err(|e| e.context(format!("Sentinel run {run}")))?;
        say(format!(
            "{run:>4}  {:>10} {:>10}   {:>10} {:>10}{}",
            secs(z.write),
            secs(z.discovered),
            secs(s.write),
            secs(s.discovered),
            again_note(&z, &s)
        ));
        zedis_samples.push(z);
        sentinel_samples.push(s);
    }
    drop(zedis);
    drop(sentinel);

    let z = Summary::of(&zedis_samples);
    let s = Summary::of(&sentinel_samples);
    let ratio = s.p50.as_secs_f64() / z.p50.as_secs_f64().max(1e-9);
    say(String::new());
    say(format!("{:<9} {:>8} {:>8} {:>8} {:>8}", "", "p50", "max", "mean", "min"));
    for (name, sum) in [("zedis", &z), ("sentinel", &s)] {
        say(format!("{name:<9} {:>8} {:>8} {:>8} {:>8}", secs(sum.p50), secs(sum.max), secs(sum.mean), secs(sum.min)));
    }
    say(format!("sentinel p50 / zedis p50 = {ratio:.2}"));
    let z_again = zedis_samples.iter().filter(|s| s.failed_over_again()).count();
    let s_again = sentinel_samples.iter().filter(|s| s.failed_over_again()).count();
    if z_again + s_again > 0 {
        say(format!(
            "failed over once more after the measured write: zedis in {z_again} runs, Sentinel in {s_again} runs"
        ));
    }
    let goal_p50 = z.p50 <= GOAL_P50;
    let goal_faster = z.p50 < s.p50;
    say(format!(
        "goal: zedis p50 <= {} s: {}; faster than Sentinel: {}",
        GOAL_P50.as_secs(),
        if goal_p50 { "met" } else { "NOT met" },
        if goal_faster { "met" } else { "NOT met" }
    ));

    if json {
        let summary = serde_json::json!({
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "runs": args.runs,
            "down_after_ms": settings.down_after_ms,
            "zedis_controllers": settings.controllers,
            "retry_ms": RETRY.as_millis() as u64,
            "zedis": side_json(&z, &zedis_samples),
            "sentinel": side_json(&s, &sentinel_samples),
            "ratio_sentinel_p50_over_zedis_p50": ratio,
            "goal_zedis_p50_le_2s": goal_p50,
            "goal_zedis_faster_than_sentinel": goal_faster,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// Flags a run after which a system failed over once more before it settled.
fn again_note(z: &Sample, s: &Sample) -> String {
    let mut note = String::new();
    for (name, sample) in [("zedis", z), ("Sentinel", s)] {
        if sample.failed_over_again() {
            note += &format!("  ({name} failed over again, to {})", sample.settled_master);
        }
    }
    note
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn side_json(sum: &Summary, samples: &[Sample]) -> serde_json::Value {
    serde_json::json!({
        "p50_ms": ms(sum.p50),
        "max_ms": ms(sum.max),
        "mean_ms": ms(sum.mean),
        "min_ms": ms(sum.min),
        "runs": samples.iter().map(|s| serde_json::json!({
            "write_ms": ms(s.write),
            "discovered_ms": ms(s.discovered),
            "old_master": s.old_master,
            "new_master": s.new_master,
            "failed_attempts": s.failed_attempts,
            "settled_master": s.settled_master,
            "failed_over_again": s.failed_over_again(),
        })).collect::<Vec<_>>(),
        "runs_failed_over_again": samples.iter().filter(|s| s.failed_over_again()).count(),
    })
}
