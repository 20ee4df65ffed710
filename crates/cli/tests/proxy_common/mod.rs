//! Shared harness for the proxy's end-to-end tests: a whole `zedis up` sandbox (ZooKeeper, two
//! Redis groups of master + replica, a controller and a proxy) started as a child process, a
//! tiny RESP2 client over a raw `TcpStream` for byte-exact checks, and helpers that know which
//! group owns a key (from `zedis status --json`'s slot ranges and `zedis_topology::key_slot`).
//!
//! Two ways to get a sandbox:
//! - [`Sandbox::shared`]: one per test binary, started by the first test that asks, stopped
//!   when the binary exits (an `atexit` hook sends SIGTERM and removes its directory). Tests
//!   sharing it use their own key prefixes and never flush.
//! - [`Sandbox::start`]: owned by one test, stopped on drop (for tests that count every key,
//!   kill servers or measure memory).
//!
//! `zedis up` is spawned from a thread that lives as long as the process, with
//! `PR_SET_PDEATHSIG = SIGKILL`: if the test binary dies without cleaning up, the sandbox dies
//! too (and its children with it, which have the same setting). When a test panics, the tail
//! of the proxy's and the sandbox's logs is printed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `zedis` binary under test.
pub const ZEDIS: &str = env!("CARGO_BIN_EXE_zedis");

/// How long `zedis up` may take to print `ready` (ZooKeeper is a JVM; a loaded 2-core machine
/// may need a while).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How often [`wait_until`] polls.
const POLL: Duration = Duration::from_millis(50);

/// One Redis group of the sandbox as `sandbox.json` describes it at start.
#[derive(Clone, Debug)]
pub struct GroupInfo {
    pub id: u32,
    pub master: String,
    pub master_pid: i32,
    pub replicas: Vec<String>,
    pub replica_pids: Vec<i32>,
}

/// A running `zedis up` sandbox.
pub struct Sandbox {
    pub name: String,
    pub dir: PathBuf,
    pub proxy: String,
    pub proxy_pid: i32,
    pub zk: String,
    pub groups: Vec<GroupInfo>,
    /// `(from, to, group id)` slot ranges from `zedis status --json` at start.
    pub slots: Vec<(u16, u16, u32)>,
    pub json: Value,
    child: Mutex<Option<Child>>,
    /// The temporary directory holding `dir`; removed when the sandbox stops.
    root: PathBuf,
    started: Instant,
    /// Whether drop stops the sandbox (false for the shared one, stopped at exit).
    owned: bool,
}

/// Spawns `command` from a thread that never exits: `PR_SET_PDEATHSIG` fires when the forking
/// *thread* exits, and a sandbox shared by the tests of a binary must outlive the test thread
/// that started it.
fn spawn_from_long_lived_thread(command: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("proxy-e2e-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap_or_else(|e| e.into_inner()).send((command, reply)).expect("spawner thread alive");
    answer.recv().expect("spawner thread answers")
}

static SHARED: OnceLock<Sandbox> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(sb) = SHARED.get() {
        sb.stop();
    }
}

impl Sandbox {
    /// The sandbox shared by every test of this binary (started on first use).
    pub fn shared(name: &str) -> &'static Sandbox {
        SHARED.get_or_init(|| {
            let mut sb = Sandbox::start(name);
            sb.owned = false;
            // SAFETY: registering a plain `extern "C" fn` with no arguments.
            unsafe {
                libc::atexit(stop_shared_at_exit);
            }
            sb
        })
    }

    /// Starts a sandbox with 2 groups of master + 1 replica and a proxy; returns once it
    /// printed `ready` and wrote `sandbox.json`. Panics with its output if it does not start.
    pub fn start(name: &str) -> Sandbox {
        Sandbox::start_with(name, &[])
    }

    /// Starts a sandbox with 2 groups and a proxy, with more `zedis up` flags (`--replicas`
    /// replaces the default of 1 replica per group).
    pub fn start_with(name: &str, extra: &[&str]) -> Sandbox {
        let mut last = String::new();
        for attempt in 1..=3 {
            match Sandbox::try_start(name, extra) {
                Ok(sb) => return sb,
                Err(e) => {
                    eprintln!("[{name}] zedis up attempt {attempt} failed: {e}");
                    last = e;
                }
            }
        }
        panic!("[{name}] zedis up did not start:\n{last}");
    }

    fn try_start(name: &str, extra: &[&str]) -> Result<Sandbox, String> {
        let started = Instant::now();
        let root = tempfile::Builder::new()
            .prefix("zedis-proxy-e2e-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?
            .keep();
        let dir = root.join("sb");
        let zk_port = zedis_testkit::free_port().map_err(|e| format!("free port: {e}"))?;
        let up_log = root.join("up.stderr");
        let stderr = std::fs::File::create(&up_log).map_err(|e| format!("{}: {e}", up_log.display()))?;
        let mut cmd = Command::new(ZEDIS);
        cmd.args(["up", "--dir", dir.to_str().expect("utf-8 temp path"), "--groups", "2"])
            .args(if extra.contains(&"--replicas") { &[][..] } else { &["--replicas", "1"][..] })
            .args(extra)
            .args(["--zk-port", &zk_port.to_string(), "--redis-port", "0", "--proxy-port", "0", "--admin-port", "0"])
            .env_remove("RUST_LOG")
            .env_remove("ZEDIS_ZK")
            .env_remove("ZEDIS_CLUSTER")
            .env_remove("ZEDIS_ROOT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        eprintln!("[{name} +0.00s] phase: zedis up (zookeeper on port {zk_port}, dir {})", dir.display());
        let mut child = spawn_from_long_lived_thread(cmd).map_err(|e| format!("cannot spawn zedis up: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut out = String::new();
        let ready = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                    if line.contains("ready") {
                        break true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                out.push_str(&format!("(zedis up exited: {status})\n"));
                break false;
            }
            if Instant::now() > deadline {
                break false;
            }
        };
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&up_log).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&root);
            return Err(format!("no `ready` within {READY_TIMEOUT:?}\n--- stdout ---\n{out}--- stderr ---\n{err}"));
        }
        let json: Value = std::fs::read(dir.join("sandbox.json"))
            .map_err(|e| format!("sandbox.json: {e}"))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("sandbox.json: {e}")))?;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let groups = json["groups"]
            .as_array()
            .ok_or("sandbox.json has no groups")?
            .iter()
            .map(|g| GroupInfo {
                id: g["id"].as_u64().unwrap_or(0) as u32,
                master: s(&g["master"]["addr"]),
                master_pid: g["master"]["pid"].as_i64().unwrap_or(0) as i32,
                replicas: g["replicas"].as_array().into_iter().flatten().map(|r| s(&r["addr"])).collect(),
                replica_pids: g["replicas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| r["pid"].as_i64().unwrap_or(0) as i32)
                    .collect(),
            })
            .collect();
        let mut sb = Sandbox {
            name: name.to_string(),
            proxy: s(&json["proxy"]["addr"]),
            proxy_pid: json["proxy"]["pid"].as_i64().unwrap_or(0) as i32,
            zk: s(&json["zookeeper"]["addr"]),
            dir,
            groups,
            slots: Vec::new(),
            json,
            child: Mutex::new(Some(child)),
            root,
            started,
            owned: true,
        };
        let status = sb.status();
        sb.slots = status["slots"]
            .as_array()
            .ok_or_else(|| format!("status --json has no slots: {status}"))?
            .iter()
            .map(|r| {
                (
                    r["from"].as_u64().unwrap_or(0) as u16,
                    r["to"].as_u64().unwrap_or(0) as u16,
                    r["group"].as_u64().unwrap_or(0) as u32,
                )
            })
            .collect();
        sb.phase(&format!(
            "sandbox ready in {:.1}s: proxy {} (pid {}), groups {:?}, slots {:?}",
            started.elapsed().as_secs_f64(),
            sb.proxy,
            sb.proxy_pid,
            sb.groups.iter().map(|g| (g.id, g.master.clone(), g.replicas.clone())).collect::<Vec<_>>(),
            sb.slots
        ));
        Ok(sb)
    }

    /// Prints a phase line with the time since the sandbox started.
    pub fn phase(&self, what: &str) {
        eprintln!("[{} +{:.2}s] phase: {what}", self.name, self.started.elapsed().as_secs_f64());
    }

    /// `zedis --zk ZK ARGS`.
    pub fn zedis(&self, args: &[&str]) -> std::process::Output {
        Command::new(ZEDIS)
            .args(["--zk", &self.zk, "--zk-timeout-ms", "3000"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ZEDIS_CLUSTER")
            .stdin(Stdio::null())
            .output()
            .expect("run zedis")
    }

    /// `zedis status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.zedis(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    /// Index (into `groups`) of the group owning `key`'s slot.
    pub fn group_of(&self, key: &[u8]) -> usize {
        let slot = zedis_topology::key_slot(key);
        let id = self
            .slots
            .iter()
            .find(|(from, to, _)| (*from..=*to).contains(&slot))
            .map(|r| r.2)
            .unwrap_or_else(|| panic!("slot {slot} has no owner in {:?}", self.slots));
        self.groups.iter().position(|g| g.id == id).unwrap_or_else(|| panic!("no group {id}"))
    }

    /// `n` keys `prefix:i` owned by group index `group`.
    pub fn keys_in_group(&self, prefix: &str, group: usize, n: usize) -> Vec<String> {
        (0..).map(|i| format!("{prefix}:{i}")).filter(|k| self.group_of(k.as_bytes()) == group).take(n).collect()
    }

    /// A redis-rs connection to the proxy (5 s timeouts).
    pub fn conn(&self) -> redis::Connection {
        redis_conn(&self.proxy, Duration::from_secs(5)).unwrap_or_else(|e| panic!("[{}] {e}", self.name))
    }

    /// A redis-rs connection straight to group `g`'s master (bypassing the proxy).
    pub fn master_conn(&self, g: usize) -> redis::Connection {
        redis_conn(&self.groups[g].master, Duration::from_secs(5)).unwrap_or_else(|e| panic!("[{}] {e}", self.name))
    }

    /// A raw RESP2 connection to the proxy.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.proxy)
    }

    pub fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy-1.log")).unwrap_or_default()
    }

    /// Resident memory of the proxy process in KiB.
    pub fn proxy_rss_kib(&self) -> u64 {
        rss_kib(self.proxy_pid).unwrap_or_else(|| panic!("proxy pid {} has no /proc status", self.proxy_pid))
    }

    /// Prints the tail of the proxy's and controller's logs.
    pub fn dump_logs(&self) {
        eprintln!("==================== [{}] sandbox diagnostics ====================", self.name);
        for f in ["proxy-1.log", "ctl-1.log"] {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            eprintln!("---- {f} (tail) ----\n{}", tail(&text, 60));
        }
        let err = std::fs::read_to_string(self.root.join("up.stderr")).unwrap_or_default();
        eprintln!("---- zedis up stderr (tail) ----\n{}", tail(&err, 30));
    }

    /// SIGTERM to `zedis up` (it stops every child), SIGKILL after 15 s, and removes the
    /// directory.
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if self.owned {
            self.stop();
        }
    }
}

/// Prints the sandbox's logs if the test holding it panics (for the shared sandbox, which is
/// never dropped during the run).
pub struct DumpOnPanic<'a>(pub &'a Sandbox);

impl Drop for DumpOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.dump_logs();
        }
    }
}

/// A phase logger for one test (on a shared sandbox, several tests run at once).
pub struct Phases {
    test: String,
    started: Instant,
}

impl Phases {
    pub fn new(test: &str) -> Phases {
        Phases { test: test.to_string(), started: Instant::now() }
    }

    pub fn phase(&self, what: &str) {
        eprintln!("[{} +{:.2}s] phase: {what}", self.test, self.started.elapsed().as_secs_f64());
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn redis_conn(addr: &str, timeout: Duration) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| format!("{addr}: {e}"))?;
    let conn = client.get_connection_with_timeout(timeout).map_err(|e| format!("{addr}: connect: {e}"))?;
    conn.set_read_timeout(Some(timeout)).map_err(|e| format!("{addr}: {e}"))?;
    conn.set_write_timeout(Some(timeout)).map_err(|e| format!("{addr}: {e}"))?;
    Ok(conn)
}

/// The server's error text of a failed redis-rs query (`CODE detail`), for assertions.
pub fn err_text<T: std::fmt::Debug>(r: redis::RedisResult<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error reply, got {v:?}"),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_string(),
            _ => e.to_string(),
        },
    }
}

/// Polls `check` until it returns `Ok`, for at most `timeout`; panics with `what` and the
/// last `Err` otherwise.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
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
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

// ---- A minimal RESP2 client for byte-exact tests ----

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Resp>),
    NilArray,
}

impl Resp {
    pub fn bulk(s: impl AsRef<[u8]>) -> Resp {
        Resp::Bulk(s.as_ref().to_vec())
    }

    pub fn ok() -> Resp {
        Resp::Simple("OK".into())
    }

    pub fn err(s: &str) -> Resp {
        Resp::Error(s.into())
    }

    pub fn array_of_bulks<S: AsRef<[u8]>>(items: impl IntoIterator<Item = S>) -> Resp {
        Resp::Array(items.into_iter().map(Resp::bulk).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    pub fn as_error(&self) -> Option<&str> {
        match self {
            Resp::Error(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Resp::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<String> {
        match self {
            Resp::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Resp::Simple(s) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Resp]> {
        match self {
            Resp::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A compact, exact rendering used by [`check`]: `+OK`, `-ERR text`, `:3`, bulk strings bare
/// (non-printable bytes escaped), `nil`, `nil*` (nil array), arrays as `[a, b]`.
impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resp::Simple(s) => write!(f, "+{s}"),
            Resp::Error(e) => write!(f, "-{e}"),
            Resp::Int(n) => write!(f, ":{n}"),
            Resp::Bulk(b) => write!(f, "{}", b.escape_ascii()),
            Resp::Nil => f.write_str("nil"),
            Resp::NilArray => f.write_str("nil*"),
            Resp::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Sends `args` and asserts the reply renders (see [`Resp`]'s `Display`) exactly as `want`.
#[track_caller]
pub fn check(c: &mut RawConn, args: &[&str], want: &str) {
    let got = c.cmd(args);
    assert_eq!(got.to_string(), want, "reply to {args:?}");
}

/// Sends `args` and returns the reply rendered as in [`check`].
pub fn show(c: &mut RawConn, args: &[&str]) -> String {
    c.cmd(args).to_string()
}

/// The error Redis Cluster (and the proxy) gives for keys in different slots.
pub const CROSSSLOT: &str = "-CROSSSLOT Keys in request don't hash to the same slot";

/// Encodes a request as a RESP array of bulk strings.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one RESP2 reply.
pub fn read_resp(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("reply line without CRLF: {:?}", String::from_utf8_lossy(&line)),
        ));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {body:?}"));
    match line[0] {
        b'+' => Ok(Resp::Simple(body)),
        b'-' => Ok(Resp::Error(body)),
        b':' => body.parse().map(Resp::Int).map_err(|_| bad("bad integer")),
        b'$' => {
            let n: i64 = body.parse().map_err(|_| bad("bad bulk length"))?;
            if n < 0 {
                return Ok(Resp::Nil);
            }
            let mut data = vec![0; n as usize + 2];
            r.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(bad("bulk without CRLF"));
            }
            data.truncate(n as usize);
            Ok(Resp::Bulk(data))
        }
        b'*' => {
            let n: i64 = body.parse().map_err(|_| bad("bad array length"))?;
            if n < 0 {
                return Ok(Resp::NilArray);
            }
            (0..n).map(|_| read_resp(r)).collect::<Result<Vec<_>, _>>().map(Resp::Array)
        }
        other => Err(bad(&format!("unexpected type byte {:?}", other as char))),
    }
}

/// A raw connection: write any bytes, read RESP2 replies or raw bytes, see the close.
pub struct RawConn {
    pub addr: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawConn {
    pub fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        stream.set_write_timeout(Some(Duration::from_secs(10))).expect("write timeout");
        let _ = stream.set_nodelay(true);
        let reader = BufReader::with_capacity(256 * 1024, stream.try_clone().expect("clone stream"));
        RawConn { addr: addr.to_string(), writer: stream, reader }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap_or_else(|e| panic!("write to {}: {e}", self.addr));
    }

    pub fn read(&mut self) -> Resp {
        read_resp(&mut self.reader).unwrap_or_else(|e| panic!("read from {}: {e}", self.addr))
    }

    pub fn try_read(&mut self) -> std::io::Result<Resp> {
        read_resp(&mut self.reader)
    }

    /// Sends one command (as a RESP array) and reads its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.send(&encode(args));
        self.read()
    }

    /// Reads until the peer closes the connection or `timeout` passes; returns the bytes and
    /// whether the connection was closed (EOF or reset).
    pub fn read_to_close(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (out, false);
            }
            let _ = self.reader.get_ref().set_read_timeout(Some(left.min(Duration::from_millis(200))));
            match self.reader.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
                Err(e) => panic!("read from {}: {e}", self.addr),
            }
        }
    }
}

/// Runs `program args` with `stdin` and a hard time limit; returns (exit code, stdout, stderr).
pub fn run_with_input(program: &str, args: &[&str], stdin: &[u8], limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {program}: {e}"),
        }
    };
    let _ = feeder.join();
    (code, out_reader.join().unwrap_or_default(), err_reader.join().unwrap_or_default())
}

/// True if `program` can be run (`program --version` exits 0).
pub fn have_program(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The port of `host:port`.
pub fn port_of(addr: &str) -> String {
    addr.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_else(|| panic!("bad address {addr}"))
}

/// Whether `path` exists (for skipping checks on systems without /proc).
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}
