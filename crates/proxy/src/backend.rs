//! Multiplexed, pipelined connections to one Redis server. Any number of client sessions
//! share a connection: requests are queued, written in batches, and replies are handed back
//! in order, found by the reply scanner without being decoded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use zedis_resp::{Limits, ReplyScanner};

/// Why a backend did not answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {0} is unreachable: {1}")]
    Connect(String, String),
    #[error("backend {0} connection lost")]
    Lost(String),
    #[error("backend {0} sent a malformed reply: {1}")]
    Protocol(String, String),
}

pub type Reply = Result<Bytes, BackendError>;

/// Which of a pool's connections a client's requests take: the same one every time (so its
/// pipeline stays in order), speaking the client's protocol (RESP3 replies for RESP3
/// clients come straight from a server that said HELLO 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    pub id: u64,
    pub resp3: bool,
}

/// Requests that failed at a backend (unreachable, connection lost, malformed reply).
pub static BACKEND_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fail(tx: oneshot::Sender<Reply>, e: BackendError) {
    BACKEND_ERRORS.fetch_add(1, Ordering::Relaxed);
    let _ = tx.send(Err(e));
}

struct Job {
    request: Bytes,
    reply: oneshot::Sender<Reply>,
}

/// One TCP connection with a writer task and a reader task.
struct Conn {
    jobs: mpsc::Sender<Job>,
    alive: Arc<AtomicBool>,
}

/// Queue depth per connection before senders wait (backpressure towards clients).
const QUEUE: usize = 4096;
/// Requests written per batch at most.
const BATCH: usize = 512;

/// Connects to a backend and authenticates with its `requirepass`, if any.
pub async fn connect(addr: &str, options: &BackendOptions, resp3: bool) -> Result<TcpStream, BackendError> {
    let timeout = options.connect_timeout;
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(BackendError::Connect(addr.to_string(), e.to_string())),
        Err(_) => return Err(BackendError::Connect(addr.to_string(), format!("timed out after {timeout:?}"))),
    };
    let _ = stream.set_nodelay(true);
    if let Some(password) = &options.password {
        let auth = zedis_resp::Request::from_args([b"AUTH".as_slice(), password.as_bytes()]);
        if !handshake(&mut stream, auth.raw(), b"+OK", timeout).await {
            return Err(BackendError::Connect(addr.to_string(), "AUTH with the backend password failed".into()));
        }
    }
    if resp3 {
        let hello = zedis_resp::Request::from_args(["HELLO", "3"]);
        if !handshake(&mut stream, hello.raw(), b"%", timeout).await {
            return Err(BackendError::Connect(addr.to_string(), "HELLO 3 failed".into()));
        }
    }
    Ok(stream)
}

/// Sends `request` and checks that the reply starts with `expect`.
async fn handshake(stream: &mut TcpStream, request: &[u8], expect: &[u8], timeout: Duration) -> bool {
    let check = async {
        stream.write_all(request).await.ok()?;
        let mut buf = BytesMut::with_capacity(256);
        let mut scanner = ReplyScanner::new(Limits::default());
        loop {
            if stream.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
            if let Ok(Some(n)) = scanner.scan(&buf) {
                return Some(buf[..n].starts_with(expect));
            }
        }
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}

impl Conn {
    async fn open(addr: &str, options: &BackendOptions, resp3: bool) -> Result<Conn, BackendError> {
        let limits = options.limits.clone();
        let stream = connect(addr, options, resp3).await?;
        let (mut rd, mut wr) = stream.into_split();
        let (jobs_tx, mut jobs_rx) = mpsc::channel::<Job>(QUEUE);
        let (waiters_tx, mut waiters_rx) = mpsc::unbounded_channel::<oneshot::Sender<Reply>>();
        let alive = Arc::new(AtomicBool::new(true));
        let addr_w = addr.to_string();
        let alive_w = alive.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut out = BytesMut::with_capacity(16 * 1024);
            while jobs_rx.recv_many(&mut batch, BATCH).await > 0 {
                for job in batch.drain(..) {
                    out.extend_from_slice(&job.request);
                    // Registered before the bytes leave, so the reader always finds its waiter.
                    if waiters_tx.send(job.reply).is_err() {
                        break;
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
                if out.capacity() > 1024 * 1024 {
                    out = BytesMut::with_capacity(16 * 1024);
                }
            }
            alive_w.store(false, Ordering::SeqCst);
            tracing::debug!(backend = %addr_w, "backend writer stopped");
        });
        let addr_r = addr.to_string();
        let alive_r = alive.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            let mut scanner = ReplyScanner::new(limits);
            let error = 'outer: loop {
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break BackendError::Lost(addr_r.clone()),
                    Ok(_) => {}
                }
                loop {
                    match scanner.scan(&buf) {
                        Ok(Some(n)) => {
                            let reply = buf.split_to(n).freeze();
                            match waiters_rx.recv().await {
                                Some(w) => {
                                    let _ = w.send(Ok(reply));
                                }
                                None => break 'outer BackendError::Lost(addr_r.clone()),
                            }
                        }
                        Ok(None) => {
                            if let Some(need) = scanner.needed_len() {
                                buf.reserve(need.saturating_sub(buf.len()).min(64 * 1024 * 1024));
                            } else if buf.capacity() - buf.len() < 4096 {
                                buf.reserve(16 * 1024);
                            }
                            break;
                        }
                        Err(e) => break 'outer BackendError::Protocol(addr_r.clone(), e.to_string()),
                    }
                }
            };
            alive_r.store(false, Ordering::SeqCst);
            tracing::debug!(backend = %addr_r, error = %error, "backend reader stopped");
            waiters_rx.close();
            while let Ok(w) = waiters_rx.try_recv() {
                fail(w, error.clone());
            }
        });
        Ok(Conn { jobs: jobs_tx, alive })
    }
}

#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Shared connections per server.
    pub connections: usize,
    /// The servers' `requirepass`.
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub limits: Limits,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            connections: 2,
            password: None,
            connect_timeout: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }
}

type LiveConn = (mpsc::Sender<Job>, Arc<AtomicBool>);

/// The shared connections to one server; reconnects lazily after a failure.
pub struct ServerPool {
    addr: String,
    options: BackendOptions,
    /// Connections speaking RESP2 `[0]` and RESP3 `[1]`; the async lock serialises reconnects.
    conns: [Vec<tokio::sync::Mutex<Option<Conn>>>; 2],
    /// The live connections' queues, read without awaiting on every request.
    live: [Vec<Mutex<Option<LiveConn>>>; 2],
    /// After a failed connect: until when to fail fast, and why.
    down_until: Mutex<Option<std::time::Instant>>,
    last_error: Mutex<Option<BackendError>>,
}

impl ServerPool {
    pub fn new(addr: &str, options: BackendOptions) -> ServerPool {
        let n = options.connections.max(1);
        ServerPool {
            addr: addr.to_string(),
            options,
            conns: [
                (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(),
                (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(),
            ],
            live: [(0..n).map(|_| Mutex::new(None)).collect(), (0..n).map(|_| Mutex::new(None)).collect()],
            down_until: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Queues `request` (complete RESP bytes) and returns where its reply will arrive.
    ///
    /// Requests with the same `lane` (a client id) use the same connection, so one client's
    /// pipelined commands reach the server in the order it sent them.
    pub async fn send(&self, lane: Lane, request: Bytes) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        match self.connection(lane).await {
            Some(jobs) => {
                if let Err(mpsc::error::SendError(job)) = jobs.send(Job { request, reply: tx }).await {
                    fail(job.reply, BackendError::Lost(self.addr.clone()));
                }
            }
            None => fail(tx, self.last_error()),
        }
        rx
    }

    /// Queues `requests` on one connection, in order (a `WAIT` after a write must follow it on
    /// the same connection to cover it).
    pub async fn send_all(&self, lane: Lane, requests: Vec<Bytes>) -> Vec<oneshot::Receiver<Reply>> {
        let mut out = Vec::with_capacity(requests.len());
        let Some(jobs) = self.connection(lane).await else {
            for _ in requests {
                let (tx, rx) = oneshot::channel();
                fail(tx, self.last_error());
                out.push(rx);
            }
            return out;
        };
        for request in requests {
            let (tx, rx) = oneshot::channel();
            if let Err(mpsc::error::SendError(job)) = jobs.send(Job { request, reply: tx }).await {
                fail(job.reply, BackendError::Lost(self.addr.clone()));
            }
            out.push(rx);
        }
        out
    }

    fn last_error(&self) -> BackendError {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| BackendError::Connect(self.addr.clone(), "connection failed".into()))
    }

    /// A live connection's queue, connecting if needed; None while the server is unreachable.
    async fn connection(&self, lane: Lane) -> Option<mpsc::Sender<Job>> {
        let conns = &self.conns[usize::from(lane.resp3)];
        let i = (lane.id % conns.len() as u64) as usize;
        // Fast path, no await: the live connection's queue.
        if let Some(jobs) = self.live[usize::from(lane.resp3)][i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(_, alive)| alive.load(Ordering::Relaxed))
        {
            return Some(jobs.0.clone());
        }
        let mut slot = conns[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.alive.load(Ordering::SeqCst)) {
            return Some(c.jobs.clone());
        }
        *slot = None;
        let backoff = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        if backoff.is_some_and(|t| std::time::Instant::now() < t) {
            return None;
        }
        match Conn::open(&self.addr, &self.options, lane.resp3).await {
            Ok(c) => {
                let jobs = c.jobs.clone();
                *self.live[usize::from(lane.resp3)][i].lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((jobs.clone(), c.alive.clone()));
                *slot = Some(c);
                Some(jobs)
            }
            Err(e) => {
                tracing::debug!(error = %e, "backend connect failed");
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                // Fail fast for a moment instead of making every request wait on a dead server.
                *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(std::time::Instant::now() + Duration::from_millis(100));
                None
            }
        }
    }
}
