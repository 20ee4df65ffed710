//! `zedis-bench-proxy`: redis-benchmark (SET, GET, MSET; 50 clients; pipeline 1 and 16)
//! against one Redis master directly, through twemproxy (`nutcracker`) over two masters, and
//! through the zedis proxy over the same two masters. Runs alternate between the three
//! targets; the report has medians of throughput and latency, the zedis/twemproxy ratio, and
//! the CPU time every process spent per request. See `docs/benchmarks.md`.

mod bench;
mod procs;
mod report;
mod setup;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::bench::{RunSettings, Test};
use crate::report::{Record, Row};
use crate::setup::{Env, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "zedis-bench-proxy",
    about = "redis-benchmark directly against a Redis master, through twemproxy and through the zedis proxy"
)]
struct Args {
    /// Requests per redis-benchmark run at pipeline 1.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    requests: u64,
    /// Requests per redis-benchmark run at pipeline depths above 1 (runs of 200000 would
    /// last a quarter of a second directly: too short for CPU times in 10 ms ticks).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    requests_pipelined: u64,
    /// Rounds; each round runs every test at every depth against every target in turn.
    #[arg(long, default_value_t = 3, value_name = "R")]
    rounds: usize,
    /// redis-benchmark clients (`-c`).
    #[arg(long, default_value_t = 50, value_name = "N")]
    clients: u32,
    /// Pipeline depths (`-P`).
    #[arg(long, value_delimiter = ',', default_value = "1,16", value_name = "P,...")]
    pipelines: Vec<u32>,
    /// redis-benchmark tests (`-t`): set, get, mset.
    #[arg(long, value_delimiter = ',', default_value = "set,get,mset", value_name = "TEST,...")]
    tests: Vec<String>,
    /// Key space (`-r`): keys `key:000000000000` ... spread over slots and servers; all of
    /// them are written to both masters first, so every GET finds its key.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    keyspace: u64,
    /// Requests of the unmeasured warm-up (SET and GET at the highest depth) per target; 0
    /// skips it.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    warmup_requests: u64,
    /// A run during which processes other than the client, the proxy and the two masters used
    /// more CPUs than this (other benchmarks, builds) is disturbed: its test is run again
    /// against all three targets, up to --retries times.
    #[arg(long, default_value_t = 0.3, value_name = "CPUS")]
    max_other_cpus: f64,
    /// Repeats of a disturbed test before its runs are kept anyway (and counted as disturbed).
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: usize,
    /// Deadline of every setup wait, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout_secs: u64,
    /// Deadline of one redis-benchmark run, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    run_timeout_secs: u64,
    /// Print a JSON summary on stdout (the human-readable report goes to stderr).
    #[arg(long)]
    json: bool,
    /// Keep the working directory (logs of the proxy, controller, nutcracker, servers) and
    /// print where it is.
    #[arg(long)]
    keep_logs: bool,
    /// The `zedis` binary (default: `zedis` next to this executable).
    #[arg(long, env = "ZEDIS_BIN", value_name = "PATH")]
    zedis_bin: Option<PathBuf>,
    /// The twemproxy binary.
    #[arg(long, env = "ZEDIS_NUTCRACKER", default_value = "/usr/sbin/nutcracker", value_name = "PATH")]
    nutcracker_bin: PathBuf,
    /// The redis-benchmark binary.
    #[arg(long, env = "ZEDIS_REDIS_BENCHMARK", default_value = "redis-benchmark", value_name = "PATH")]
    redis_benchmark: PathBuf,
    /// Extra argument for `zedis proxy` (repeat it), e.g. `--proxy-arg=--backend-connections=1`.
    #[arg(long = "proxy-arg", allow_hyphen_values = true, value_name = "ARG")]
    proxy_args: Vec<String>,
}

fn main() {
    let args = Args::parse();
    procs::install_signal_handlers();
    // Every process is stopped when `run` returns, on success or error (drops kill them).
    if let Err(e) = run(args) {
        eprintln!("zedis-bench-proxy: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if args.rounds == 0 || args.clients == 0 || args.requests == 0 || args.requests_pipelined == 0 {
        bail!("--rounds, --clients, --requests and --requests-pipelined must be at least 1");
    }
    if args.pipelines.is_empty() || args.pipelines.contains(&0) {
        bail!("--pipelines must list depths of at least 1");
    }
    let tests: Vec<Test> = args
        .tests
        .iter()
        .map(|t| Test::parse(t).with_context(|| format!("unknown test {t:?}; use set, get, mset")))
        .collect::<Result<_>>()?;
    let requests = |pipeline: u32| if pipeline > 1 { args.requests_pipelined } else { args.requests };
    let json = args.json;
    let say = |line: &str| if json { eprintln!("{line}") } else { println!("{line}") };

    let version = bench::check_redis_benchmark(&args.redis_benchmark)?;
    let settings = Settings {
        zedis_bin: setup::zedis_binary(args.zedis_bin.clone())?,
        nutcracker_bin: args.nutcracker_bin.clone(),
        timeout: Duration::from_secs(args.timeout_secs),
        keep_logs: args.keep_logs,
        proxy_args: args.proxy_args.clone(),
        keyspace: args.keyspace,
    };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("starting ZooKeeper, 2 redis-server, zedis controller and proxy, twemproxy ...");
    let mut env = Env::start(&settings)?;
    eprintln!("  {}", env.describe());
    if args.keep_logs {
        eprintln!("  logs in {}", env.dir().display());
    }
    let (share, span) = setup::key_spread(&env.master_addrs(), args.keyspace)?;
    let run_settings = RunSettings {
        redis_benchmark: args.redis_benchmark.clone(),
        clients: args.clients,
        keyspace: args.keyspace,
        timeout: Duration::from_secs(args.run_timeout_secs),
        dir: env.dir().to_path_buf(),
        redis_pids: env.redis_pids(),
    };

    say(&format!(
        "{version}; {} clients; -r {}; {} CPUs, load average before start {}",
        args.clients,
        args.keyspace,
        procs::cpus(),
        loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));
    say(&format!(
        "zedis slots: group 1 owns {:.1}% of the key space; {:.1}% of 10-key MSETs span both groups",
        share * 100.0,
        span * 100.0
    ));
    say("targets: direct = one master; twemproxy and zedis = both masters (no replicas)");

    if args.warmup_requests > 0 {
        let depth = args.pipelines.iter().copied().max().unwrap_or(1);
        eprintln!("warm-up: SET and GET, pipeline {depth}, {} requests per target ...", args.warmup_requests);
        for target in env.targets.clone() {
            for test in [Test::Set, Test::Get] {
                bench::run(&run_settings, &target, test, depth, args.warmup_requests)
                    .with_context(|| format!("warm-up against {}", target.name))?;
            }
        }
        env.check_running()?;
    }

    let mut records: Vec<Record> = Vec::new();
    let mut repeated = 0usize;
    let total = args.rounds * args.pipelines.len() * tests.len() * env.targets.len();
    for round in 1..=args.rounds {
        for &pipeline in &args.pipelines {
            for &test in &tests {
                // The three targets of one test back to back; again if the machine was busy
                // with something else meanwhile.
                let mut attempt = 0;
                let triple = loop {
                    attempt += 1;
                    let mut triple = Vec::new();
                    for target in env.targets.clone() {
                        let sample = bench::run(&run_settings, &target, test, pipeline, requests(pipeline))
                            .with_context(|| format!("round {round}"))?;
                        env.check_running()?;
                        eprintln!(
                            "[{:>3}/{total}] round {round} P{pipeline:<2} {:<4} {:<9} {:>10.0} rps  p50 {:.3}  p99 {:.3} ms  \
                             proxy {} µs/req  other {:.2} CPUs",
                            records.len() + triple.len() + 1,
                            test.label(),
                            target.name,
                            sample.rps,
                            sample.p50_ms,
                            sample.p99_ms,
                            sample
                                .proxy_cpu_us
                                .map(|u| format!("{:.2}", sample.per_request(u)))
                                .unwrap_or_else(|| "-".into()),
                            sample.other_cpus(),
                        );
                        triple.push((target.name, sample));
                    }
                    let busiest = triple.iter().map(|(_, s)| s.other_cpus()).fold(0.0, f64::max);
                    if busiest <= args.max_other_cpus || attempt > args.retries {
                        break triple;
                    }
                    repeated += 1;
                    eprintln!(
                        "      other processes used {busiest:.2} CPUs during one of these runs (more than \
                         --max-other-cpus {}); repeating them",
                        args.max_other_cpus
                    );
                };
                for (target, sample) in triple {
                    let disturbed = sample.other_cpus() > args.max_other_cpus;
                    records.push(Record { round, pipeline, test, target, sample, disturbed });
                }
            }
        }
    }
    let dir = env.dir().to_path_buf();
    drop(env);
    if args.keep_logs {
        eprintln!("logs kept in {}", dir.display());
    }

    let mut rows = Vec::new();
    for &pipeline in &args.pipelines {
        for &test in &tests {
            rows.push(Row {
                pipeline,
                test,
                requests: requests(pipeline),
                direct: report::summarize(&records, pipeline, test, "direct"),
                twemproxy: report::summarize(&records, pipeline, test, "twemproxy"),
                zedis: report::summarize(&records, pipeline, test, "zedis"),
            });
        }
    }
    for line in report::table(&rows) {
        say(&line);
    }
    say("");
    say("CPU columns: proxy = the proxy process; redis = both masters; client = redis-benchmark;");
    say("other = everything else on the machine; busy = CPUs busy on average during the run;");
    say("cs/req = context switches of the proxy's threads per request.");
    let disturbed = records.iter().filter(|r| r.disturbed).count();
    say(&format!(
        "noise gate: {repeated} test(s) repeated because other processes used more than {} CPUs; \
         {disturbed} of {} kept runs still disturbed",
        args.max_other_cpus,
        records.len()
    ));
    for line in report::goals(&rows) {
        say(&line);
    }

    if json {
        let summary = serde_json::json!({
            "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "redis_benchmark": version,
            "cpus": procs::cpus(),
            "loadavg_before": loadavg.trim(),
            "clients": args.clients,
            "keyspace": args.keyspace,
            "rounds": args.rounds,
            "pipelines": args.pipelines,
            "proxy_args": args.proxy_args,
            "zedis_group1_key_share": share,
            "zedis_mset_span_share": span,
            "max_other_cpus": args.max_other_cpus,
            "tests_repeated": repeated,
            "runs_disturbed": disturbed,
            "results": report::rows_json(&rows),
            "runs": report::records_json(&records),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}
