//! Helpers for the proxy's fault, durability and authentication tests: `zedis proxy` child
//! processes started with any flags against a test's own ZooKeeper (SIGKILLed on drop, log
//! tail printed when the test panics), a RESP2 client that reports I/O failures instead of
//! panicking and reconnects, concurrent writers that record every write's outcome, direct
//! reads of Redis servers (optionally with a password) and reads of the proxy's registration
//! node in ZooKeeper.
//!
//! Needs `mod proxy_common;` and `mod common;` declared next to it in the test crate.
#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy_common::{encode, read_resp, tail, Resp};

/// The `zedis` binary under test.
pub const ZEDIS: &str = env!("CARGO_BIN_EXE_zedis");

/// A `zedis proxy` child process on a free loopback port.
pub struct ProxyProc {
    pub id: String,
    pub addr: String,
    pub log_path: PathBuf,
    pub zk: String,
    pub cluster: String,
    child: Option<Child>,
}

impl ProxyProc {
    /// Starts `zedis --zk ZK --cluster CLUSTER --log info GLOBAL.. proxy --listen 127.0.0.1:PORT
    /// --id ID ARGS..` with its output in `DIR/proxy-ID.log`, and returns once it accepts
    /// connections. Panics with the log if it does not.
    pub fn spawn(zk: &str, cluster: &str, dir: &Path, id: &str, global: &[&str], args: &[&str]) -> ProxyProc {
        let log_path = dir.join(format!("proxy-{id}.log"));
        let mut last = String::new();
        for attempt in 1..=3 {
            let port = zedis_testkit::free_port().expect("free port");
            let addr = format!("127.0.0.1:{port}");
            let log = std::fs::File::create(&log_path).expect("proxy log file");
            let log2 = log.try_clone().expect("proxy log file");
            let mut cmd = Command::new(ZEDIS);
            cmd.args(["--zk", zk, "--cluster", cluster, "--zk-timeout-ms", "3000", "--log", "info"])
                .args(global)
                .args(["proxy", "--listen", &addr, "--id", id])
                .args(args)
                .env_remove("RUST_LOG")
                .env_remove("ZEDIS_PROXY_PASSWORD")
                .env_remove("ZEDIS_BACKEND_PASSWORD")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            // SAFETY: prctl is async-signal-safe; the proxy dies with the thread that started it
            // (the test's thread, which outlives it).
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn a proxy: {e}"));
            let deadline = Instant::now() + Duration::from_secs(15);
            let up = loop {
                if TcpStream::connect(&addr).is_ok() {
                    break true;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                eprintln!("    proxy {id} listening on {addr} (pid {})", child.id());
                return ProxyProc {
                    id: id.to_string(),
                    addr,
                    log_path,
                    zk: zk.to_string(),
                    cluster: cluster.to_string(),
                    child: Some(child),
                };
            }
            last = std::fs::read_to_string(&log_path).unwrap_or_default();
            eprintln!("    proxy {id} did not start (attempt {attempt}):\n{}", tail(&last, 20));
        }
        panic!("proxy {id} did not start:\n{last}");
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The topology epoch the proxy routes with (`INFO cluster`), after `auth` (an `AUTH`
    /// command's arguments, empty for none).
    pub fn epoch(&self, auth: &[&str]) -> Result<u64, String> {
        let mut c = Client::connect(&self.addr, Duration::from_secs(3))?;
        if !auth.is_empty() {
            let mut args = vec!["AUTH"];
            args.extend_from_slice(auth);
            match c.call(&args)? {
                Resp::Simple(s) if s == "OK" => {}
                other => return Err(format!("AUTH answered {other}")),
            }
        }
        let info = c.call(&["INFO", "cluster"])?;
        let text = info.as_text().ok_or_else(|| format!("INFO answered {info}"))?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("topology_epoch:"))
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| format!("no topology_epoch in {text:?}"))
    }

    /// Waits until the proxy routes with epoch `min` or later; returns its epoch.
    pub fn wait_epoch(&self, min: u64, auth: &[&str], timeout: Duration) -> u64 {
        wait_for(timeout, &format!("proxy {} routes with epoch >= {min}", self.id), || match self.epoch(auth) {
            Ok(e) if e >= min => Ok(e),
            Ok(e) => Err(format!("epoch {e}")),
            Err(e) => Err(e),
        })
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- proxy {} log tail ({}) ----\n{}", self.id, self.log_path.display(), tail(&self.log(), 60));
        }
        self.kill9();
    }
}

/// Polls `check` every 50 ms until it returns `Ok`, for at most `timeout`; panics with `what`
/// and the last `Err` otherwise.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => {
                eprintln!("    ok after {:.2}s: {what}", started.elapsed().as_secs_f64());
                return v;
            }
            Err(last) if started.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for: {what}\nlast check said: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A RESP2 client that returns I/O failures as `Err` (and then needs a reconnect).
pub struct Client {
    pub addr: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: &str, timeout: Duration) -> Result<Client, String> {
        let sock = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Client { addr: addr.to_string(), writer: stream, reader })
    }

    /// Sends one command and reads its reply; `Err` only for I/O failures.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Resp, String> {
        self.send(args)?;
        self.read()
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), String> {
        self.writer.write_all(&encode(args)).map_err(|e| format!("write to {}: {e}", self.addr))
    }

    /// Sends raw bytes (a pipeline, say).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap_or_else(|e| panic!("write to {}: {e}", self.addr));
    }

    pub fn read(&mut self) -> Result<Resp, String> {
        read_resp(&mut self.reader).map_err(|e| format!("read from {}: {e}", self.addr))
    }
}

/// Connects to a Redis server directly and authenticates with `password`, if any.
pub fn server_client(addr: &str, password: Option<&str>) -> Result<Client, String> {
    let mut c = Client::connect(addr, Duration::from_secs(5))?;
    if let Some(p) = password {
        match c.call(&["AUTH", p])? {
            Resp::Simple(s) if s == "OK" => {}
            other => return Err(format!("{addr}: AUTH answered {other}")),
        }
    }
    Ok(c)
}

/// The values of `keys` on the server `addr` (read with MGET in chunks).
pub fn server_values(addr: &str, password: Option<&str>, keys: &[String]) -> Result<Vec<Option<String>>, String> {
    let mut c = server_client(addr, password)?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut args = vec!["MGET".to_string()];
        args.extend(chunk.iter().cloned());
        match c.call(&args)? {
            Resp::Array(items) if items.len() == chunk.len() => out.extend(items.into_iter().map(|v| match v {
                Resp::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                _ => None,
            })),
            other => return Err(format!("{addr}: MGET answered {other}")),
        }
    }
    Ok(out)
}

/// One write through the proxy: `SET prefix:i i`.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub i: u64,
    pub sent: Instant,
    pub done: Instant,
    /// The reply, or the I/O failure.
    pub reply: Result<Resp, String>,
}

impl Outcome {
    pub fn acked(&self) -> bool {
        matches!(&self.reply, Ok(Resp::Simple(s)) if s == "OK")
    }

    pub fn error(&self) -> Option<String> {
        match &self.reply {
            Ok(Resp::Simple(s)) if s == "OK" => None,
            Ok(Resp::Error(e)) => Some(e.clone()),
            Ok(other) => Some(format!("unexpected reply {other}")),
            Err(e) => Some(format!("i/o: {e}")),
        }
    }
}

/// Writer threads, each on its own connection to the proxy, writing `SET prefix:i i` with
/// `i` unique across threads, one at a time, recording every outcome.
pub struct Writers {
    pub prefix: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writers {
    /// `timeout`: each client's read/write timeout (an I/O timeout counts as a failed write and
    /// reconnects).
    pub fn start(addr: &str, prefix: &str, threads: usize, timeout: Duration) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads as u64)
            .map(|t| {
                let (stop, log, addr, prefix) = (stop.clone(), log.clone(), addr.to_string(), prefix.to_string());
                std::thread::spawn(move || {
                    let mut conn: Option<Client> = None;
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => match Client::connect(&addr, timeout) {
                                Ok(c) => conn.insert(c),
                                Err(_) => {
                                    std::thread::sleep(Duration::from_millis(20));
                                    continue;
                                }
                            },
                        };
                        let i = t * 1_000_000_000 + n;
                        n += 1;
                        let sent = Instant::now();
                        let reply = c.call(&["SET".to_string(), format!("{prefix}:{i}"), i.to_string()]);
                        let failed = !matches!(&reply, Ok(Resp::Simple(s)) if s == "OK");
                        if reply.is_err() {
                            conn = None;
                        }
                        log.lock().unwrap().push(Outcome { i, sent, done: Instant::now(), reply });
                        if failed {
                            // The proxy fails fast while a group has no master: do not spin.
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                })
            })
            .collect();
        Writers { prefix: prefix.to_string(), stop, log, threads }
    }

    /// A copy of the outcomes so far.
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.log.lock().unwrap().clone()
    }

    /// Acknowledged writes that were sent after `since`.
    pub fn acked_since(&self, since: Instant) -> usize {
        self.log.lock().unwrap().iter().filter(|o| o.sent > since && o.acked()).count()
    }

    /// Waits until `n` writes sent after `since` were acknowledged.
    pub fn wait_acked_since(&self, since: Instant, n: usize, timeout: Duration, what: &str) {
        wait_for(timeout, what, || {
            let got = self.acked_since(since);
            if got >= n {
                Ok(())
            } else {
                let log = self.log.lock().unwrap();
                let last_err = log.iter().rev().find_map(|o| o.error());
                Err(format!("{got} of {n} acknowledged; {} writes in all; last error {last_err:?}", log.len()))
            }
        })
    }

    /// Stops the threads (each finishes its write in flight) and returns every outcome.
    pub fn stop(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    pub fn key(&self, i: u64) -> String {
        format!("{}:{i}", self.prefix)
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Counts error replies by their first word (`NOREPLICAS`, `TRYAGAIN`, `ERR`, `i/o:`...).
pub fn error_kinds(outcomes: &[Outcome]) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for e in outcomes.iter().filter_map(|o| o.error()) {
        let word = e.split_whitespace().next().unwrap_or("").to_string();
        *kinds.entry(word).or_insert(0) += 1;
    }
    kinds
}

/// Reads nodes of one ZooKeeper with its own runtime and session.
pub struct ZkReader {
    rt: tokio::runtime::Runtime,
    zk: zedis_coord::Zk,
}

impl ZkReader {
    pub fn connect(hosts: &str) -> ZkReader {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let zk = rt
            .block_on(zedis_coord::Zk::connect(&zedis_coord::ZkOptions::new(hosts)))
            .unwrap_or_else(|e| panic!("cannot connect to ZooKeeper {hosts}: {e}"));
        ZkReader { rt, zk }
    }

    /// The node's data as JSON, `None` if there is no such node.
    pub fn json(&self, path: &str) -> Result<Option<Value>, String> {
        match self.rt.block_on(self.zk.get(path)) {
            Ok(Some((data, _))) => serde_json::from_slice(&data).map(Some).map_err(|e| format!("{path}: {e}")),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }

    pub fn children(&self, path: &str) -> Result<Vec<String>, String> {
        self.rt.block_on(self.zk.children(path)).map_err(|e| format!("{path}: {e}"))
    }
}

/// The path of a proxy's registration node.
pub fn registration_path(cluster: &str, id: &str) -> String {
    format!("/zedis/clusters/{cluster}/proxies/{id}")
}
