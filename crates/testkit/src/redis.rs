//! A real `redis-server` process.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dir::ServerDir;
use crate::process::{ServerProcess, STOP_GRACE};
use crate::{free_port, Result};

/// Readiness deadline when [`RedisOptions::ready_timeout`] is `None`.
pub const REDIS_DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one readiness PING may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Port attempts when the caller did not fix the port (the first try plus three retries).
const PORT_ATTEMPTS: usize = 4;

/// Name of the log file inside the server's directory.
const LOG_FILE: &str = "redis.log";

/// How to start a [`RedisServer`]. `Default` gives a free port and a temporary directory.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// The port to listen on; `None` picks a free one (and retries on another if it turns out
    /// to be taken). A fixed port is never changed.
    pub port: Option<u16>,
    /// The server's directory (created if missing, kept after drop); `None` uses a temporary
    /// directory deleted on drop.
    pub dir: Option<PathBuf>,
    /// Extra command-line arguments, appended after ours so they can override them,
    /// e.g. `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
    /// How long to wait for `PING` to answer `+PONG`; default
    /// [`REDIS_DEFAULT_READY_TIMEOUT`] (10 s).
    pub ready_timeout: Option<Duration>,
}

/// A `redis-server` listening on `127.0.0.1:port`, killed (SIGKILL) and reaped on drop.
///
/// The program is `redis-server` from `PATH`, or `$ZEDIS_REDIS_SERVER` if set. It runs with
/// `--bind 127.0.0.1 --dir DIR --logfile DIR/redis.log --daemonize no --save "" --appendonly no
/// --protected-mode no` plus [`RedisOptions::extra_args`]; its stdout and stderr are appended
/// to the same `redis.log` (that is where configuration errors end up).
pub struct RedisServer {
    // Declared before `dir`: the process must be dead before a temporary dir is removed.
    process: ServerProcess,
    port: u16,
    extra_args: Vec<String>,
    ready_timeout: Duration,
    dir: ServerDir,
}

impl RedisServer {
    /// Starts a server on a free port in a temporary directory and waits until it answers.
    pub fn start() -> Result<RedisServer> {
        RedisServer::start_with(RedisOptions::default())
    }

    /// Starts a server as `opts` says and waits until it answers `PING`.
    pub fn start_with(opts: RedisOptions) -> Result<RedisServer> {
        let dir = ServerDir::create(opts.dir.as_deref(), "zedis-redis-")?;
        let program = std::env::var_os("ZEDIS_REDIS_SERVER").unwrap_or_else(|| OsString::from("redis-server"));
        let process = ServerProcess::new("redis-server", program, dir.path().join(LOG_FILE));
        let mut server = RedisServer {
            process,
            port: 0,
            extra_args: opts.extra_args,
            ready_timeout: opts.ready_timeout.unwrap_or(REDIS_DEFAULT_READY_TIMEOUT),
            dir,
        };
        let attempts = if opts.port.is_some() { 1 } else { PORT_ATTEMPTS };
        for attempt in 1..=attempts {
            server.port = match opts.port {
                Some(port) => port,
                None => free_port()?,
            };
            tracing::info!(port = server.port, dir = %server.dir.path().display(), attempt, "starting redis-server");
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) if attempt < attempts && e.is_address_in_use() => {
                    tracing::warn!(
                        port = server.port,
                        "port was taken before redis-server bound it; retrying on another"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// Spawns on `self.port` and waits for `+PONG`; on failure the process is killed.
    fn spawn_and_wait(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let mut args: Vec<OsString> = vec![
            "--port".into(),
            self.port.to_string().into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.into(),
            "--logfile".into(),
            dir.join(LOG_FILE).into(),
            "--daemonize".into(),
            "no".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--protected-mode".into(),
            "no".into(),
        ];
        args.extend(self.extra_args.iter().map(OsString::from));
        let offset = self.process.spawn(&args, dir)?;
        let addr = self.addr();
        let sock: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + self.ready_timeout;
        let result = self.process.wait_ready(&addr, deadline, self.ready_timeout, offset, || {
            match ping_reply(&sock, PROBE_TIMEOUT) {
                Ok(reply) if reply.starts_with("+PONG") => Ok(()),
                Ok(reply) => Err(format!("PING answered {reply:?}")),
                Err(e) => Err(format!("PING failed: {e}")),
            }
        });
        if result.is_err() {
            self.process.kill9();
        } else {
            tracing::info!(port = self.port, pid = self.pid(), "redis-server ready");
        }
        result
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The pid while the process is running (or exited but not yet noticed).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The server's directory (`--dir`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the log file, `DIR/redis.log`.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The whole log file, of every run in this directory.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGKILL and reap. The server is stopped afterwards; [`RedisServer::restart`] brings it
    /// back on the same port.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.pid() {
            tracing::info!(port = self.port, pid, "kill -9 redis-server");
        }
        self.process.kill9();
    }

    /// SIGSTOP: the process freezes; connections are still accepted by the kernel but nothing
    /// answers.
    pub fn sigstop(&self) {
        tracing::info!(port = self.port, pid = self.pid(), "SIGSTOP redis-server");
        self.process.stop_and_wait();
    }

    /// SIGCONT: resumes a server frozen by [`RedisServer::sigstop`].
    pub fn sigcont(&self) {
        tracing::info!(port = self.port, pid = self.pid(), "SIGCONT redis-server");
        self.process.signal(libc::SIGCONT);
    }

    /// Starts the server again on the same port and directory and waits until it answers.
    /// A server that is still running is stopped first ([`RedisServer::stop`]).
    pub fn restart(&mut self) -> Result<()> {
        if self.process.is_running() {
            self.stop();
        }
        tracing::info!(port = self.port, dir = %self.dir.path().display(), "restarting redis-server");
        self.spawn_and_wait()
    }

    /// True if the process has not exited. It may still be frozen (SIGSTOP) or not answering.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL; reaps the process.
    pub fn stop(&mut self) {
        tracing::info!(port = self.port, pid = self.pid(), "stopping redis-server");
        self.process.stop(STOP_GRACE);
    }

    /// True if the server answers `PING` with `+PONG` within `timeout`.
    pub fn ping(&self, timeout: Duration) -> bool {
        redis_ping(&self.addr(), timeout)
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("addr", &self.addr())
            .field("pid", &self.pid())
            .field("dir", &self.dir)
            .field("extra_args", &self.extra_args)
            .finish()
    }
}

/// True if the server at `addr` (e.g. `127.0.0.1:6379`) answers an inline `PING` with
/// `+PONG` within `timeout` (applied to the connect, the write and the read separately).
pub fn redis_ping(addr: &str, timeout: Duration) -> bool {
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    matches!(ping_reply(&sock, timeout), Ok(reply) if reply.starts_with("+PONG"))
}

/// Sends an inline `PING` and returns the first reply line (without CRLF).
fn ping_reply(addr: &SocketAddr, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 256];
    while !reply.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a reply"));
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&reply);
    Ok(line.lines().next().unwrap_or_default().to_string())
}
