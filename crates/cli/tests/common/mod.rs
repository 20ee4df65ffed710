//! Shared harness for the end-to-end tests: a real ZooKeeper, real Redis groups, `zedis
//! controller` child processes (killed on drop), the `zedis` CLI run as a subprocess, and
//! polling with deadlines. When a test panics, the harness prints every controller's log, the
//! last `status --json`, the event history and the tail of each Redis log (also on success
//! when `ZEDIS_E2E_DUMP` is set).
#![allow(dead_code)]

pub mod background;

// Not every test file uses it.
#[allow(unused_imports)]
pub use background::Background;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zedis_testkit::{RedisOptions, RedisServer, ZkEnsemble, ZkServer};

/// The `zedis` binary under test.
pub const ZEDIS: &str = env!("CARGO_BIN_EXE_zedis");

/// ZooKeeper session timeout given to controllers (the testkit's ZooKeeper allows 400 ms+).
pub const SESSION_TIMEOUT_MS: u64 = 2000;

/// Longest any single CLI invocation may run before the harness kills it.
const CLI_HARD_LIMIT: Duration = Duration::from_secs(60);

/// How often `wait_until` polls.
const POLL: Duration = Duration::from_millis(100);

/// Lines of each log printed when a test fails.
const LOG_TAIL: usize = 150;

/// A Redis server started the way these tests want it (fast diskless full syncs).
pub fn start_redis() -> RedisServer {
    RedisServer::start_with(RedisOptions {
        extra_args: vec!["--repl-diskless-sync-delay".into(), "0".into()],
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("redis-server did not start: {e}"))
}

/// The result of one `zedis` invocation.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    /// Exit code; `None` if killed by a signal (or by the harness after `CLI_HARD_LIMIT`).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// For assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`zedis {}` exited with {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `zedis` with exactly `args` (no global flags added). Never hangs the test: the
/// process is killed after [`CLI_HARD_LIMIT`].
pub fn zedis_raw(args: &[&str]) -> Out {
    let started = Instant::now();
    let mut child = Command::new(ZEDIS)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ZEDIS_ZK")
        .env_remove("ZEDIS_CLUSTER")
        .env_remove("ZEDIS_ROOT")
        .env_remove("ZEDIS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {ZEDIS}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() > CLI_HARD_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for zedis: {e}"),
        }
    };
    Out {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// A `zedis controller` child process; SIGKILLed and reaped on drop.
pub struct Controller {
    pub id: String,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl Controller {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The test's ZooKeeper: one standalone server or an ensemble.
pub enum Zoo {
    Single(ZkServer),
    Ensemble(ZkEnsemble),
}

impl Zoo {
    /// The connect string of every node.
    pub fn connect_string(&self) -> String {
        match self {
            Zoo::Single(z) => z.connect_string(),
            Zoo::Ensemble(e) => e.connect_string(),
        }
    }

    pub fn single(&mut self) -> &mut ZkServer {
        match self {
            Zoo::Single(z) => z,
            Zoo::Ensemble(_) => panic!("this test runs a ZooKeeper ensemble, not a single server"),
        }
    }

    pub fn ensemble(&mut self) -> &mut ZkEnsemble {
        match self {
            Zoo::Ensemble(e) => e,
            Zoo::Single(_) => panic!("this test runs a single ZooKeeper server, not an ensemble"),
        }
    }

    /// Every ZooKeeper server (one, or the ensemble's members in order).
    pub fn nodes(&self) -> Vec<&ZkServer> {
        match self {
            Zoo::Single(z) => vec![z],
            Zoo::Ensemble(e) => e.nodes().iter().collect(),
        }
    }
}

/// One test's world: ZooKeeper, Redis groups, controllers and a directory for their logs.
pub struct Harness {
    pub test: String,
    pub cluster: String,
    pub controllers: Vec<Controller>,
    /// `groups[g][0]` is the master the cluster is created with, the rest its replicas.
    pub groups: Vec<Vec<RedisServer>>,
    pub zk: Zoo,
    pub dir: tempfile::TempDir,
    started: Instant,
}

impl Harness {
    /// Starts ZooKeeper and Redis groups of the given sizes (nothing is created in ZooKeeper
    /// yet; see [`Harness::create_cluster`]).
    pub fn start(test: &str, group_sizes: &[usize]) -> Harness {
        let started = Instant::now();
        let zk = ZkServer::start().unwrap_or_else(|e| panic!("[{test}] zookeeper did not start: {e}"));
        Harness::with_zoo(test, Zoo::Single(zk), group_sizes, started)
    }

    /// Like [`Harness::start`] with a ZooKeeper ensemble of `nodes` servers.
    pub fn start_ensemble(test: &str, nodes: usize, group_sizes: &[usize]) -> Harness {
        let started = Instant::now();
        let zk = ZkEnsemble::start(nodes).unwrap_or_else(|e| panic!("[{test}] zookeeper ensemble did not start: {e}"));
        Harness::with_zoo(test, Zoo::Ensemble(zk), group_sizes, started)
    }

    fn with_zoo(test: &str, zk: Zoo, group_sizes: &[usize], started: Instant) -> Harness {
        let groups = group_sizes.iter().map(|n| (0..*n).map(|_| start_redis()).collect()).collect();
        let dir = tempfile::Builder::new().prefix("zedis-e2e-").tempdir().expect("temporary directory");
        let h = Harness {
            test: test.to_string(),
            cluster: test.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
            controllers: Vec::new(),
            groups,
            zk,
            dir,
            started,
        };
        h.phase(&format!("servers up: zookeeper {}, redis groups {:?}", h.zk.connect_string(), h.addrs()));
        h
    }

    /// Prints a phase line with the time since the start of the test.
    pub fn phase(&self, what: &str) {
        eprintln!("[{} +{:.2}s] phase: {what}", self.test, self.started.elapsed().as_secs_f64());
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Addresses of every group, master first.
    pub fn addrs(&self) -> Vec<Vec<String>> {
        self.groups.iter().map(|g| g.iter().map(|r| r.addr()).collect()).collect()
    }

    pub fn addr(&self, group: usize, i: usize) -> String {
        self.groups[group][i].addr()
    }

    /// The Redis server (of any group) listening on `addr`.
    pub fn redis(&mut self, addr: &str) -> &mut RedisServer {
        self.groups
            .iter_mut()
            .flatten()
            .find(|r| r.addr() == addr)
            .unwrap_or_else(|| panic!("no redis server at {addr} in this harness"))
    }

    /// `zedis --zk .. --cluster .. ARGS`.
    pub fn zedis(&self, args: &[&str]) -> Out {
        let zk = self.zk.connect_string();
        let mut all = vec!["--zk", zk.as_str(), "--cluster", self.cluster.as_str(), "--zk-timeout-ms", "3000"];
        all.extend_from_slice(args);
        zedis_raw(&all)
    }

    /// Like [`Harness::zedis`] but the command must succeed; returns its stdout.
    pub fn zedis_ok(&self, args: &[&str]) -> String {
        let out = self.zedis(args);
        assert!(out.ok(), "[{}] expected success:\n{}", self.test, out.describe());
        out.stdout
    }

    /// Like [`Harness::zedis`] but the command must fail with a one-line error on stderr that
    /// contains `needle`; returns that line.
    pub fn zedis_fails(&self, args: &[&str], needle: &str) -> String {
        let out = self.zedis(args);
        expect_one_line_error(&out, needle)
    }

    /// `cluster create` with each group's master first, and the given extra flags.
    pub fn create_cluster(&self, extra: &[&str]) -> String {
        let specs: Vec<String> = self.addrs().iter().map(|g| g.join(",")).collect();
        let mut args = vec!["cluster", "create"];
        for s in &specs {
            args.push("--group");
            args.push(s);
        }
        args.extend_from_slice(extra);
        self.zedis_ok(&args)
    }

    /// Spawns `zedis controller --id ID` with its output in a log file.
    pub fn spawn_controller(&mut self, id: &str) {
        let hosts = self.zk.connect_string();
        self.spawn_controller_with(id, &hosts);
    }

    /// Like [`Harness::spawn_controller`] with its own ZooKeeper connect string.
    pub fn spawn_controller_with(&mut self, id: &str, zk_hosts: &str) {
        let log_path = self.dir.path().join(format!("controller-{id}.log"));
        let log = File::create(&log_path).expect("controller log file");
        let log2 = log.try_clone().expect("controller log file");
        let session = SESSION_TIMEOUT_MS.to_string();
        let mut cmd = Command::new(ZEDIS);
        cmd.args(["--zk", zk_hosts, "--cluster", &self.cluster])
            .args(["--session-timeout-ms", &session, "--log", "info", "controller", "--id", id])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: prctl is async-signal-safe; it makes the controller die with this test
        // process even if the test is killed before any destructor runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn a controller: {e}"));
        self.phase(&format!("controller {id} started (pid {})", child.id()));
        self.controllers.push(Controller { id: id.to_string(), log_path, child: Some(child) });
    }

    pub fn controller(&mut self, id: &str) -> &mut Controller {
        self.controllers.iter_mut().find(|c| c.id == id).unwrap_or_else(|| panic!("no controller {id}"))
    }

    /// `status --json`, parsed; `Err` with the CLI's output when it fails.
    pub fn try_status(&self) -> Result<Value, String> {
        let out = self.zedis(&["status", "--json"]);
        if !out.ok() {
            return Err(out.describe());
        }
        serde_json::from_str(&out.stdout).map_err(|e| format!("status --json is not JSON ({e}):\n{}", out.stdout))
    }

    pub fn status(&self) -> Value {
        self.try_status().unwrap_or_else(|e| panic!("[{}] status failed: {e}", self.test))
    }

    /// `cluster events --json -n 1000`, parsed.
    pub fn events(&self) -> Vec<Value> {
        let out = self.zedis(&["cluster", "events", "--json", "-n", "1000"]);
        assert!(out.ok(), "[{}] events failed:\n{}", self.test, out.describe());
        match serde_json::from_str::<Value>(&out.stdout) {
            Ok(Value::Array(events)) => events,
            other => panic!("[{}] events --json is not a JSON array: {other:?}\n{}", self.test, out.stdout),
        }
    }

    /// Polls `check` every 100 ms until it returns `Ok`, for at most `timeout`; panics with
    /// `what` and the last `Err` otherwise (the logs follow, printed on drop).
    pub fn wait_until<T>(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            match check() {
                Ok(v) => {
                    eprintln!(
                        "[{} +{:.2}s]   ok after {:.2}s: {what}",
                        self.test,
                        self.started.elapsed().as_secs_f64(),
                        started.elapsed().as_secs_f64()
                    );
                    return v;
                }
                Err(last) if Instant::now() >= deadline => {
                    panic!("[{}] timed out after {timeout:?} waiting for: {what}\nlast check said: {last}", self.test)
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Waits until the controllers have set everything up: a leader is elected, every
    /// replica replicates its group's master with the link up, every master runs as master,
    /// and the managed settings are applied everywhere. Returns the status.
    pub fn wait_settled(&self, timeout: Duration) -> Value {
        self.wait_until(timeout, "cluster settled (leader, replication links up, settings applied)", || {
            let st = self.try_status()?;
            if st["leader"].is_null() {
                return Err(format!("no leader yet: {st}"));
            }
            for g in groups(&st) {
                let master = g["master"].as_str().ok_or("group without master")?.to_string();
                let info = info_replication(&master)?;
                if info.get("role").map(String::as_str) != Some("master") {
                    return Err(format!("{master} should be master: {info:?}"));
                }
                check_managed_config(&master)?;
                for r in g["replicas"].as_array().ok_or("no replicas array")? {
                    let r = r.as_str().ok_or("replica not a string")?;
                    replicates(r, &master)?;
                    check_managed_config(r)?;
                    // The replica's link can be up before its master counts it online (after
                    // a diskless sync, at the replica's first ACK, up to a second later);
                    // until then `WAIT` does not count it.
                    online_at_master(&info, r)?;
                }
                for s in g["servers"].as_array().ok_or("no servers array")? {
                    if s["health"] != "up" {
                        return Err(format!("server not healthy in status: {s}"));
                    }
                }
            }
            Ok(st)
        })
    }

    /// Waits until status shows `addr` as master of `group` (1-based id) and returns it.
    pub fn wait_master(&self, group: u64, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> Value {
        self.wait_until(timeout, what, || {
            let st = self.try_status()?;
            let m = master_of(&st, group);
            if pred(&m) {
                Ok(st)
            } else {
                Err(format!("master of group {group} is {m}; epoch {}", st["epoch"]))
            }
        })
    }

    /// Everything useful to read when a test failed.
    pub fn dump(&self) {
        eprintln!("==================== [{}] diagnostics ====================", self.test);
        for c in &self.controllers {
            eprintln!("---- controller {} log ({}) ----", c.id, c.log_path.display());
            eprintln!("{}", tail(&c.log(), LOG_TAIL));
        }
        let status = self.zedis(&["status", "--json"]);
        eprintln!("---- status --json ----\n{}", status.describe());
        let events = self.zedis(&["cluster", "events", "-n", "100"]);
        eprintln!("---- cluster events ----\n{}", events.describe());
        for r in self.groups.iter().flatten() {
            eprintln!("---- redis {} log tail ----", r.addr());
            eprintln!("{}", tail(&r.log(), 25));
            match info_replication(&r.addr()) {
                Ok(info) => eprintln!("INFO replication: {info:?}"),
                Err(e) => eprintln!("INFO replication: {e}"),
            }
        }
        for z in self.zk.nodes() {
            eprintln!("---- zookeeper {} log tail ----\n{}", z.connect_string(), tail(&z.log(), 30));
        }
        eprintln!("==================== end of [{}] diagnostics ====================", self.test);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("ZEDIS_E2E_DUMP").is_some() {
            // Frozen servers would make the diagnostics hang on timeouts; wake them first.
            for r in self.groups.iter().flatten() {
                r.sigcont();
            }
            self.dump();
        }
        // Controllers go first so they do not log a storm of errors about dying servers.
        for c in &mut self.controllers {
            c.kill9();
        }
        eprintln!("[{} +{:.2}s] done", self.test, self.started.elapsed().as_secs_f64());
    }
}

/// Asserts a failed command with a single `zedis: ...` line on stderr containing `needle`.
pub fn expect_one_line_error(out: &Out, needle: &str) -> String {
    assert!(!out.ok() && out.code.is_some(), "expected a clean failure:\n{}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr:\n{}", out.describe());
    let line = lines[0];
    assert!(line.starts_with("zedis: "), "the error line should start with `zedis: `:\n{}", out.describe());
    assert!(
        line.to_lowercase().contains(&needle.to_lowercase()),
        "the error should mention {needle:?}:\n{}",
        out.describe()
    );
    line.to_string()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- status --json accessors ----

pub fn groups(st: &Value) -> Vec<Value> {
    st["groups"].as_array().cloned().unwrap_or_default()
}

pub fn group(st: &Value, id: u64) -> Value {
    groups(st)
        .into_iter()
        .find(|g| g["id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("no group {id} in status: {st:#}"))
}

pub fn master_of(st: &Value, id: u64) -> String {
    group(st, id)["master"].as_str().unwrap_or_else(|| panic!("group {id} has no master: {st:#}")).to_string()
}

pub fn replicas_of(st: &Value, id: u64) -> Vec<String> {
    group(st, id)["replicas"]
        .as_array()
        .unwrap_or_else(|| panic!("group {id} has no replicas array: {st:#}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn epoch(st: &Value) -> u64 {
    st["epoch"].as_u64().unwrap_or_else(|| panic!("status has no epoch: {st:#}"))
}

/// A server's entry in status (from whichever group lists it).
pub fn server(st: &Value, addr: &str) -> Option<Value> {
    groups(st)
        .into_iter()
        .flat_map(|g| g["servers"].as_array().cloned().unwrap_or_default())
        .find(|s| s["addr"] == addr)
}

pub fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("bad address {addr}"))
}

// ---- direct Redis access ----

/// A connection with 2 s connect/read/write timeouts.
pub fn redis_conn(addr: &str) -> Result<redis::Connection, String> {
    redis_conn_with(addr, Duration::from_secs(2))
}

pub fn redis_conn_with(addr: &str, timeout: Duration) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| format!("{addr}: {e}"))?;
    let conn = client.get_connection_with_timeout(timeout).map_err(|e| format!("{addr}: connect: {e}"))?;
    conn.set_read_timeout(Some(timeout)).map_err(|e| format!("{addr}: {e}"))?;
    conn.set_write_timeout(Some(timeout)).map_err(|e| format!("{addr}: {e}"))?;
    Ok(conn)
}

/// `INFO replication` as key → value.
pub fn info_replication(addr: &str) -> Result<BTreeMap<String, String>, String> {
    let mut conn = redis_conn(addr)?;
    let text: String =
        redis::cmd("INFO").arg("replication").query(&mut conn).map_err(|e| format!("{addr}: INFO: {e}"))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// `Ok` when `addr` runs as a replica of `master` with the link up.
pub fn replicates(addr: &str, master: &str) -> Result<(), String> {
    let info = info_replication(addr)?;
    let want_port = port_of(master).to_string();
    let ok = info.get("role").map(String::as_str) == Some("slave")
        && info.get("master_port") == Some(&want_port)
        && info.get("master_link_status").map(String::as_str) == Some("up");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{addr} should replicate {master} with the link up; INFO says role={:?} master_port={:?} link={:?}",
            info.get("role"),
            info.get("master_port"),
            info.get("master_link_status")
        ))
    }
}

/// `Ok` when the controller's managed settings are in place on `addr` (defaults of
/// `ClusterSettings`: repl-timeout 5, repl-ping-replica-period 1).
/// `replica` is listed `state=online` in its master's `INFO replication` (`info`).
pub fn online_at_master(info: &BTreeMap<String, String>, replica: &str) -> Result<(), String> {
    let port = format!("port={}", port_of(replica));
    let online = info
        .iter()
        .filter(|(k, _)| k.starts_with("slave"))
        .any(|(_, v)| v.split(',').any(|f| f == port) && v.split(',').any(|f| f == "state=online"));
    if online {
        Ok(())
    } else {
        Err(format!("{replica} is not online at its master yet: {info:?}"))
    }
}

pub fn check_managed_config(addr: &str) -> Result<(), String> {
    let mut conn = redis_conn(addr)?;
    let got: BTreeMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("repl-timeout")
        .arg("repl-ping-replica-period")
        .query(&mut conn)
        .map_err(|e| format!("{addr}: CONFIG GET: {e}"))?;
    if got.get("repl-timeout").map(String::as_str) == Some("5")
        && got.get("repl-ping-replica-period").map(String::as_str) == Some("1")
    {
        Ok(())
    } else {
        Err(format!("{addr}: managed settings not applied yet: {got:?}"))
    }
}

pub fn set(addr: &str, key: &str, value: &str) -> Result<(), String> {
    let mut conn = redis_conn(addr)?;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<String>(&mut conn)
        .map(|_| ())
        .map_err(|e| format!("{addr}: SET: {e}"))
}

pub fn get(addr: &str, key: &str) -> Result<Option<String>, String> {
    let mut conn = redis_conn(addr)?;
    redis::cmd("GET").arg(key).query(&mut conn).map_err(|e| format!("{addr}: GET: {e}"))
}

/// Writes `n` keys `prefix:i = i` to `master` and waits (`WAIT`) until `replicas` replicas
/// have them all.
pub fn write_keys(master: &str, prefix: &str, n: usize, replicas: usize) -> Result<(), String> {
    let mut conn = redis_conn(master)?;
    for i in 0..n {
        redis::cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(i.to_string())
            .query::<String>(&mut conn)
            .map_err(|e| format!("{master}: SET: {e}"))?;
    }
    let acked: i64 =
        redis::cmd("WAIT").arg(replicas).arg(5000).query(&mut conn).map_err(|e| format!("{master}: WAIT: {e}"))?;
    if acked < replicas as i64 {
        return Err(format!("{master}: only {acked} of {replicas} replicas acknowledged the writes"));
    }
    Ok(())
}

/// Checks that `addr` holds `prefix:i = i` for every `i` in `keys`.
pub fn check_keys(addr: &str, prefix: &str, keys: &[u64]) -> Result<(), String> {
    let mut conn = redis_conn_with(addr, Duration::from_secs(10))?;
    let mut missing = Vec::new();
    for chunk in keys.chunks(1000) {
        let names: Vec<String> = chunk.iter().map(|i| format!("{prefix}:{i}")).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&names).query(&mut conn).map_err(|e| format!("{addr}: MGET: {e}"))?;
        for (i, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(i.to_string().as_str()) {
                missing.push((*i, v));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{addr}: {} of {} keys missing or wrong, first ones: {:?}",
            missing.len(),
            keys.len(),
            &missing[..missing.len().min(20)]
        ))
    }
}

/// True if nothing listens on `addr` right now.
pub fn refuses(addr: &str) -> bool {
    matches!(std::net::TcpStream::connect(addr), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}
