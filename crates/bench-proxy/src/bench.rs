//! One redis-benchmark run against one target, with the CPU time every process spent on it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::procs::{
    children_cpu_us, clock_ticks, machine_ticks, process_context_switches, process_ticks, ChildProcess,
};
use crate::setup::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Set,
    Get,
    Mset,
}

impl Test {
    pub fn parse(name: &str) -> Option<Test> {
        match name.to_ascii_lowercase().as_str() {
            "set" => Some(Test::Set),
            "get" => Some(Test::Get),
            "mset" => Some(Test::Mset),
            _ => None,
        }
    }

    /// redis-benchmark's `-t` name.
    pub fn arg(self) -> &'static str {
        match self {
            Test::Set => "set",
            Test::Get => "get",
            Test::Mset => "mset",
        }
    }

    /// The name in the report; redis-benchmark's CSV names start with it ("MSET (10 keys)").
    pub fn label(self) -> &'static str {
        match self {
            Test::Set => "SET",
            Test::Get => "GET",
            Test::Mset => "MSET",
        }
    }
}

/// What is the same for every run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub redis_benchmark: PathBuf,
    pub clients: u32,
    pub keyspace: u64,
    pub timeout: Duration,
    pub dir: PathBuf,
    pub redis_pids: Vec<u32>,
}

/// One run's figures. CPU times are totals over the run, in microseconds.
#[derive(Clone, Debug)]
pub struct Sample {
    pub requests: u64,
    pub rps: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub wall_s: f64,
    pub client_cpu_us: f64,
    pub proxy_cpu_us: Option<f64>,
    /// Context switches of the proxy's threads.
    pub proxy_switches: Option<u64>,
    pub redis_cpu_us: f64,
    /// All CPUs of the machine, busy time.
    pub machine_busy_us: f64,
}

impl Sample {
    /// CPU time outside the client, the proxy and the two masters (ZooKeeper, the controller,
    /// the idle proxy of the other side, anything else on the machine).
    pub fn other_cpu_us(&self) -> f64 {
        (self.machine_busy_us - self.client_cpu_us - self.proxy_cpu_us.unwrap_or(0.0) - self.redis_cpu_us).max(0.0)
    }

    /// CPUs used on average by [`Sample::other_cpu_us`] during the run.
    pub fn other_cpus(&self) -> f64 {
        self.other_cpu_us() / (self.wall_s * 1e6).max(1.0)
    }

    /// Microseconds of CPU per request.
    pub fn per_request(&self, us: f64) -> f64 {
        us / self.requests.max(1) as f64
    }
}

struct Counters {
    children_us: u64,
    proxy_ticks: Option<u64>,
    proxy_switches: Option<u64>,
    redis_ticks: u64,
    machine_busy: u64,
    at: Instant,
}

fn counters(target: &Target, redis_pids: &[u32]) -> Result<Counters> {
    let proxy_ticks = target.proxy_pid.map(process_ticks).transpose()?;
    let proxy_switches = target.proxy_pid.map(process_context_switches).transpose()?;
    let mut redis_ticks = 0;
    for pid in redis_pids {
        redis_ticks += process_ticks(*pid)?;
    }
    let (machine_busy, _) = machine_ticks()?;
    Ok(Counters {
        children_us: children_cpu_us(),
        proxy_ticks,
        proxy_switches,
        redis_ticks,
        machine_busy,
        at: Instant::now(),
    })
}

/// Runs `redis-benchmark -t TEST -P PIPELINE -n REQUESTS` against `target` and measures it.
pub fn run(settings: &RunSettings, target: &Target, test: Test, pipeline: u32, requests: u64) -> Result<Sample> {
    let out_path = settings.dir.join("redis-benchmark.out");
    let err_path = settings.dir.join("redis-benchmark.err");
    let (host, port) = target.addr.rsplit_once(':').context("target address without a port")?;
    let mut command = Command::new(&settings.redis_benchmark);
    command
        .args(["-h", host, "-p", port])
        .args(["-c", &settings.clients.to_string()])
        .args(["-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string()])
        .args(["-r", &settings.keyspace.to_string()])
        .args(["-t", test.arg()])
        .arg("--csv");

    let before = counters(target, &settings.redis_pids)?;
    let stdout = File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
    let stderr = File::create(&err_path).with_context(|| format!("cannot create {}", err_path.display()))?;
    let mut child =
        ChildProcess::spawn_with("redis-benchmark", command, Stdio::from(stdout), Stdio::from(stderr), &err_path)?;
    let status = child.wait_deadline(settings.timeout)?;
    drop(child);
    let after = counters(target, &settings.redis_pids)?;

    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    let context =
        || format!("redis-benchmark -t {} -P {pipeline} against {} ({})", test.arg(), target.name, target.addr);
    // redis-benchmark 7 exits non-zero at the first error reply ("... replied with error").
    if !status.success() {
        bail!("{} exited ({status}): {} {}", context(), out.trim(), err.trim());
    }
    let row = parse_csv(&out, test).with_context(|| format!("{}: unexpected output {:?}", context(), out.trim()))?;

    let tick_us = 1e6 / clock_ticks();
    let ticks = |a: u64, b: u64| b.saturating_sub(a) as f64 * tick_us;
    Ok(Sample {
        requests,
        rps: row.rps,
        avg_ms: row.avg_ms,
        p50_ms: row.p50_ms,
        p99_ms: row.p99_ms,
        max_ms: row.max_ms,
        wall_s: after.at.duration_since(before.at).as_secs_f64(),
        client_cpu_us: after.children_us.saturating_sub(before.children_us) as f64,
        proxy_cpu_us: match (before.proxy_ticks, after.proxy_ticks) {
            (Some(a), Some(b)) => Some(ticks(a, b)),
            _ => None,
        },
        proxy_switches: match (before.proxy_switches, after.proxy_switches) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        redis_cpu_us: ticks(before.redis_ticks, after.redis_ticks),
        machine_busy_us: ticks(before.machine_busy, after.machine_busy),
    })
}

struct Row {
    rps: f64,
    avg_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// redis-benchmark 7's CSV: a header
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`
/// and a row per test. Columns are found by name.
fn parse_csv(out: &str, test: Test) -> Result<Row> {
    let mut lines = out.lines().filter(|l| l.starts_with('"'));
    let header: Vec<&str> = lines.next().context("no CSV header")?.split(',').map(unquote).collect();
    let col = |name: &str| header.iter().position(|h| *h == name).with_context(|| format!("no column {name:?}"));
    let (c_test, c_rps, c_avg, c_p50, c_p99, c_max) = (
        col("test")?,
        col("rps")?,
        col("avg_latency_ms")?,
        col("p50_latency_ms")?,
        col("p99_latency_ms")?,
        col("max_latency_ms")?,
    );
    for line in lines {
        let fields: Vec<&str> = line.split(',').map(unquote).collect();
        let name = fields.get(c_test).copied().unwrap_or_default();
        if name == test.label() || name.starts_with(&format!("{} ", test.label())) {
            let num = |c: usize| -> Result<f64> {
                fields.get(c).and_then(|f| f.parse().ok()).with_context(|| format!("bad field {c} in {line:?}"))
            };
            return Ok(Row {
                rps: num(c_rps)?,
                avg_ms: num(c_avg)?,
                p50_ms: num(c_p50)?,
                p99_ms: num(c_p99)?,
                max_ms: num(c_max)?,
            });
        }
    }
    bail!("no row for {}", test.label())
}

/// Checks that redis-benchmark exists and has `--csv` with latency columns.
pub fn check_redis_benchmark(bin: &Path) -> Result<String> {
    let output = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {} (install redis-tools)", bin.display()))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_7_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"MSET (10 keys)\",\"202020.20\",\"3.872\",\"0.264\",\"3.447\",\"6.303\",\"9.471\",\"9.567\"\n";
        let row = parse_csv(out, Test::Mset).unwrap();
        assert_eq!(row.rps, 202020.20);
        assert_eq!(row.p50_ms, 3.447);
        assert_eq!(row.p99_ms, 9.471);
        assert!(parse_csv(out, Test::Set).is_err());
    }
}
