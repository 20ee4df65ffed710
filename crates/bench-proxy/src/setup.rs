//! Everything the benchmark runs against: ZooKeeper, two Redis masters, the zedis cluster
//! (created with the `zedis` binary), a zedis controller and proxy, and twemproxy
//! (`nutcracker`) over the same two masters.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use zedis_testkit::{free_port, RedisOptions, RedisServer, ZkOptions, ZkServer};
use zedis_topology::{key_slot, ClusterSettings, GroupSpec, Server, Topology};

use crate::procs::ChildProcess;

const CLUSTER: &str = "default";
const ROOT: &str = "/zedis";
/// Pause between readiness probes.
const POLL: Duration = Duration::from_millis(50);
/// Timeout of one readiness probe (connect, read).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the setup needs from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub zedis_bin: PathBuf,
    pub nutcracker_bin: PathBuf,
    /// Deadline of every wait during setup.
    pub timeout: Duration,
    pub keep_logs: bool,
    /// Extra arguments for `zedis proxy`.
    pub proxy_args: Vec<String>,
    /// Keys `key:000000000000` .. written to both masters before the runs.
    pub keyspace: u64,
}

/// Where redis-benchmark connects, and the proxy process whose CPU time is counted.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: &'static str,
    pub addr: String,
    pub proxy_pid: Option<u32>,
}

/// A working directory: temporary, or kept when `--keep-logs` says so.
pub struct WorkDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn create(prefix: &str, keep: bool) -> Result<WorkDir> {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        if keep {
            let path = temp.keep();
            Ok(WorkDir { path, _temp: None })
        } else {
            Ok(WorkDir { path: temp.path().to_path_buf(), _temp: Some(temp) })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every process. Fields drop in order: the proxies first, the masters and ZooKeeper after
/// them, the directory (with all logs) last.
pub struct Env {
    nutcracker: ChildProcess,
    proxy: ChildProcess,
    controller: ChildProcess,
    masters: Vec<RedisServer>,
    zk: ZkServer,
    pub targets: Vec<Target>,
    dir: WorkDir,
}

/// `$ZEDIS_BIN` / `--zedis-bin`, or `zedis` next to this executable (both are built into
/// `target/release`).
pub fn zedis_binary(flag: Option<PathBuf>) -> Result<PathBuf> {
    let path = match flag {
        Some(path) => path,
        None => {
            let exe = std::env::current_exe().context("cannot find this executable's path")?;
            exe.parent().unwrap_or(Path::new(".")).join("zedis")
        }
    };
    if !path.is_file() {
        bail!(
            "zedis binary {} not found: build it with `cargo build --release -p zedis-cli`, or set ZEDIS_BIN",
            path.display()
        );
    }
    Ok(path)
}

fn zedis_command(settings: &Settings, zk: &str) -> Command {
    let mut command = Command::new(&settings.zedis_bin);
    // RUST_LOG would override `--log`; the proxy should log as little as it does by default.
    command.env_remove("RUST_LOG").args(["--zk", zk, "--root", ROOT, "--cluster", CLUSTER]);
    command
}

impl Env {
    /// Starts everything, waits until both proxies serve, and writes the key space to both
    /// masters.
    pub fn start(settings: &Settings) -> Result<Env> {
        if !settings.nutcracker_bin.is_file() {
            bail!(
                "{} not found: install it with `apt-get install -y nutcracker`, or pass --nutcracker-bin",
                settings.nutcracker_bin.display()
            );
        }
        let dir = WorkDir::create("zedis-bench-proxy-", settings.keep_logs)?;
        let zk = ZkServer::start_with(ZkOptions { dir: Some(dir.path().join("zookeeper")), ..ZkOptions::default() })
            .context("ZooKeeper does not start")?;
        let mut masters = Vec::new();
        for name in ["a", "b"] {
            let opts = RedisOptions { dir: Some(dir.path().join(format!("redis-{name}"))), ..RedisOptions::default() };
            masters.push(RedisServer::start_with(opts).context("redis-server does not start")?);
        }
        let zk_addr = zk.connect_string();

        // The cluster: one group per master, no replicas.
        let output = zedis_command(settings, &zk_addr)
            .args(["cluster", "create", "--group", &masters[0].addr(), "--group", &masters[1].addr()])
            .output()
            .with_context(|| format!("cannot run {}", settings.zedis_bin.display()))?;
        if !output.status.success() {
            bail!(
                "zedis cluster create failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }

        let mut command = zedis_command(settings, &zk_addr);
        command.args(["--log", "info", "controller", "--id", "bench"]);
        let controller = ChildProcess::spawn("zedis controller", command, &dir.path().join("controller.log"))?;

        let proxy_addr = format!("127.0.0.1:{}", free_port()?);
        let mut command = zedis_command(settings, &zk_addr);
        command.args(["--log", "warn", "proxy", "--listen", &proxy_addr, "--id", "bench-proxy"]);
        command.args(&settings.proxy_args);
        let proxy = ChildProcess::spawn("zedis proxy", command, &dir.path().join("proxy.log"))?;

        let twem_addr = format!("127.0.0.1:{}", free_port()?);
        let nutcracker = start_nutcracker(settings, dir.path(), &twem_addr, &masters)?;

        let targets = vec![
            Target { name: "direct", addr: masters[0].addr(), proxy_pid: None },
            Target { name: "twemproxy", addr: twem_addr, proxy_pid: Some(nutcracker.pid()) },
            Target { name: "zedis", addr: proxy_addr, proxy_pid: Some(proxy.pid()) },
        ];
        let mut env = Env { nutcracker, proxy, controller, masters, zk, targets, dir };
        env.wait_zedis_proxy(settings.timeout)?;
        env.wait_twemproxy(settings.timeout)?;
        for m in &env.masters {
            populate(&m.addr(), settings.keyspace, settings.timeout)
                .with_context(|| format!("writing the key space to {}", m.addr()))?;
        }
        Ok(env)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn zedis(&self) -> &Target {
        &self.targets[2]
    }

    pub fn twemproxy(&self) -> &Target {
        &self.targets[1]
    }

    pub fn redis_pids(&self) -> Vec<u32> {
        self.masters.iter().filter_map(RedisServer::pid).collect()
    }

    pub fn master_addrs(&self) -> Vec<String> {
        self.masters.iter().map(RedisServer::addr).collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "ZooKeeper {}, masters {} (pids {:?}), zedis proxy {} (pid {}), twemproxy {} (pid {}), controller pid {}",
            self.zk.connect_string(),
            self.master_addrs().join(" "),
            self.redis_pids(),
            self.zedis().addr,
            self.proxy.pid(),
            self.twemproxy().addr,
            self.nutcracker.pid(),
            self.controller.pid()
        )
    }

    /// Fails if a process we depend on has exited.
    pub fn check_running(&mut self) -> Result<()> {
        crate::procs::check_interrupted()?;
        self.controller.check_running()?;
        self.proxy.check_running()?;
        self.nutcracker.check_running()?;
        for m in &mut self.masters {
            if !m.is_running() {
                bail!("redis-server {} exited; log {}", m.addr(), m.log_path().display());
            }
        }
        Ok(())
    }

    /// Until the zedis proxy reports topology epoch >= 1 in `INFO cluster` and a SET through it
    /// succeeds.
    fn wait_zedis_proxy(&mut self, timeout: Duration) -> Result<()> {
        let addr = self.zedis().addr.clone();
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let last = match zedis_ready(&addr) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                bail!(
                    "the zedis proxy {addr} was not ready within {timeout:?}: {last}\n{}\n{}",
                    self.proxy.log_tail(),
                    self.controller.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Until twemproxy answers PING and a SET through it succeeds.
    fn wait_twemproxy(&mut self, timeout: Duration) -> Result<()> {
        let addr = self.twemproxy().addr.clone();
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let last = match twemproxy_ready(&addr) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                bail!("twemproxy {addr} was not ready within {timeout:?}: {last}\n{}", self.nutcracker.log_tail());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A blocking connection with `timeout` on connect, reads and writes. No `CLIENT SETINFO`
/// on connect: twemproxy refuses `CLIENT` and would close the connection.
fn connect(addr: &str, timeout: Duration) -> Result<redis::Connection, String> {
    let info = redis::IntoConnectionInfo::into_connection_info(format!("redis://{addr}/"))
        .map_err(|e| format!("{addr}: {e}"))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(|e| format!("{addr}: {e}"))?;
    let conn = client.get_connection_with_timeout(timeout).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    Ok(conn)
}

fn expect_ok(conn: &mut redis::Connection, args: &[&str]) -> Result<(), String> {
    match redis::cmd(args[0]).arg(&args[1..]).query::<String>(conn) {
        Ok(s) if s == "OK" => Ok(()),
        Ok(other) => Err(format!("{} answered {other:?}", args[0])),
        Err(e) => Err(format!("{}: {e}", args[0])),
    }
}

fn zedis_ready(addr: &str) -> Result<(), String> {
    let mut conn = connect(addr, PROBE_TIMEOUT)?;
    let info: String = redis::cmd("INFO").arg("cluster").query(&mut conn).map_err(|e| format!("INFO cluster: {e}"))?;
    let epoch = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("topology_epoch:"))
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if epoch < 1 {
        return Err(format!("INFO cluster shows no topology yet: {:?}", info.trim()));
    }
    expect_ok(&mut conn, &["SET", "bench:ready", "zedis"])
}

fn twemproxy_ready(addr: &str) -> Result<(), String> {
    let mut conn = connect(addr, PROBE_TIMEOUT)?;
    match redis::cmd("PING").query::<String>(&mut conn) {
        Ok(s) if s == "PONG" => {}
        Ok(other) => return Err(format!("PING answered {other:?}")),
        Err(e) => return Err(format!("PING: {e}")),
    }
    expect_ok(&mut conn, &["SET", "bench:ready", "twemproxy"])
}

/// twemproxy over the two masters: ketama over fnv1a_64, as commonly deployed, and no host
/// ejection (a benchmark wants errors, not silently re-routed keys).
fn start_nutcracker(settings: &Settings, dir: &Path, listen: &str, masters: &[RedisServer]) -> Result<ChildProcess> {
    let servers: String = masters.iter().map(|m| format!("    - {}:1\n", m.addr())).collect();
    let conf = format!(
        "bench:\n  listen: {listen}\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  \
         auto_eject_hosts: false\n  servers:\n{servers}"
    );
    let conf_path = dir.join("nutcracker.yml");
    fs::write(&conf_path, conf).with_context(|| format!("cannot write {}", conf_path.display()))?;
    let log = dir.join("nutcracker.log");
    let stats_port = free_port()?;
    let mut command = Command::new(&settings.nutcracker_bin);
    command.arg("--conf-file").arg(&conf_path);
    command.args(["--stats-addr", "127.0.0.1", "--stats-port", &stats_port.to_string(), "--verbose", "4"]);
    command.arg("--output").arg(&log).arg("--pid-file").arg(dir.join("nutcracker.pid"));
    ChildProcess::spawn("nutcracker", command, &log)
}

/// Writes `key:%012d` = `xxx` (what redis-benchmark's SET writes) for the whole key space,
/// so every GET finds its key whichever server a target sends it to.
fn populate(addr: &str, keyspace: u64, timeout: Duration) -> Result<()> {
    const BATCH: u64 = 500;
    let mut conn = connect(addr, timeout).map_err(anyhow::Error::msg)?;
    let mut pipe = redis::pipe();
    let mut start = 0;
    while start < keyspace {
        let end = (start + BATCH).min(keyspace);
        let mset = pipe.cmd("MSET");
        for i in start..end {
            mset.arg(format!("key:{i:012}")).arg("xxx");
        }
        start = end;
    }
    let replies: Vec<String> = pipe.query(&mut conn).context("MSET")?;
    if let Some(other) = replies.iter().find(|r| *r != "OK") {
        bail!("MSET answered {other:?}");
    }
    Ok(())
}

/// How the zedis cluster spreads redis-benchmark's keys: the share of the key space the
/// first group owns, and the share of 10-key MSETs that span both groups.
pub fn key_spread(masters: &[String], keyspace: u64) -> Result<(f64, f64)> {
    let specs: Vec<GroupSpec> = masters.iter().map(|m| GroupSpec { servers: vec![Server::new(m.clone())] }).collect();
    // `zedis cluster create` builds the same topology from the same groups.
    let topology = Topology::new(CLUSTER, &specs, ClusterSettings::default())?;
    let first = topology.groups.first().map(|g| g.id).context("no group")?;
    let keyspace = keyspace.max(1);
    let mut in_first = 0u64;
    for i in 0..keyspace {
        let key = format!("key:{i:012}");
        if topology.slot_owner(key_slot(key.as_bytes())).is_some_and(|g| g.id == first) {
            in_first += 1;
        }
    }
    let p = in_first as f64 / keyspace as f64;
    Ok((p, 1.0 - p.powi(10) - (1.0 - p).powi(10)))
}
