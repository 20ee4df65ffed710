//! ZooKeeper locks against a real ZooKeeper (and Redis for the mirror): mutual exclusion,
//! FIFO order, fencing tokens across holders, restarts and directory deletion, timeouts and
//! cancellation leaving no node, read-write lock, semaphore, reentrancy, the loss signal on
//! session expiry and node deletion, lock state and the Redis mirror.
//!
//! Most tests share one ZooKeeper (each under its own root); the restart test has its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zedis_coord::{Zk, ZkOptions};
use zedis_recipes::lock::{ContenderKind, LockError, LockOptions, LossReason, ZkLock, ZkRwLock, ZkSemaphore};
use zedis_recipes::{lock_state, Hold};
use zedis_testkit::{RedisServer, ZkServer};

/// How long any single wait in these tests may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);

fn shared_zk() -> &'static ZkServer {
    static ZK: OnceLock<ZkServer> = OnceLock::new();
    ZK.get_or_init(|| ZkServer::start().unwrap_or_else(|e| panic!("zookeeper did not start: {e}")))
}

fn phase(test: &str, what: &str) {
    eprintln!("[{test}] phase: {what}");
}

async fn session(hosts: &str, timeout: Duration) -> Zk {
    let mut options = ZkOptions::new(hosts);
    options.session_timeout = timeout;
    Zk::connect(&options).await.unwrap_or_else(|e| panic!("cannot connect to ZooKeeper at {hosts}: {e}"))
}

async fn shared_session() -> Zk {
    session(&shared_zk().connect_string(), Duration::from_secs(4)).await
}

fn options(root: &str) -> LockOptions {
    LockOptions { root: root.to_string(), ..LockOptions::default() }
}

/// Polls `check` every 20 ms until it returns `Some`, at most [`WAIT`].
async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The contender node names under a lock's directory.
async fn nodes(zk: &Zk, root: &str, name: &str) -> Vec<String> {
    let mut names = zk.children(&format!("{root}/locks/{name}")).await.expect("list contenders");
    names.sort();
    names
}

async fn waiting(zk: &Zk, root: &str, name: &str) -> usize {
    lock_state(zk, root, name).await.expect("lock state").waiting
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_under_contention() {
    const TEST: &str = "mutual_exclusion";
    const TASKS: usize = 8;
    const ROUNDS: usize = 20;
    let root = "/t-mutex";
    phase(TEST, &format!("{TASKS} sessions, {ROUNDS} acquisitions each"));
    let clock = Instant::now();
    let inside = Arc::new(AtomicUsize::new(0));
    let intervals = Arc::new(Mutex::new(Vec::<(Duration, Duration, u64, usize)>::new()));
    let mut tasks = Vec::new();
    for id in 0..TASKS {
        let (inside, intervals) = (inside.clone(), intervals.clone());
        let zk = shared_session().await;
        tasks.push(tokio::spawn(async move {
            let lock = ZkLock::new(&zk, "counter", options(root)).expect("lock");
            for _ in 0..ROUNDS {
                let mut guard = lock.lock().await.expect("lock acquired");
                let enter = clock.elapsed();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders inside at once");
                assert!(guard.is_held());
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                let exit = clock.elapsed();
                intervals.lock().unwrap().push((enter, exit, guard.token(), id));
                guard.release().await.expect("release");
            }
        }));
    }
    for t in tasks {
        t.await.expect("contender task");
    }
    phase(TEST, "checking the recorded critical sections");
    let mut intervals = intervals.lock().unwrap().clone();
    assert_eq!(intervals.len(), TASKS * ROUNDS);
    intervals.sort_by_key(|i| i.0);
    for pair in intervals.windows(2) {
        let ((_, exit_a, token_a, id_a), (enter_b, _, token_b, id_b)) = (pair[0], pair[1]);
        assert!(enter_b > exit_a, "overlap: task {id_b} entered at {enter_b:?} before task {id_a} left at {exit_a:?}");
        assert!(token_b > token_a, "token went from {token_a} (task {id_a}) to {token_b} (task {id_b})");
    }
    let zk = shared_session().await;
    assert!(nodes(&zk, root, "counter").await.is_empty(), "no contender node left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_order() {
    const TEST: &str = "fifo_order";
    let root = "/t-fifo";
    let zk = shared_session().await;
    let first = ZkLock::new(&zk, "queue", options(root)).expect("lock");
    let mut held = first.lock().await.expect("first holder");
    phase(TEST, "queueing 5 contenders one after the other");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..5usize {
        let zk_i = shared_session().await;
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let lock = ZkLock::new(&zk_i, "queue", options(root)).expect("lock");
            let mut guard = lock.lock().await.expect("acquired");
            order.lock().unwrap().push((id, guard.token()));
            guard.release().await.expect("release");
        }));
        wait_until(&format!("contender {id} queued"), || async {
            (waiting(&zk, root, "queue").await == id + 1).then_some(())
        })
        .await;
    }
    phase(TEST, "releasing the first holder");
    let first_token = held.token();
    held.release().await.expect("release");
    for t in tasks {
        t.await.expect("contender task");
    }
    let order = order.lock().unwrap().clone();
    let ids: Vec<usize> = order.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4], "acquired in queue order");
    let mut last = first_token;
    for (id, token) in order {
        assert!(token > last, "contender {id}: token {token} not above {last}");
        last = token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rise_across_directory_deletion_and_restart() {
    const TEST: &str = "tokens_rise";
    let root = "/zedis";
    let mut server = ZkServer::start().unwrap_or_else(|e| panic!("zookeeper did not start: {e}"));
    let zk = session(&server.connect_string(), Duration::from_secs(4)).await;
    let lock = ZkLock::new(&zk, "fenced", options(root)).expect("lock");
    phase(TEST, "first holder");
    let mut g1 = lock.lock().await.expect("acquired");
    let t1 = g1.token();
    g1.release().await.expect("release");

    phase(TEST, "deleting the lock's directory, then taking it again");
    zk.delete("/zedis/locks/fenced", None).await.expect("delete the lock directory");
    assert!(zk.get("/zedis/locks/fenced").await.expect("read").is_none());
    let mut g2 = lock.lock().await.expect("acquired after the directory was deleted");
    let t2 = g2.token();
    assert!(t2 > t1, "token after directory deletion {t2} must exceed {t1}");
    g2.release().await.expect("release");
    drop(lock);
    drop(zk);

    phase(TEST, "restarting ZooKeeper (same data)");
    server.restart().unwrap_or_else(|e| panic!("zookeeper did not restart: {e}"));
    let zk = session(&server.connect_string(), Duration::from_secs(4)).await;
    let lock = ZkLock::new(&zk, "fenced", options(root)).expect("lock");
    let mut g3 = lock.lock().await.expect("acquired after restart");
    let t3 = g3.token();
    assert!(t3 > t2, "token after restart {t3} must exceed {t2}");
    eprintln!("[{TEST}] tokens: {t1} < {t2} < {t3}");
    g3.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeout_and_cancellation_leave_no_node() {
    const TEST: &str = "no_orphans";
    let root = "/t-orphans";
    let zk = shared_session().await;
    let holder = ZkLock::new(&zk, "busy", options(root)).expect("lock");
    let mut held = holder.lock().await.expect("holder");
    let held_only = nodes(&zk, root, "busy").await;
    assert_eq!(held_only.len(), 1);

    phase(TEST, "try_lock times out and leaves the queue");
    let other_zk = shared_session().await;
    let other = ZkLock::new(&other_zk, "busy", options(root)).expect("lock");
    let started = Instant::now();
    let got = other.try_lock(Duration::from_millis(300)).await.expect("try_lock");
    assert!(got.is_none(), "the lock is held: try_lock must time out");
    assert!(started.elapsed() >= Duration::from_millis(300), "returned before the timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "timeout took {:?}", started.elapsed());
    assert_eq!(nodes(&zk, root, "busy").await, held_only, "the timed-out contender's node is gone");
    assert!(other.try_lock(Duration::ZERO).await.expect("try_lock").is_none(), "zero timeout on a held lock");
    assert_eq!(nodes(&zk, root, "busy").await, held_only);

    phase(TEST, "a cancelled lock() leaves the queue");
    let cancelled = tokio::time::timeout(Duration::from_millis(300), other.lock()).await;
    assert!(cancelled.is_err(), "lock() must still be waiting");
    wait_until("the cancelled contender's node is deleted", || async {
        (nodes(&zk, root, "busy").await == held_only).then_some(())
    })
    .await;

    phase(TEST, "after release, the next contender is not blocked by any orphan");
    held.release().await.expect("release");
    let got = other.try_lock(Duration::from_secs(5)).await.expect("try_lock").expect("free lock");
    assert!(got.token() > held.token());
    assert!(
        other.try_lock(Duration::ZERO).await.expect("try_lock").is_none(),
        "non-reentrant: a second take through the same instance waits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reentrancy_and_idempotent_release() {
    const TEST: &str = "reentrancy";
    let root = "/t-reentrant";
    let zk = shared_session().await;
    let lock = ZkLock::new(&zk, "re", LockOptions { reentrant: true, ..options(root) }).expect("lock");
    phase(TEST, "taking a reentrant lock twice through one instance");
    let mut a = lock.lock().await.expect("first");
    let mut b = lock.try_lock(Duration::ZERO).await.expect("try_lock").expect("reentered");
    assert_eq!(a.token(), b.token(), "one hold, one token");
    assert_eq!(nodes(&zk, root, "re").await.len(), 1, "one node for both guards");

    let other_zk = shared_session().await;
    let other = ZkLock::new(&other_zk, "re", options(root)).expect("lock");
    a.release().await.expect("release the first guard");
    a.release().await.expect("release is idempotent");
    assert!(b.is_held(), "the second guard still holds");
    assert!(other.try_lock(Duration::from_millis(100)).await.expect("try_lock").is_none(), "still held");

    phase(TEST, "releasing the last guard frees the lock");
    b.release().await.expect("release");
    assert_eq!(b.hold(), Hold::Lost, "lost after release");
    assert_eq!(b.lost_reason(), Some(LossReason::Released));
    b.release().await.expect("idempotent");
    let c = other.try_lock(Duration::from_secs(5)).await.expect("try_lock").expect("free");
    assert!(c.token() > b.token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_write_lock() {
    const TEST: &str = "rw_lock";
    let root = "/t-rw";
    let zk = shared_session().await;
    let mk = |zk: &Zk| ZkRwLock::new(zk, "doc", options(root)).expect("rw lock");
    let (r1, r2, w, r3) =
        (mk(&shared_session().await), mk(&shared_session().await), mk(&zk), mk(&shared_session().await));

    phase(TEST, "two readers share");
    let mut g1 = r1.read().await.expect("reader 1");
    let mut g2 = r2.try_read(Duration::from_secs(5)).await.expect("try_read").expect("reader 2 shares");
    assert_eq!(g2.kind(), ContenderKind::Read);

    phase(TEST, "a writer queues behind them, a later reader behind the writer");
    let writer = tokio::spawn(async move {
        let g = w.write().await.expect("writer");
        (w, g)
    });
    wait_until("writer queued", || async { (waiting(&zk, root, "doc").await == 1).then_some(()) }).await;
    let reader3 = tokio::spawn(async move {
        let g = r3.read().await.expect("reader 3");
        (r3, g)
    });
    wait_until("reader 3 queued", || async { (waiting(&zk, root, "doc").await == 2).then_some(()) }).await;
    let state = lock_state(&zk, root, "doc").await.expect("state");
    assert_eq!(state.holders.len(), 2, "two readers hold: {state:?}");
    assert_eq!(state.waiters.iter().map(|w| w.kind).collect::<Vec<_>>(), [ContenderKind::Write, ContenderKind::Read]);

    phase(TEST, "readers leave: the writer gets it, reader 3 still waits");
    g1.release().await.expect("release");
    assert!(!writer.is_finished(), "writer must wait for both readers");
    g2.release().await.expect("release");
    let (_w, mut wg) = writer.await.expect("writer task");
    assert!(wg.token() > g1.token() && wg.token() > g2.token());
    let state = lock_state(&zk, root, "doc").await.expect("state");
    assert_eq!(state.holders.len(), 1);
    assert_eq!(state.waiting, 1, "reader 3 waits for the writer: {state:?}");
    assert!(!reader3.is_finished());

    phase(TEST, "writer leaves: reader 3 gets it");
    wg.release().await.expect("release");
    let (_r3, mut g3) = reader3.await.expect("reader 3 task");
    assert!(g3.token() > wg.token());
    g3.release().await.expect("release");

    phase(TEST, "reentrant: read inside write shares, write inside read is refused");
    let re = ZkRwLock::new(&zk, "doc2", LockOptions { reentrant: true, ..options(root) }).expect("rw lock");
    let mut wg = re.write().await.expect("write");
    let rg = re.read().await.expect("read inside write");
    assert_eq!(rg.token(), wg.token());
    drop(rg);
    wg.release().await.expect("release");
    let _rg = re.read().await.expect("read");
    assert!(matches!(re.write().await, Err(LockError::UpgradeNotSupported { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn semaphore() {
    const TEST: &str = "semaphore";
    let root = "/t-sem";
    let zk = shared_session().await;
    let mk = |zk: &Zk| ZkSemaphore::new(zk, "pool", 2, options(root)).expect("semaphore");

    phase(TEST, "two permits taken, two contenders queue in order");
    let (s1, s2) = (mk(&shared_session().await), mk(&shared_session().await));
    let mut p1 = s1.acquire().await.expect("permit 1");
    let mut p2 = s2.acquire().await.expect("permit 2");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let mut releases = Vec::new();
    for id in 3..=4usize {
        let s = mk(&shared_session().await);
        let order = order.clone();
        let (release_tx, mut release_rx) = watch::channel(false);
        releases.push(release_tx);
        tasks.push(tokio::spawn(async move {
            let mut p = s.acquire().await.expect("permit");
            order.lock().unwrap().push(id);
            let _ = release_rx.wait_for(|r| *r).await;
            p.release().await.expect("release");
        }));
        wait_until(&format!("contender {id} queued"), || async {
            (waiting(&zk, root, "pool").await == id - 2).then_some(())
        })
        .await;
    }

    phase(TEST, "permit 1 released: the first waiter gets it, the second moves up but still waits");
    p1.release().await.expect("release");
    wait_until("contender 3 holds", || async { (order.lock().unwrap().clone() == [3]).then_some(()) }).await;
    let state = lock_state(&zk, root, "pool").await.expect("state");
    assert_eq!((state.holders.len(), state.waiting), (2, 1), "{state:?}");

    phase(TEST, "permit 2 released: the second waiter gets it");
    p2.release().await.expect("release");
    wait_until("contender 4 holds", || async { (order.lock().unwrap().clone() == [3, 4]).then_some(()) }).await;
    for r in &releases {
        let _ = r.send(true);
    }
    for t in tasks {
        t.await.expect("contender task");
    }

    phase(TEST, "6 sessions x 10 acquisitions: never more than 2 inside");
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (inside, most) = (inside.clone(), most.clone());
        let s = mk(&shared_session().await);
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let mut p = s.acquire().await.expect("permit");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                p.release().await.expect("release");
            }
        }));
    }
    for t in tasks {
        t.await.expect("semaphore task");
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 2, "{most} holders at once with 2 permits");
    eprintln!("[{TEST}] at most {most} inside at once");
    assert!(nodes(&zk, root, "pool").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_deleted_by_operator_is_lost() {
    const TEST: &str = "node_deleted";
    let root = "/t-deleted";
    let zk = shared_session().await;
    let lock = ZkLock::new(&zk, "x", options(root)).expect("lock");
    let guard = lock.lock().await.expect("acquired");
    phase(TEST, "an operator deletes the holder's node");
    let operator = shared_session().await;
    operator.delete(guard.node_path(), None).await.expect("delete");
    let reason = tokio::time::timeout(WAIT, guard.lost()).await.expect("loss signal in time");
    assert_eq!(reason, LossReason::NodeDeleted);
    assert_eq!(guard.hold(), Hold::Lost);
}

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forwards both ways.
    Up,
    /// Forwards requests to ZooKeeper but drops its replies (a lost reply).
    Deaf,
    /// Forwards nothing; new connections are held open, silent, until `Up`.
    Down,
}

/// A TCP forwarder to ZooKeeper that a test can cut, partition or make deaf.
struct Proxy {
    addr: SocketAddr,
    /// (generation, mode): every connection ends when the generation changes.
    state: watch::Sender<(u64, Mode)>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (state, _) = watch::channel((0, Mode::Up));
        let rx = state.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                tokio::spawn(forward(client, upstream.clone(), rx.clone()));
            }
        });
        Proxy { addr, state }
    }

    /// Drops every connection; new ones are held silent until `heal`.
    fn partition(&self) {
        self.state.send_modify(|(generation, mode)| {
            *generation += 1;
            *mode = Mode::Down;
        });
    }

    /// Drops every connection (new ones go through if the mode allows).
    fn cut(&self) {
        self.state.send_modify(|(generation, _)| *generation += 1);
    }

    fn set(&self, mode: Mode) {
        self.state.send_modify(|(_, m)| *m = mode);
    }
}

async fn forward(client: TcpStream, upstream: String, mut state: watch::Receiver<(u64, Mode)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (generation, mode) = *state.borrow_and_update();
    if mode != Mode::Up {
        // Hold it open and silent: the client's connect attempt times out by itself.
        let _ = state.wait_for(|(g, m)| *g != generation || *m == Mode::Up).await;
        return;
    }
    let Ok(server) = TcpStream::connect(&upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let replies_state = state.clone();
    let replies = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if replies_state.borrow().1 == Mode::Up && client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
        _ = state.wait_for(|(g, _)| *g != generation) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_create_reply_recovers_own_node() {
    const TEST: &str = "lost_create";
    let root = "/t-lost-create";
    let observer = shared_session().await;
    observer.ensure_path(&format!("{root}/locks/lc")).await.expect("lock directory");
    let proxy = Proxy::start(shared_zk().connect_string()).await;
    let zk = session(&proxy.addr.to_string(), Duration::from_secs(4)).await;
    let lock = Arc::new(ZkLock::new(&zk, "lc", options(root)).expect("lock"));

    phase(TEST, "ZooKeeper's replies are dropped while the contender creates its node");
    proxy.set(Mode::Deaf);
    let taking = tokio::spawn({
        let lock = lock.clone();
        async move { lock.lock().await }
    });
    let created = wait_until("the create reached ZooKeeper", || async {
        let names = nodes(&observer, root, "lc").await;
        (names.len() == 1).then(|| names[0].clone())
    })
    .await;

    phase(TEST, "the connection drops before the reply: the contender finds its node again");
    proxy.cut();
    proxy.set(Mode::Up);
    let mut guard = tokio::time::timeout(WAIT, taking).await.expect("lock in time").expect("task").expect("locked");
    assert_eq!(
        nodes(&observer, root, "lc").await,
        std::slice::from_ref(&created),
        "one node: no orphan from a second create"
    );
    assert!(guard.node_path().ends_with(&created), "{} is not {created}", guard.node_path());
    let (_, stat) = observer.get(guard.node_path()).await.expect("read").expect("node exists");
    assert_eq!(guard.token(), stat.czxid as u64, "the token is the recovered node's czxid");
    guard.release().await.expect("release");
    assert!(nodes(&observer, root, "lc").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_expiry_is_lost_and_next_holder_has_higher_token() {
    const TEST: &str = "session_expiry";
    let root = "/t-expiry";
    let proxy = Proxy::start(shared_zk().connect_string()).await;
    let zk = session(&proxy.addr.to_string(), Duration::from_millis(1200)).await;
    let lock = ZkLock::new(&zk, "job", options(root)).expect("lock");
    let guard = lock.lock().await.expect("acquired");
    let mut loss = guard.loss();
    assert!(loss.is_held());
    let observer = shared_session().await;
    let next = ZkLock::new(&observer, "job", options(root)).expect("lock");

    phase(TEST, "cutting the holder off ZooKeeper");
    proxy.partition();
    let first = tokio::time::timeout(WAIT, loss.may_be_lost()).await.expect("suspension noticed");
    assert!(matches!(first, Hold::MayBeLost | Hold::Lost), "{first:?}");

    phase(TEST, "the server expires the session; the next contender takes the lock");
    let mut next_guard = next.try_lock(WAIT).await.expect("try_lock").expect("acquired after the expiry");
    assert!(next_guard.token() > guard.token(), "next token {} must exceed {}", next_guard.token(), guard.token());

    phase(TEST, "healing: the old holder learns its session expired");
    proxy.set(Mode::Up);
    let reason = tokio::time::timeout(WAIT, guard.lost()).await.expect("lost in time");
    assert_eq!(reason, LossReason::SessionExpired);
    assert!(matches!(lock.lock().await, Err(LockError::SessionLost)), "an expired session cannot lock");
    next_guard.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_state_and_redis_mirror() {
    const TEST: &str = "state_mirror";
    let root = "/t-state";
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("redis did not start: {e}"));
    let client = redis::Client::open(redis.url()).expect("redis url");
    let conn = client.get_connection_manager().await.expect("redis connection");
    let mut check = conn.clone();
    let zk = shared_session().await;
    let mirrored = |owner: &str| LockOptions { owner: owner.to_string(), mirror: Some(conn.clone()), ..options(root) };
    let hash = |mut c: redis::aio::ConnectionManager| async move {
        redis::cmd("HGETALL")
            .arg("zedis:locks:report")
            .query_async::<HashMap<String, String>>(&mut c)
            .await
            .expect("HGETALL")
    };

    phase(TEST, "holder A, waiter B");
    let a = ZkLock::new(&zk, "report", mirrored("A")).expect("lock");
    let mut ga = a.lock().await.expect("A holds");
    let b_zk = shared_session().await;
    let b = ZkLock::new(&b_zk, "report", mirrored("B")).expect("lock");
    let waiter = tokio::spawn(async move {
        let g = b.lock().await.expect("B holds");
        (b, g)
    });
    wait_until("B queued", || async { (waiting(&zk, root, "report").await == 1).then_some(()) }).await;
    let state = lock_state(&zk, root, "report").await.expect("state");
    let holder = state.holder().expect("a holder");
    assert_eq!(holder.token, ga.token());
    assert_eq!(holder.record.as_ref().map(|r| r.owner.as_str()), Some("A"));
    assert_eq!(holder.since_ms, Some(ga.since_ms()));
    assert_eq!(state.waiters.len(), 1);
    assert_eq!(state.waiters[0].record.as_ref().map(|r| r.owner.as_str()), Some("B"));
    let listed = zedis_recipes::list_locks(&zk, root).await.expect("list");
    assert_eq!(listed, vec![state]);
    let json = serde_json::to_value(&listed).expect("serializable");
    assert_eq!(json[0]["holders"][0]["owner"], "A");
    assert_eq!(json[0]["waiting"], 1);

    let m = hash(check.clone()).await;
    assert_eq!(m.get("holder").map(String::as_str), Some("A"), "{m:?}");
    assert_eq!(m.get("token"), Some(&ga.token().to_string()));

    phase(TEST, "A releases: B holds and the mirror follows");
    ga.release().await.expect("release");
    let (_b, mut gb) = waiter.await.expect("B task");
    let m = wait_until("mirror shows B", || {
        let c = check.clone();
        let token = gb.token().to_string();
        async move {
            let m = hash(c).await;
            (m.get("holder").map(String::as_str) == Some("B") && m.get("token") == Some(&token)).then_some(m)
        }
    })
    .await;
    assert_eq!(m.get("kind").map(String::as_str), Some("lock"));

    phase(TEST, "B releases: the mirror says free and keeps the last token");
    gb.release().await.expect("release");
    let m = hash(check.clone()).await;
    assert_eq!(m.get("holder").map(String::as_str), Some(""), "{m:?}");
    assert_eq!(m.get("token"), Some(&gb.token().to_string()));
    assert_eq!(m.get("waiters").map(String::as_str), Some("0"));

    phase(TEST, "the mirror never goes back: a token below the recorded one is not written");
    let newer = "99999999999999999999";
    let _: () = redis::cmd("HSET")
        .arg("zedis:locks:report")
        .arg("token")
        .arg(newer)
        .query_async(&mut check)
        .await
        .expect("HSET");
    let mut gc = a.lock().await.expect("A again");
    let m = hash(check.clone()).await;
    assert_eq!((m.get("token").map(String::as_str), m.get("holder").map(String::as_str)), (Some(newer), Some("")));
    gc.release().await.expect("release");
    assert_eq!(hash(check.clone()).await.get("token").map(String::as_str), Some(newer), "release left it alone");

    phase(TEST, "a dead mirror never fails the lock");
    drop(redis);
    let mut gd = a.try_lock(Duration::from_secs(10)).await.expect("try_lock").expect("locks without Redis");
    gd.release().await.expect("release without Redis");
}
