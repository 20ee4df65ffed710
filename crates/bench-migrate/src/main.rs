//! `zedis-bench-migrate`: online slot migration against raw `MIGRATE` of the same keys, and
//! what a client sees through the proxy meanwhile. See `docs/benchmarks.md`, "Slot migration".
//!
//! Each round (`--rounds`, default 3, each with a fresh sandbox):
//! 1. `zedis up --groups 2 --replicas 0` (ZooKeeper, two masters, a controller, a proxy); N
//!    keys written through the proxy.
//! 2. A client thread (GET/SET 50/50 on random keys, one at a time, through the proxy) runs
//!    from here to the end of the round; the first seconds are the baseline.
//! 3. `zedis cluster migrate --slots 0-8191 --to 2` moves group 1's half of the keys while the
//!    client runs; `cluster migrations --json` is polled until `done`, and the controller's
//!    events give when keys started moving and when the migration was done. Keys/s and MB/s
//!    are the driver's `keys_moved` and `bytes_moved` over that "moving → done" time.
//! 4. The sandbox is stopped; the same keys are loaded into one of two plain redis-servers,
//!    moved to the other with `SCAN` + `MIGRATE ... KEYS` batches of 100, and back with the
//!    mover's sizing pipeline (`MEMORY USAGE` + `TYPE`) before each `MIGRATE`.
//! 5. A table per round, the medians over the rounds (and `--json FILE`). Exit status 2 when
//!    the client saw any failure or a key is not where it should be afterwards.

mod client;
mod data;
mod procs;
mod raw;
mod report;
mod sandbox;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::Value;
use zedis_topology::key_slot;

use crate::procs::{now_us, sleep};
use crate::report::{Migration, Outcome};
use crate::sandbox::Sandbox;
use crate::stats::Window;

/// The slots that move (group 1's half of a 2-group cluster) and where to.
pub const SLOTS: (u16, u16) = (0, 8191);
const SOURCE: u32 = 1;
const TARGET: u32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "zedis-bench-migrate",
    about = "Slot migration keys/s and MB/s against raw SCAN+MIGRATE, and client p50/p99 through the proxy during the move"
)]
pub struct Args {
    /// Keys written before the migration (about half of them move).
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_size: usize,
    /// Seconds of client load measured before the migration starts.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub baseline_secs: u64,
    /// Seconds of client load before the baseline, not measured (connections, caches).
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub warmup_secs: u64,
    /// Seconds of client load measured after the migration is done.
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    pub after_secs: u64,
    /// Keys per MIGRATE of the raw baseline (zedis's mover uses 100).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub batch: usize,
    /// Throttle of the migration (`cluster migrate --rate`, keys/s); default: as fast as it goes.
    #[arg(long, value_name = "KEYS_PER_S")]
    pub rate: Option<u32>,
    /// Width of the client timeline's windows (in the JSON, and printed with --timeline), ms.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub bucket_ms: u64,
    /// Print the client's timeline: ops, p50, p99, max per --bucket-ms window.
    #[arg(long)]
    pub timeline: bool,
    /// Rounds, each with a fresh sandbox; the summary gives the medians.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub rounds: usize,
    /// How often `zedis cluster migrations --json` is polled, milliseconds.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub poll_ms: u64,
    /// Deadline of the sandbox's start and of the migration, seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout_secs: u64,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the working directory (the sandbox's logs) and print where it is.
    #[arg(long)]
    pub keep_dir: bool,
    /// The `zedis` binary (default: `zedis` next to this executable, else ./target/release/zedis).
    #[arg(long, env = "ZEDIS_BIN", value_name = "PATH")]
    pub zedis: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    procs::install_signal_handlers();
    // Every process is stopped when `run` returns, on success or error (drops stop them).
    match run(&args) {
        Ok(outcomes) if outcomes.iter().all(Outcome::clean) => {}
        Ok(_) => std::process::exit(2),
        Err(e) => {
            eprintln!("zedis-bench-migrate: {e:#}");
            std::process::exit(1);
        }
    }
}

fn zedis_binary(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = flag {
        if !path.is_file() {
            bail!("zedis binary {} not found", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let next_to = exe.parent().unwrap_or(Path::new(".")).join("zedis");
    for candidate in [next_to, PathBuf::from("target/release/zedis")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("no zedis binary next to this one nor in ./target/release: build it with `cargo build --release -p zedis-cli`, or pass --zedis PATH")
}

fn run(args: &Args) -> Result<Vec<Outcome>> {
    if args.keys < 2
        || args.value_size == 0
        || args.batch == 0
        || args.baseline_secs == 0
        || args.rate == Some(0)
        || args.rounds == 0
    {
        bail!("--keys must be at least 2; --value-size, --batch, --baseline-secs, --rate and --rounds at least 1");
    }
    let zedis = zedis_binary(args.zedis.as_deref())?;
    let work = procs::WorkDir::create("zedis-bench-migrate-", args.keep_dir)?;
    let moving: Vec<u64> =
        (0..args.keys).filter(|&i| (SLOTS.0..=SLOTS.1).contains(&key_slot(data::key(i).as_bytes()))).collect();
    eprintln!(
        "{} keys of {} bytes, {} of them in slots {}-{}; {} rounds; {} CPUs, load average {}; zedis {}",
        args.keys,
        args.value_size,
        moving.len(),
        SLOTS.0,
        SLOTS.1,
        args.rounds,
        procs::cpus(),
        procs::loadavg(),
        zedis.display()
    );
    let mut outcomes = Vec::new();
    for r in 1..=args.rounds {
        eprintln!("round {r} of {}", args.rounds);
        let dir = work.path().join(format!("round-{r}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let outcome = round(args, &zedis, &dir, &moving).with_context(|| format!("round {r}"))?;
        for line in report::lines(&outcome) {
            println!("{line}");
        }
        outcomes.push(outcome);
    }
    if outcomes.len() > 1 {
        println!();
        for line in report::summary(&outcomes) {
            println!("{line}");
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report::json_all(&outcomes))?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("JSON written to {}", path.display());
    }
    if args.keep_dir {
        eprintln!("working directory kept: {} (each round's sandbox logs in round-N/sb)", work.path().display());
    }
    Ok(outcomes)
}

/// One round: a fresh sandbox, the baseline, the migration, the raw MIGRATE runs.
fn round(args: &Args, zedis: &Path, dir: &Path, moving: &[u64]) -> Result<Outcome> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let io_timeout = Duration::from_secs(30);
    let loadavg = procs::loadavg();

    // 1. The sandbox and the data.
    eprintln!("starting the sandbox (zedis up --groups 2 --replicas 0) ...");
    let t = Instant::now();
    let mut sandbox = Sandbox::start(zedis, dir, timeout)?;
    eprintln!(
        "  ready in {:.1}s: ZooKeeper {}, proxy {}, masters {:?}, slots {:?}",
        t.elapsed().as_secs_f64(),
        sandbox.zk,
        sandbox.proxy,
        sandbox.masters,
        sandbox.slots
    );
    if !sandbox.slots.contains(&(SLOTS.0, SLOTS.1, SOURCE)) {
        bail!(
            "expected group {SOURCE} to own slots {}-{} at start; status shows {:?}",
            SLOTS.0,
            SLOTS.1,
            sandbox.slots
        );
    }
    let t = Instant::now();
    let all: Vec<u64> = (0..args.keys).collect();
    data::seed(&sandbox.proxy, &all, args.value_size, io_timeout).context("seeding through the proxy")?;
    eprintln!("  {} keys written through the proxy in {:.1}s", args.keys, t.elapsed().as_secs_f64());

    // 2. The client, and the baseline.
    let stop = Arc::new(AtomicBool::new(false));
    let client = client::spawn(sandbox.proxy.clone(), args.keys, args.value_size, stop.clone());
    let measured = (|| -> Result<(u64, u64, Migration)> {
        sleep(Duration::from_secs(args.warmup_secs))?;
        let base_from = now_us();
        eprintln!("baseline: the client alone for {}s ...", args.baseline_secs);
        sleep(Duration::from_secs(args.baseline_secs))?;
        let base_to = now_us();
        // 3. The migration, the client still running.
        let migration = migrate(&mut sandbox, args, timeout)?;
        sleep(Duration::from_secs(args.after_secs))?;
        Ok((base_from, base_to, migration))
    })();
    let client_to = now_us();
    stop.store(true, Ordering::SeqCst);
    let run = client.join().map_err(|_| anyhow::anyhow!("the client thread panicked"))?;
    let (base_from, base_to, mut migration) = measured.map_err(|e| {
        if procs::check_interrupted().is_err() {
            e
        } else {
            anyhow::anyhow!("{e:#}\n{}", sandbox.log_tails())
        }
    })?;

    // Every key where it belongs: none left in group 1, all of them in group 2.
    migration.left_in_source = count_keys(sandbox.master(SOURCE)?, io_timeout)?;
    migration.in_target = count_keys(sandbox.master(TARGET)?, io_timeout)?;
    migration.expected_keys = moving.len() as u64;
    sandbox.stop();
    drop(sandbox);

    let timeline = stats::timeline(&run, base_from, client_to, args.bucket_ms * 1000, migration.command_us);
    let windows = vec![
        Window::of("before", &run, base_from, base_to),
        Window::of("preparing", &run, migration.command_us, migration.moving_us()),
        Window::of("during move", &run, migration.moving_us(), migration.done_us()),
        Window::of("after", &run, migration.done_us(), client_to),
        Window::of_slots("before, moving slots", &run, base_from, base_to, Some(true)),
        Window::of_slots("during, moving slots", &run, migration.moving_us(), migration.done_us(), Some(true)),
        Window::of_slots("before, other slots", &run, base_from, base_to, Some(false)),
        Window::of_slots("during, other slots", &run, migration.moving_us(), migration.done_us(), Some(false)),
    ];
    let first_failures = run
        .failures
        .iter()
        .map(|f| {
            let since = f.at_us as f64 / 1e6 - migration.command_us as f64 / 1e6;
            format!("{since:+.3} s from `cluster migrate`: {}", f.what)
        })
        .collect();

    // 4. Raw MIGRATE of the same keys.
    eprintln!("raw baseline: {} keys into a plain redis-server, SCAN + MIGRATE to another and back ...", moving.len());
    let (raw, raw_sized) = raw::run(dir, moving, args.value_size, args.batch, io_timeout)?;

    Ok(Outcome {
        keys: args.keys,
        value_size: args.value_size,
        key_len: data::key(0).len(),
        batch: args.batch,
        cpus: procs::cpus(),
        loadavg_before: loadavg,
        loadavg_after: procs::loadavg(),
        raw,
        raw_sized,
        migration,
        windows,
        timeline,
        print_timeline: args.timeline,
        rate: args.rate,
        client_failures: run.failed_at_us.len(),
        first_failures,
    })
}

/// Runs `cluster migrate`, polls `cluster migrations --json` until the migration is done,
/// and reads the controller's event times.
fn migrate(sandbox: &mut Sandbox, args: &Args, timeout: Duration) -> Result<Migration> {
    let slots = format!("{}-{}", SLOTS.0, SLOTS.1);
    let throttle = args.rate.map(|r| format!(" --rate {r}")).unwrap_or_default();
    eprintln!("migration: zedis cluster migrate --slots {slots} --to {TARGET}{throttle}, the client still running ...");
    let command_us = now_us();
    let target = TARGET.to_string();
    let mut cli = vec!["cluster", "migrate", "--slots", &slots, "--to", &target];
    let rate = args.rate.map(|r| r.to_string());
    if let Some(rate) = &rate {
        cli.extend(["--rate", rate]);
    }
    let said = sandbox.cli(&cli)?;
    eprintln!("  {}", said.trim());
    let mut m = Migration { command_us, ..Migration::default() };
    let deadline = Instant::now() + timeout;
    let mut last_state = String::new();
    let done = loop {
        sandbox.check_running()?;
        let views: Value = serde_json::from_str(&sandbox.cli(&["cluster", "migrations", "--json"])?)
            .context("cluster migrations --json is not JSON")?;
        m.polls += 1;
        let now = now_us();
        let found = views
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["target"].as_u64() == Some(u64::from(TARGET)))
            .max_by_key(|v| v["id"].as_u64().unwrap_or(0));
        if let Some(v) = found {
            m.id = v["id"].as_u64().unwrap_or(0);
            let state = v["state"].as_str().unwrap_or("?").to_string();
            if state != last_state {
                let p = &v["progress"];
                eprintln!(
                    "  +{:.2}s migration {} {state}  keys {}",
                    (now - command_us) as f64 / 1e6,
                    m.id,
                    p["keys_moved"].as_u64().map(|k| k.to_string()).unwrap_or_else(|| "-".into())
                );
                last_state = state.clone();
            }
            match state.as_str() {
                "preparing" => {}
                "moving" => {
                    m.seen_moving_us.get_or_insert(now);
                }
                "done" if !v["progress"].is_null() => {
                    m.seen_done_us = Some(now);
                    break v.clone();
                }
                "done" => {} // its final progress record is read on the next poll
                other => bail!("migration {} is {other}: {}", m.id, v),
            }
        }
        if Instant::now() > deadline {
            bail!("the migration was not done within {timeout:?} (last state {last_state:?})");
        }
        sleep(Duration::from_millis(args.poll_ms))?;
    };
    let p = &done["progress"];
    m.keys_moved = p["keys_moved"].as_u64().unwrap_or(0);
    m.bytes_moved = p["bytes_moved"].as_u64().unwrap_or(0);
    m.passes = p["passes"].as_u64().unwrap_or(0);
    m.big_keys = p["big_keys"].as_u64().unwrap_or(0);

    // The controller's own times (wall clock, milliseconds) of the three steps.
    let events: Value = serde_json::from_str(&sandbox.cli(&["cluster", "events", "-n", "200", "--json"])?)
        .context("cluster events --json is not JSON")?;
    let head = format!("migration {}:", m.id);
    let done_head = format!("migration {} done", m.id);
    for e in events.as_array().into_iter().flatten() {
        let (Some(msg), Some(t)) = (e["message"].as_str(), e["time_ms"].as_u64()) else { continue };
        if e["kind"] == "migration_started" && msg.starts_with(&head) {
            m.started_ms = Some(t);
        } else if msg.starts_with(&head) && msg.contains("keys move now") {
            m.moving_ms = Some(t);
        } else if msg.starts_with(&done_head) {
            m.done_ms = Some(t);
        }
    }
    if m.moving_ms.is_none() || m.done_ms.is_none() {
        eprintln!("  (the controller's events do not show both steps; using the polled times)");
    }
    Ok(m)
}

/// Keys named `key:*` on one server (SCAN), to check where they ended up.
fn count_keys(addr: &str, timeout: Duration) -> Result<u64> {
    let mut conn = data::connect(addr, timeout)?;
    let mut cursor: u64 = 0;
    let mut n = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg("key:*").arg("COUNT").arg(1000).query(&mut conn)?;
        n += keys.len() as u64;
        cursor = next;
        if cursor == 0 {
            return Ok(n);
        }
    }
}
