//! A real ZooKeeper server process (standalone, or one member of a [`crate::ZkEnsemble`]).

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dir::ServerDir;
use crate::process::{ServerProcess, STOP_GRACE};
use crate::{free_port, Result};

/// Readiness deadline when [`ZkOptions::ready_timeout`] is `None`.
pub const ZK_DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `tickTime` when [`ZkOptions::tick_ms`] is `None`. ZooKeeper's default minimum session
/// timeout is `2 * tickTime`, so 200 ms lets tests use 400 ms sessions.
pub const ZK_DEFAULT_TICK_MS: u32 = 200;

/// How long one readiness `srvr` may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Timeout of [`ZkServer::four_letter_word`].
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Port attempts when the caller did not fix the port (the first try plus three retries).
pub(crate) const PORT_ATTEMPTS: usize = 4;

/// Where the Debian package puts the jars.
const DEBIAN_JAVA_DIR: &str = "/usr/share/java";

/// How to start a [`ZkServer`] (or every node of a [`crate::ZkEnsemble`]).
/// `Default` gives a free port, a temporary directory and `tickTime=200`.
#[derive(Clone, Debug, Default)]
pub struct ZkOptions {
    /// Client port; `None` picks a free one (retrying on another if it turns out to be
    /// taken). Ignored by ensembles, whose ports are always picked.
    pub port: Option<u16>,
    /// The server's directory (created if missing, kept after drop); `None` uses a temporary
    /// directory deleted on drop. For an ensemble this is the parent of the node directories.
    pub dir: Option<PathBuf>,
    /// How long to wait for the server to serve; default [`ZK_DEFAULT_READY_TIMEOUT`] (30 s).
    pub ready_timeout: Option<Duration>,
    /// `tickTime` in milliseconds; default [`ZK_DEFAULT_TICK_MS`] (200).
    pub tick_ms: Option<u32>,
    /// `minSessionTimeout` in milliseconds; ZooKeeper's default is `2 * tickTime`.
    pub min_session_timeout_ms: Option<u32>,
    /// `maxSessionTimeout` in milliseconds; ZooKeeper's default is `20 * tickTime`.
    pub max_session_timeout_ms: Option<u32>,
}

/// One peer of an ensemble, as written in `server.N=127.0.0.1:QUORUM:ELECTION`.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) myid: u32,
    pub(crate) quorum_port: u16,
    pub(crate) election_port: u16,
}

/// Standalone, or a member of an ensemble.
#[derive(Clone, Debug)]
pub(crate) enum Role {
    Standalone,
    Member { myid: u32, peers: Vec<Peer> },
}

/// A ZooKeeper server on `127.0.0.1:port`, killed (SIGKILL) and reaped on drop.
///
/// It is `java ... org.apache.zookeeper.server.quorum.QuorumPeerMain DIR/zoo.cfg`, with the
/// data in `DIR/data` and everything it logs in `DIR/zookeeper.log`. `java` is taken from
/// `PATH` or `$ZEDIS_JAVA`; the class path is the Debian one (see the crate docs) or
/// `$ZEDIS_ZK_CLASSPATH`.
///
/// The configuration has `forceSync=no`: a killed process loses nothing (the kernel still
/// has the data), only a machine crash would, which is fine for tests and a sandbox.
pub struct ZkServer {
    // Declared before `dir`: the process must be dead before a temporary dir is removed.
    process: ServerProcess,
    port: u16,
    ready_timeout: Duration,
    tick_ms: u32,
    min_session_timeout_ms: Option<u32>,
    max_session_timeout_ms: Option<u32>,
    role: Role,
    dir: ServerDir,
}

impl ZkServer {
    /// Starts a standalone server on a free port in a temporary directory and waits until it
    /// reports `Mode: standalone`.
    pub fn start() -> Result<ZkServer> {
        ZkServer::start_with(ZkOptions::default())
    }

    /// Starts a standalone server as `opts` says and waits until it reports
    /// `Mode: standalone`.
    pub fn start_with(opts: ZkOptions) -> Result<ZkServer> {
        let dir = ServerDir::create(opts.dir.as_deref(), "zedis-zk-")?;
        let mut server = ZkServer::new("zookeeper".into(), dir, &opts, Role::Standalone);
        let attempts = if opts.port.is_some() { 1 } else { PORT_ATTEMPTS };
        for attempt in 1..=attempts {
            server.port = match opts.port {
                Some(port) => port,
                None => free_port()?,
            };
            tracing::info!(port = server.port, dir = %server.dir().display(), attempt, "starting zookeeper");
            let result =
                server.spawn().and_then(|offset| server.wait_ready(Instant::now() + server.ready_timeout, offset));
            match result {
                Ok(()) => return Ok(server),
                Err(e) if attempt < attempts && e.is_address_in_use() => {
                    server.process.kill9();
                    tracing::warn!(port = server.port, "port was taken before zookeeper bound it; retrying on another");
                }
                Err(e) => {
                    server.process.kill9();
                    return Err(e);
                }
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// A server that is not spawned yet; `port` is set by the caller before [`Self::spawn`].
    pub(crate) fn new(name: String, dir: ServerDir, opts: &ZkOptions, role: Role) -> ZkServer {
        let java = std::env::var_os("ZEDIS_JAVA").unwrap_or_else(|| OsString::from("java"));
        ZkServer {
            process: ServerProcess::new(name, java, dir.path().join("zookeeper.log")),
            port: 0,
            ready_timeout: opts.ready_timeout.unwrap_or(ZK_DEFAULT_READY_TIMEOUT),
            tick_ms: opts.tick_ms.unwrap_or(ZK_DEFAULT_TICK_MS).max(1),
            min_session_timeout_ms: opts.min_session_timeout_ms,
            max_session_timeout_ms: opts.max_session_timeout_ms,
            role,
            dir,
        }
    }

    pub(crate) fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    pub(crate) fn set_peers(&mut self, new_peers: Vec<Peer>) {
        if let Role::Member { peers, .. } = &mut self.role {
            *peers = new_peers;
        }
    }

    pub(crate) fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    pub(crate) fn process(&self) -> &ServerProcess {
        &self.process
    }

    /// Writes `zoo.cfg`, `log4j.properties` and `data/myid`, then spawns the JVM. Returns the
    /// log offset of this run.
    pub(crate) fn spawn(&mut self) -> Result<u64> {
        let dir = self.dir.path().to_path_buf();
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        std::fs::write(dir.join("zoo.cfg"), self.config_text(&data))?;
        std::fs::write(dir.join("log4j.properties"), LOG4J_PROPERTIES)?;
        if let Role::Member { myid, .. } = &self.role {
            std::fs::write(data.join("myid"), format!("{myid}\n"))?;
        }
        let args = jvm_args(&dir);
        self.process.spawn(&args, &dir)
    }

    /// The `zoo.cfg` text.
    fn config_text(&self, data: &Path) -> String {
        let tick = self.tick_ms;
        let mut cfg = String::new();
        let _ = writeln!(cfg, "# written by zedis-testkit");
        let _ = writeln!(cfg, "tickTime={tick}");
        let _ = writeln!(cfg, "dataDir={}", data.display());
        let _ = writeln!(cfg, "clientPort={}", self.port);
        let _ = writeln!(cfg, "clientPortAddress=127.0.0.1");
        let _ = writeln!(cfg, "admin.enableServer=false");
        let _ = writeln!(cfg, "4lw.commands.whitelist=*");
        let _ = writeln!(cfg, "maxClientCnxns=0");
        let _ = writeln!(cfg, "forceSync=no");
        if let Some(ms) = self.min_session_timeout_ms {
            let _ = writeln!(cfg, "minSessionTimeout={ms}");
        }
        if let Some(ms) = self.max_session_timeout_ms {
            let _ = writeln!(cfg, "maxSessionTimeout={ms}");
        }
        if let Role::Member { peers, .. } = &self.role {
            // Give followers 10 s to join and sync, and drop them after ~4 s of silence,
            // whatever the tick.
            let _ = writeln!(cfg, "initLimit={}", 10_000u32.div_ceil(tick).max(5));
            let _ = writeln!(cfg, "syncLimit={}", 4_000u32.div_ceil(tick).max(2));
            for p in peers {
                let _ = writeln!(cfg, "server.{}=127.0.0.1:{}:{}", p.myid, p.quorum_port, p.election_port);
            }
        }
        cfg
    }

    /// The modes `srvr` reports once this server serves clients.
    fn ready_modes(&self) -> &'static [&'static str] {
        match &self.role {
            Role::Standalone => &["standalone"],
            // ZooKeeper runs a one-server "ensemble" in standalone mode.
            Role::Member { peers, .. } if peers.len() == 1 => &["standalone"],
            Role::Member { .. } => &["leader", "follower"],
        }
    }

    /// Polls `srvr` until it reports a serving mode, the process exits, or `deadline`.
    pub(crate) fn wait_ready(&mut self, deadline: Instant, log_offset: u64) -> Result<()> {
        let addr = self.connect_string();
        let sock: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let modes = self.ready_modes();
        self.process.wait_ready(&addr, deadline, self.ready_timeout, log_offset, || {
            match four_letter_word_at(&sock, "srvr", PROBE_TIMEOUT) {
                Ok(reply) => match parse_mode(&reply) {
                    Some(mode) if modes.contains(&mode) => Ok(()),
                    Some(mode) => Err(format!("srvr says Mode: {mode}")),
                    None => Err(format!("srvr answered {:?}", reply.lines().next().unwrap_or_default())),
                },
                Err(e) => Err(format!("srvr failed: {e}")),
            }
        })
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The JVM's pid while it is running (or exited but not yet noticed).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// `myid` of an ensemble member; `None` for a standalone server.
    pub fn myid(&self) -> Option<u32> {
        match &self.role {
            Role::Standalone => None,
            Role::Member { myid, .. } => Some(*myid),
        }
    }

    /// The server's directory (holds `zoo.cfg`, `data/` and `zookeeper.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the log file, `DIR/zookeeper.log`.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The whole log file, of every run in this directory.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGKILL and reap. [`ZkServer::restart`] brings it back on the same port and data.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.pid() {
            tracing::info!(server = %self.process.name(), port = self.port, pid, "kill -9 zookeeper");
        }
        self.process.kill9();
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL; reaps the process.
    pub fn stop(&mut self) {
        tracing::info!(server = %self.process.name(), port = self.port, pid = self.pid(), "stopping zookeeper");
        self.process.stop(STOP_GRACE);
    }

    /// Starts the server again with the same port, configuration and data directory (so
    /// sessions whose timeout has not expired survive), and waits until it serves. A server
    /// that is still running is stopped first. An ensemble member is ready once it is leader
    /// or follower, so this fails (after the ready timeout) if it cannot reach a quorum; see
    /// [`crate::ZkEnsemble::restart_all`].
    pub fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.stop();
        }
        tracing::info!(server = %self.process.name(), port = self.port, "restarting zookeeper");
        let result = self.spawn().and_then(|offset| self.wait_ready(Instant::now() + self.ready_timeout, offset));
        if result.is_err() {
            self.process.kill9();
        }
        result
    }

    /// SIGSTOP: the JVM freezes (clients' sessions will time out, peers will drop it).
    pub fn sigstop(&self) {
        tracing::info!(server = %self.process.name(), port = self.port, pid = self.pid(), "SIGSTOP zookeeper");
        self.process.stop_and_wait();
    }

    /// SIGCONT: resumes a server frozen by [`ZkServer::sigstop`].
    pub fn sigcont(&self) {
        tracing::info!(server = %self.process.name(), port = self.port, pid = self.pid(), "SIGCONT zookeeper");
        self.process.signal(libc::SIGCONT);
    }

    /// True if the process has not exited (it may be frozen or not serving).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Sends a four-letter word (`srvr`, `stat`, `conf`, `mntr`, `ruok`, ...) and returns
    /// the whole reply (2 s timeout).
    pub fn four_letter_word(&self, word: &str) -> io::Result<String> {
        four_letter_word(&self.connect_string(), word, FOUR_LETTER_TIMEOUT)
    }

    /// The `Mode:` that `srvr` reports (`standalone`, `leader`, `follower`), or `None` if the
    /// server does not answer or is not serving.
    pub fn mode(&self) -> Option<String> {
        let reply = self.four_letter_word("srvr").ok()?;
        parse_mode(&reply).map(str::to_string)
    }
}

impl fmt::Debug for ZkServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ZkServer");
        d.field("name", &self.process.name())
            .field("addr", &self.connect_string())
            .field("pid", &self.pid())
            .field("dir", &self.dir)
            .field("tick_ms", &self.tick_ms);
        if let Role::Member { myid, peers } = &self.role {
            d.field("myid", myid).field("ensemble_size", &peers.len());
        }
        d.finish()
    }
}

/// Sends a ZooKeeper four-letter word to `addr` (e.g. `127.0.0.1:2181`) and reads the reply
/// until ZooKeeper closes the connection, which it does after every four-letter word.
/// `timeout` applies to the connect and to each read separately.
pub fn four_letter_word(addr: &str, word: &str, timeout: Duration) -> io::Result<String> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr} resolves to nothing")))?;
    four_letter_word_at(&sock, word, timeout)
}

fn four_letter_word_at(addr: &SocketAddr, word: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(word.as_bytes())?;
    // Half-close: we have nothing more to say. ZooKeeper answers and closes its side.
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The value of the `Mode: ...` line of a `srvr`/`stat` reply.
fn parse_mode(reply: &str) -> Option<&str> {
    reply.lines().find_map(|line| line.strip_prefix("Mode:")).map(str::trim)
}

/// JVM arguments: a small, quick-starting JVM running `QuorumPeerMain DIR/zoo.cfg`.
fn jvm_args(dir: &Path) -> Vec<OsString> {
    let mut log4j = OsString::from("-Dlog4j.configuration=file:");
    log4j.push(dir.join("log4j.properties"));
    let mut log_dir = OsString::from("-Dzookeeper.log.dir=");
    log_dir.push(dir);
    vec![
        "-Xmx256m".into(),
        "-XX:+UseSerialGC".into(),
        "-XX:TieredStopAtLevel=1".into(),
        "-XX:-UsePerfData".into(),
        "-XX:+ExitOnOutOfMemoryError".into(),
        "-Djava.net.preferIPv4Stack=true".into(),
        "-Dzookeeper.jmx.log4j.disable=true".into(),
        log4j,
        log_dir,
        "-cp".into(),
        zookeeper_classpath(),
        "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
        dir.join("zoo.cfg").into(),
    ]
}

/// The class path: `$ZEDIS_ZK_CLASSPATH`, else Debian's `zookeeper.jar` (its manifest lists
/// its dependencies) plus exactly one SLF4J binding (log4j 1.2). Not `/usr/share/java/*`:
/// that directory holds six SLF4J bindings, SLF4J picks the first the class loader finds,
/// which is `slf4j-nop`, and ZooKeeper then logs nothing at all. The wildcard is only the
/// fallback if the log4j jars are missing.
fn zookeeper_classpath() -> OsString {
    if let Some(cp) = std::env::var_os("ZEDIS_ZK_CLASSPATH") {
        return cp;
    }
    let jar = |name: &str| Path::new(DEBIAN_JAVA_DIR).join(name);
    let explicit = [jar("zookeeper.jar"), jar("slf4j-log4j12.jar"), jar("log4j-1.2.jar")];
    if explicit.iter().all(|p| p.exists()) {
        std::env::join_paths(&explicit).unwrap_or_else(|_| OsString::from(DEBIAN_JAVA_DIR))
    } else {
        OsString::from(format!("{DEBIAN_JAVA_DIR}/zookeeper.jar:{DEBIAN_JAVA_DIR}/*"))
    }
}

/// log4j 1.2 configuration: INFO and up to the console, which is redirected to the log file.
const LOG4J_PROPERTIES: &str = "\
# written by zedis-testkit: everything goes to stdout, which is DIR/zookeeper.log
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_parsed_from_srvr() {
        let reply = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_mode(reply), Some("follower"));
        assert_eq!(parse_mode("This ZooKeeper instance is not currently serving requests\n"), None);
    }

    #[test]
    fn ensemble_config_has_limits_and_servers() {
        let dir = ServerDir::create(None, "zedis-zk-cfg-").unwrap();
        let opts = ZkOptions { min_session_timeout_ms: Some(400), ..ZkOptions::default() };
        let peers = (1..=3).map(|i| Peer { myid: i, quorum_port: 100 + i as u16, election_port: 200 + i as u16 });
        let mut zk = ZkServer::new("node".into(), dir, &opts, Role::Member { myid: 2, peers: peers.collect() });
        zk.set_port(12345);
        let cfg = zk.config_text(Path::new("/x/data"));
        for line in [
            "tickTime=200",
            "clientPort=12345",
            "dataDir=/x/data",
            "minSessionTimeout=400",
            "initLimit=50",
            "syncLimit=20",
            "server.3=127.0.0.1:103:203",
            "4lw.commands.whitelist=*",
        ] {
            assert!(cfg.lines().any(|l| l == line), "missing {line:?} in\n{cfg}");
        }
        assert!(!cfg.contains("maxSessionTimeout"));
        assert_eq!(zk.ready_modes(), &["leader", "follower"]);
    }
}
