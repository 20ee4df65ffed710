//! Multiplexed, pipelined connections to one Redis server. Any number of client sessions
//! share a connection: requests are queued, written in batches, and replies are handed back
//! in order, found by the reply scanner without being decoded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tokio::sync::{oneshot, Notify};
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

/// What the sessions queue for one connection, under one lock: the bytes not yet written
/// and, in the same order, who waits for each reply.
struct Outgoing {
    out: BytesMut,
    waiters: VecDeque<oneshot::Sender<Reply>>,
    /// Set once the connection failed or was dropped: new requests fail at once.
    failed: Option<BackendError>,
}

/// One TCP connection's shared side. Sessions append requests directly (no task hand-off);
/// a writer task flushes whatever accumulated, so the requests of every session that ran
/// since the last flush leave in one write.
struct Shared {
    outgoing: Mutex<Outgoing>,
    wake: Notify,
    alive: AtomicBool,
    /// The connection was dropped: the writer sends what is queued, then closes its side
    /// (the server then closes, which stops the reader).
    closing: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues requests in order; each gets its reply slot.
    fn push<'a>(&self, requests: impl IntoIterator<Item = (&'a [u8], oneshot::Sender<Reply>)>) {
        let mut o = self.lock();
        if let Some(e) = o.failed.clone() {
            drop(o);
            for (_, reply) in requests {
                fail(reply, e.clone());
            }
            return;
        }
        let was_empty = o.out.is_empty();
        for (request, reply) in requests {
            o.out.extend_from_slice(request);
            o.waiters.push_back(reply);
        }
        drop(o);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Marks the connection failed and fails every request still waiting.
    fn fail_all(&self, e: BackendError) {
        self.alive.store(false, Ordering::SeqCst);
        let waiters = {
            let mut o = self.lock();
            if o.failed.is_none() {
                o.failed = Some(e.clone());
            }
            o.out.clear();
            std::mem::take(&mut o.waiters)
        };
        for w in waiters {
            fail(w, e.clone());
        }
        self.wake.notify_one();
    }
}

/// One TCP connection with a writer task and a reader task.
struct Conn {
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Replaced or its pool dropped: no new requests; what is queued still goes out.
        self.shared.alive.store(false, Ordering::SeqCst);
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

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
        let shared = Arc::new(Shared {
            outgoing: Mutex::new(Outgoing {
                out: BytesMut::with_capacity(16 * 1024),
                waiters: VecDeque::new(),
                failed: None,
            }),
            wake: Notify::new(),
            alive: AtomicBool::new(true),
            closing: AtomicBool::new(false),
        });
        let writer = shared.clone();
        let addr_w = addr.to_string();
        tokio::spawn(async move {
            let mut spare = BytesMut::with_capacity(16 * 1024);
            loop {
                writer.wake.notified().await;
                loop {
                    {
                        let mut o = writer.lock();
                        if o.failed.is_some() {
                            tracing::debug!(backend = %addr_w, "backend writer stopped");
                            return;
                        }
                        std::mem::swap(&mut o.out, &mut spare);
                    }
                    if spare.is_empty() {
                        if writer.closing.load(Ordering::SeqCst) {
                            return;
                        }
                        break;
                    }
                    if wr.write_all(&spare).await.is_err() {
                        writer.fail_all(BackendError::Lost(addr_w.clone()));
                        return;
                    }
                    spare.clear();
                    if spare.capacity() > 1024 * 1024 {
                        spare = BytesMut::with_capacity(16 * 1024);
                    }
                }
            }
        });
        let reader = shared.clone();
        let addr_r = addr.to_string();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            let mut scanner = ReplyScanner::new(limits);
            let mut replies: Vec<Bytes> = Vec::with_capacity(64);
            let error = 'outer: loop {
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break BackendError::Lost(addr_r.clone()),
                    Ok(_) => {}
                }
                loop {
                    match scanner.scan(&buf) {
                        Ok(Some(n)) => replies.push(buf.split_to(n).freeze()),
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
                if replies.is_empty() {
                    continue;
                }
                // One lock for every reply this read brought.
                let mut waiters = Vec::with_capacity(replies.len());
                {
                    let mut o = reader.lock();
                    for _ in 0..replies.len() {
                        match o.waiters.pop_front() {
                            Some(w) => waiters.push(w),
                            None => break,
                        }
                    }
                }
                let unexpected = waiters.len() < replies.len();
                for (w, reply) in waiters.into_iter().zip(replies.drain(..)) {
                    let _ = w.send(Ok(reply));
                }
                replies.clear();
                if unexpected {
                    break BackendError::Protocol(addr_r.clone(), "a reply nobody asked for".into());
                }
            };
            tracing::debug!(backend = %addr_r, error = %error, "backend reader stopped");
            reader.fail_all(error);
        });
        Ok(Conn { shared })
    }
}

#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Shared connections per server and worker thread.
    pub connections: usize,
    /// Worker threads (each has its own connections; see [`crate::workers`]).
    pub workers: usize,
    /// The servers' `requirepass`.
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub limits: Limits,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            connections: 2,
            workers: 1,
            password: None,
            connect_timeout: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }
}

/// The shared connections to one server; reconnects lazily after a failure.
pub struct ServerPool {
    addr: String,
    /// Unique in this process: tells pools apart without holding them.
    id: u64,
    options: BackendOptions,
    /// Connections speaking RESP2 `[0]` and RESP3 `[1]`; the async lock serialises reconnects.
    conns: [Vec<tokio::sync::Mutex<Option<Conn>>>; 2],
    /// The live connections' queues, read without awaiting on every request.
    live: [Vec<Mutex<Option<Arc<Shared>>>>; 2],
    /// After a failed connect: until when to fail fast, and why.
    down_until: Mutex<Option<std::time::Instant>>,
    last_error: Mutex<Option<BackendError>>,
}

impl ServerPool {
    pub fn new(addr: &str, options: BackendOptions) -> ServerPool {
        let n = options.connections.max(1) * options.workers.max(1);
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ServerPool {
            addr: addr.to_string(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `request` (complete RESP bytes) and returns where its reply will arrive.
    ///
    /// Requests with the same `lane` (a client id) use the same connection, so one client's
    /// pipelined commands reach the server in the order it sent them.
    pub async fn send(&self, lane: Lane, request: Bytes) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.send_to(lane, [(request.as_ref(), tx)]).await;
        rx
    }

    /// Queues `requests` on one connection, in order (a `WAIT` after a write must follow it on
    /// the same connection to cover it).
    pub async fn send_all(&self, lane: Lane, requests: Vec<Bytes>) -> Vec<oneshot::Receiver<Reply>> {
        let mut out = Vec::with_capacity(requests.len());
        let mut queued = Vec::with_capacity(requests.len());
        for request in &requests {
            let (tx, rx) = oneshot::channel();
            queued.push((request.as_ref(), tx));
            out.push(rx);
        }
        self.send_to(lane, queued).await;
        out
    }

    async fn send_to<'a, I>(&self, lane: Lane, requests: I)
    where
        I: IntoIterator<Item = (&'a [u8], oneshot::Sender<Reply>)>,
    {
        let (set, i) = self.index(lane);
        // Fast path, no await and no reference counting: the live connection of this lane.
        {
            let live = self.live[set][i].lock().unwrap_or_else(|e| e.into_inner());
            if let Some(shared) = live.as_ref().filter(|s| s.alive.load(Ordering::Relaxed)) {
                shared.push(requests);
                return;
            }
        }
        match self.connection(set, i, lane.resp3).await {
            Some(shared) => shared.push(requests),
            None => {
                let e = self.last_error();
                for (_, reply) in requests {
                    fail(reply, e.clone());
                }
            }
        }
    }

    /// Queues a `PING` behind whatever is queued on each live connection of this server: once
    /// they are all answered, so is everything sent before. See [`PoolRegistry::drain_all`].
    ///
    /// [`PoolRegistry::drain_all`]: crate::route_table::PoolRegistry::drain_all
    pub fn ping_behind(&self) -> Vec<oneshot::Receiver<Reply>> {
        const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
        let mut answers = Vec::new();
        for set in &self.live {
            for live in set {
                let shared = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(shared) = shared.filter(|s| s.alive.load(Ordering::Relaxed)) {
                    let (tx, rx) = oneshot::channel();
                    shared.push([(PING, tx)]);
                    answers.push(rx);
                }
            }
        }
        answers
    }

    /// Which connection set (RESP2/RESP3) and which connection in it serve `lane`: the
    /// connections of the worker thread we run on, so a session and its backend connections
    /// share a thread.
    fn index(&self, lane: Lane) -> (usize, usize) {
        let set = usize::from(lane.resp3);
        let per_worker = self.options.connections.max(1);
        let workers = self.conns[set].len() / per_worker;
        let worker = crate::workers::current().unwrap_or(0) % workers.max(1);
        (set, worker * per_worker + (lane.id % per_worker as u64) as usize)
    }

    fn last_error(&self) -> BackendError {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| BackendError::Connect(self.addr.clone(), "connection failed".into()))
    }

    /// A live connection, connecting if needed; None while the server is unreachable.
    async fn connection(&self, set: usize, i: usize, resp3: bool) -> Option<Arc<Shared>> {
        let mut slot = self.conns[set][i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.shared.alive.load(Ordering::SeqCst)) {
            return Some(c.shared.clone());
        }
        *slot = None;
        let backoff = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        if backoff.is_some_and(|t| std::time::Instant::now() < t) {
            return None;
        }
        match Conn::open(&self.addr, &self.options, resp3).await {
            Ok(c) => {
                let shared = c.shared.clone();
                *self.live[set][i].lock().unwrap_or_else(|e| e.into_inner()) = Some(shared.clone());
                *slot = Some(c);
                Some(shared)
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
