//! Leader election against a real ZooKeeper: one leader among many, hand-over in line order
//! with rising epochs, observers, the selector's terms, a partitioned leader that steps down
//! before anyone else is elected, and a leader whose server freezes for longer than the grace.
//!
//! Every leadership interval is recorded by a checker on this process's monotonic clock: an
//! interval starts when `await_leadership` returns and ends when the loss signal fires (not when
//! ZooKeeper says so); no two may overlap and epochs must rise from one leader to the next.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zedis_coord::{SessionState, Zk, ZkOptions};
use zedis_recipes::leader::{
    current_leader, observe, ElectionError, ElectionOptions, EndReason, LeaderInfo, LeaderLatch, LeaderSelector,
};
use zedis_recipes::Hold;
use zedis_testkit::ZkServer;

const ROOT: &str = "/zedis";

/// Announces test phases with the time since the test began.
struct Phases {
    test: &'static str,
    started: Instant,
}

impl Phases {
    fn new(test: &'static str) -> Phases {
        Phases { test, started: Instant::now() }
    }

    fn say(&self, what: impl AsRef<str>) {
        eprintln!("[{} +{:.2}s] phase: {}", self.test, self.started.elapsed().as_secs_f64(), what.as_ref());
    }
}

async fn start_zk(test: &str) -> ZkServer {
    start_zk_with(test, zedis_testkit::ZkOptions::default()).await
}

async fn start_zk_with(test: &str, options: zedis_testkit::ZkOptions) -> ZkServer {
    let started =
        tokio::task::spawn_blocking(move || ZkServer::start_with(options)).await.expect("zookeeper start task");
    started.unwrap_or_else(|e| panic!("[{test}] zookeeper did not start: {e}"))
}

async fn connect(hosts: &str, session_ms: u64) -> Zk {
    let options = ZkOptions {
        hosts: hosts.to_string(),
        session_timeout: Duration::from_millis(session_ms),
        connect_timeout: Duration::from_secs(10),
    };
    Zk::connect(&options).await.unwrap_or_else(|e| panic!("cannot connect to {hosts}: {e}"))
}

/// Polls `check` every 10 ms until it yields a value; panics after `timeout`.
async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn opts(id: &str) -> ElectionOptions {
    ElectionOptions::with_id(id)
}

async fn candidates(zk: &Zk, election: &str) -> Vec<String> {
    zk.children(&format!("{ROOT}/elections/{election}")).await.expect("list candidates")
}

// ---- the checker ----

#[derive(Clone, Debug)]
struct Interval {
    who: String,
    epoch: u64,
    start: Instant,
    end: Option<Instant>,
}

/// Leadership intervals of every participant, on one monotonic clock.
#[derive(Clone, Default)]
struct LeaderLog(Arc<Mutex<Vec<Interval>>>);

impl LeaderLog {
    fn begin(&self, who: &str, epoch: u64) -> usize {
        let mut v = self.0.lock().expect("log lock");
        v.push(Interval { who: who.to_string(), epoch, start: Instant::now(), end: None });
        v.len() - 1
    }

    fn end(&self, i: usize) {
        self.0.lock().expect("log lock")[i].end = Some(Instant::now());
    }

    fn intervals(&self) -> Vec<Interval> {
        self.0.lock().expect("log lock").clone()
    }

    /// Records every term of `latch` until its candidacy ends (or the latch is dropped: the
    /// recorder holds it only while waiting for leadership).
    fn follow(&self, who: &str, latch: Arc<LeaderLatch>) -> JoinHandle<()> {
        let (log, who, latch) = (self.clone(), who.to_string(), Arc::downgrade(&latch));
        tokio::spawn(async move {
            loop {
                let Some(latch) = latch.upgrade() else { return };
                let Ok(leadership) = latch.await_leadership().await else { return };
                drop(latch);
                let i = log.begin(&who, leadership.epoch());
                let mut loss = leadership.loss();
                loss.may_be_lost().await;
                log.end(i);
            }
        })
    }

    fn check(&self) {
        let v = self.intervals();
        if let Err(e) = check_intervals(v.clone()) {
            panic!("leadership log violates the guarantees: {e}\nlog: {v:#?}");
        }
    }
}

/// No two intervals overlap; the epoch rises from one leader (term) to the next; a term may
/// resume (same participant, same epoch) after a step-down.
fn check_intervals(mut v: Vec<Interval>) -> Result<(), String> {
    v.sort_by_key(|i| i.start);
    for pair in v.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let a_end = a.end.ok_or_else(|| format!("{} (epoch {}) still leads while {} began", a.who, a.epoch, b.who))?;
        if a_end > b.start {
            return Err(format!(
                "{} (epoch {}) and {} (epoch {}) both led for {:?}",
                a.who,
                a.epoch,
                b.who,
                b.epoch,
                a_end - b.start
            ));
        }
        let resumed = a.who == b.who && a.epoch == b.epoch;
        if !resumed && b.epoch <= a.epoch {
            return Err(format!("epoch went from {} ({}) to {} ({})", a.epoch, a.who, b.epoch, b.who));
        }
    }
    Ok(())
}

#[test]
fn checker_catches_overlaps_and_falling_epochs() {
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let iv = |who: &str, epoch, s, e: Option<u64>| Interval { who: who.into(), epoch, start: at(s), end: e.map(at) };
    assert!(check_intervals(vec![iv("a", 1, 0, Some(10)), iv("b", 2, 10, None)]).is_ok());
    assert!(check_intervals(vec![iv("a", 1, 0, Some(10)), iv("a", 1, 20, Some(30)), iv("b", 2, 40, None)]).is_ok());
    assert!(check_intervals(vec![iv("a", 1, 0, Some(11)), iv("b", 2, 10, None)]).is_err(), "overlap");
    assert!(check_intervals(vec![iv("a", 1, 0, None), iv("b", 2, 10, None)]).is_err(), "open overlap");
    assert!(check_intervals(vec![iv("a", 2, 0, Some(5)), iv("b", 1, 10, None)]).is_err(), "epoch fell");
    assert!(check_intervals(vec![iv("a", 2, 0, Some(5)), iv("b", 2, 10, None)]).is_err(), "epoch repeated");
}

// ---- a TCP forwarder that can silently drop everything (a partition) ----

/// Forwards connections to `target` until cut; after that, bytes in both directions vanish
/// and new connections are accepted and ignored, so clients see silence, not a reset.
async fn partitionable_proxy(target: SocketAddr) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address").to_string();
    let cut = Arc::new(AtomicBool::new(false));
    let cut2 = cut.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let cut = cut2.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else { return };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::join!(pump(ri, wo, cut.clone()), pump(ro, wi, cut));
            });
        }
    });
    (addr, cut)
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, cut: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_one_leader_then_hand_over_in_line_order() {
    let p = Phases::new("latch_hand_over");
    let zk_server = start_zk("latch_hand_over").await;
    let hosts = zk_server.connect_string();
    let election = "jobs";
    p.say(format!("zookeeper at {hosts}"));

    let admin = connect(&hosts, 4000).await;
    let mut seen = observe(&admin, ROOT, election).await.expect("observe");
    assert_eq!(*seen.borrow(), None, "nobody stands yet");
    let observed: Arc<Mutex<Vec<Option<LeaderInfo>>>> = Arc::default();
    {
        let (mut rx, observed) = (seen.clone(), observed.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let now = rx.borrow_and_update().clone();
                observed.lock().expect("observed lock").push(now);
            }
        });
    }

    p.say("5 candidates join, each with its own session");
    let log = LeaderLog::default();
    let mut latches = Vec::new();
    for i in 0..5 {
        let zk = connect(&hosts, 2000).await;
        let id = format!("p{i}");
        let latch = Arc::new(LeaderLatch::start(&zk, election, opts(&id)).await.expect("start latch"));
        log.follow(&id, latch.clone());
        latches.push((id, latch, zk));
    }

    p.say("exactly one leader: the first to join");
    let first = poll(Duration::from_secs(5), "p0 leads", || async { latches[0].1.leadership() }).await;
    for (id, latch, _) in &latches[1..] {
        assert!(!latch.is_leader(), "{id} must not lead while p0 does");
    }
    let info = current_leader(&admin, ROOT, election).await.expect("current_leader").expect("a leader");
    assert_eq!((info.id.as_str(), info.epoch), ("p0", first.epoch()));
    poll(Duration::from_secs(5), "observer sees p0", || async {
        seen.borrow().as_ref().filter(|l| l.id == "p0" && l.epoch == first.epoch()).map(|_| ())
    })
    .await;

    p.say("each leader resigns in turn: the next in line leads with a higher epoch");
    let mut epoch = first.epoch();
    for i in 0..4 {
        let (id, latch, _) = &latches[i];
        let mut loss = latch.leadership().expect("leads").loss();
        latch.resign().await.expect("resign");
        assert_eq!(loss.may_be_lost().await, Hold::Lost, "{id}: resign ends the term");
        assert!(!latch.is_leader());
        assert_eq!(latch.ended(), Some(EndReason::Resigned));
        let (next_id, next, _) = &latches[i + 1];
        let l = poll(Duration::from_secs(5), &format!("{next_id} leads"), || async { next.leadership() }).await;
        assert!(l.epoch() > epoch, "{next_id}: epoch {} after {epoch}", l.epoch());
        epoch = l.epoch();
        for (other, latch, _) in &latches {
            assert!(other == next_id || !latch.is_leader(), "{other} leads beside {next_id}");
        }
        let info = current_leader(&admin, ROOT, election).await.expect("current_leader").expect("a leader");
        assert_eq!((info.id.as_str(), info.epoch), (next_id.as_str(), epoch));
        assert!(info.since_ms >= l.since().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 - 1);
        poll(Duration::from_secs(5), &format!("observer sees {next_id}"), || async {
            seen.borrow().as_ref().filter(|l| l.id == *next_id && l.epoch == epoch).map(|_| ())
        })
        .await;
    }
    assert!(latches[0].1.await_leadership().await.is_err(), "a resigned latch never leads again");

    p.say("no orphans: a start cancelled mid-way and a latch dropped while in line leave no node");
    let zk = &latches[4].2;
    let cancelled =
        tokio::time::timeout(Duration::from_micros(1), LeaderLatch::start(zk, election, opts("gone"))).await;
    let waiting = LeaderLatch::start(zk, election, opts("waiting")).await.expect("start");
    assert!(!waiting.is_leader(), "p4 still leads");
    drop(cancelled);
    drop(waiting);
    poll(Duration::from_secs(5), "only p4's node is left", || async {
        (candidates(&admin, election).await.len() == 1).then_some(())
    })
    .await;

    p.say("the last leader is dropped: its term ends, its node goes, observers see no leader");
    let (_, last, _) = latches.pop().expect("p4");
    let mut loss = last.leadership().expect("p4 leads").loss();
    drop(last);
    assert_eq!(loss.may_be_lost().await, Hold::Lost);
    poll(Duration::from_secs(5), "no candidate left", || async {
        candidates(&admin, election).await.is_empty().then_some(())
    })
    .await;
    poll(Duration::from_secs(5), "observer sees no leader", || async { seen.borrow().is_none().then_some(()) }).await;
    assert_eq!(current_leader(&admin, ROOT, election).await.expect("current_leader"), None);

    let ids: Vec<Option<(String, u64)>> =
        observed.lock().expect("observed").iter().map(|l| l.as_ref().map(|l| (l.id.clone(), l.epoch))).collect();
    p.say(format!("observer saw {ids:?}"));
    let leaders: Vec<&(String, u64)> = ids.iter().flatten().collect();
    assert!(leaders.windows(2).all(|w| w[0].1 <= w[1].1), "observed epochs never fall: {ids:?}");
    assert_eq!(ids.last(), Some(&None));
    log.check();
    assert_eq!(log.intervals().len(), 5, "{:#?}", log.intervals());
    seen.mark_unchanged();
    p.say("done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_runs_a_term_per_leadership() {
    let p = Phases::new("selector_terms");
    let zk_server = start_zk("selector_terms").await;
    let hosts = zk_server.connect_string();
    let election = "cron";
    let admin = connect(&hosts, 4000).await;

    // Each term reports (who, epoch) and lasts until the test releases it (or it is cancelled).
    let (terms_tx, mut terms) = mpsc::unbounded_channel::<(String, u64)>();
    // Kept open so a release sent between terms is not an error.
    let (release_tx, _release_rx) = tokio::sync::broadcast::channel::<String>(16);
    let cancelled: Arc<Mutex<Vec<u64>>> = Arc::default();
    let spawn_selector = |id: &'static str, zk: Zk| {
        let (terms_tx, release_tx, cancelled) = (terms_tx.clone(), release_tx.clone(), cancelled.clone());
        tokio::spawn(async move {
            LeaderSelector::run(&zk, election, opts(id), |leadership| {
                let (terms_tx, mut release, cancelled) = (terms_tx.clone(), release_tx.subscribe(), cancelled.clone());
                async move {
                    // Records the epoch if this future is dropped before it finishes.
                    struct OnCancel(Arc<Mutex<Vec<u64>>>, u64, bool);
                    impl Drop for OnCancel {
                        fn drop(&mut self) {
                            if !self.2 {
                                self.0.lock().expect("cancelled lock").push(self.1);
                            }
                        }
                    }
                    let mut guard = OnCancel(cancelled, leadership.epoch(), false);
                    let _ = terms_tx.send((id.to_string(), leadership.epoch()));
                    while let Ok(who) = release.recv().await {
                        if who == id {
                            break;
                        }
                    }
                    guard.2 = true;
                }
            })
            .await
        })
    };

    p.say("two selectors: a joins first and leads");
    let a = spawn_selector("a", connect(&hosts, 2000).await);
    let (who, e1) = tokio::time::timeout(Duration::from_secs(5), terms.recv()).await.expect("a term").expect("term");
    assert_eq!(who, "a");
    let b = spawn_selector("b", connect(&hosts, 2000).await);
    poll(Duration::from_secs(5), "b in line", || async {
        (candidates(&admin, election).await.len() == 2).then_some(())
    })
    .await;

    p.say("a's closure returns: b leads, then a (requeued) leads again, epochs rising");
    release_tx.send("a".into()).expect("release a");
    let (who, e2) = tokio::time::timeout(Duration::from_secs(5), terms.recv()).await.expect("b term").expect("term");
    assert_eq!(who, "b");
    assert!(e2 > e1);
    release_tx.send("b".into()).expect("release b");
    let (who, e3) = tokio::time::timeout(Duration::from_secs(5), terms.recv()).await.expect("a term").expect("term");
    assert_eq!(who, "a");
    assert!(e3 > e2);

    p.say("a's node is deleted under it: its closure is cancelled, b leads, a stands again");
    let info = current_leader(&admin, ROOT, election).await.expect("read").expect("a leader");
    assert_eq!((info.id.as_str(), info.epoch), ("a", e3));
    admin.delete(&format!("{ROOT}/elections/{election}/{}", info.node), None).await.expect("delete a's node");
    let (who, e4) = tokio::time::timeout(Duration::from_secs(5), terms.recv()).await.expect("b term").expect("term");
    assert_eq!(who, "b");
    assert!(e4 > e3);
    poll(Duration::from_secs(5), "a's term cancelled", || async {
        cancelled.lock().expect("cancelled").contains(&e3).then_some(())
    })
    .await;
    poll(Duration::from_secs(5), "a in line again", || async {
        (candidates(&admin, election).await.len() == 2).then_some(())
    })
    .await;

    p.say("selectors dropped: their nodes go");
    a.abort();
    b.abort();
    let _ = a.await;
    let _ = b.await;
    poll(Duration::from_secs(5), "no candidate left", || async {
        candidates(&admin, election).await.is_empty().then_some(())
    })
    .await;

    p.say("requeue off: run returns after its one term, having resigned");
    let zk = connect(&hosts, 2000).await;
    let once = ElectionOptions { requeue: false, ..opts("once") };
    let mut calls = 0;
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        LeaderSelector::run(&zk, election, once, |l| {
            calls += 1;
            assert!(l.epoch() > e4);
            async {}
        }),
    )
    .await
    .expect("run returns");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(calls, 1);
    assert!(candidates(&admin, election).await.is_empty());
    p.say("done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_steps_down_before_the_next_is_elected() {
    const SESSION_MS: u64 = 2000;
    let p = Phases::new("partitioned_leader");
    let zk_server = start_zk("partitioned_leader").await;
    let hosts = zk_server.connect_string();
    let target: SocketAddr = hosts.parse().expect("zookeeper address");
    let (proxied, cut) = partitionable_proxy(target).await;
    let election = "primary";
    let log = LeaderLog::default();

    p.say(format!("leader L talks to ZooKeeper through a proxy at {proxied}; F1 and F2 directly"));
    let l_zk = connect(&proxied, SESSION_MS).await;
    let l = Arc::new(LeaderLatch::start(&l_zk, election, opts("L")).await.expect("start L"));
    let l_recorder = log.follow("L", l.clone());
    let l_term = poll(Duration::from_secs(5), "L leads", || async { l.leadership() }).await;
    let mut followers = Vec::new();
    for id in ["F1", "F2"] {
        let zk = connect(&hosts, SESSION_MS).await;
        let latch = Arc::new(LeaderLatch::start(&zk, election, opts(id)).await.expect("start follower"));
        log.follow(id, latch.clone());
        followers.push((latch, zk));
    }

    p.say("cut L off (silence, no reset)");
    let mut l_loss = l_term.loss();
    let cut_at = Instant::now();
    cut.store(true, Ordering::SeqCst);
    let stepped = tokio::time::timeout(Duration::from_millis(SESSION_MS), l_loss.may_be_lost()).await;
    let stepped_after = cut_at.elapsed();
    assert_eq!(stepped, Ok(Hold::MayBeLost), "L must step down before its session can expire");
    let grace = Duration::from_millis(SESSION_MS / 3);
    assert!(stepped_after >= grace, "L stepped down after {stepped_after:?}, before the grace {grace:?}");
    p.say(format!("L stepped down {stepped_after:?} after the cut"));
    assert!(!l.is_leader());

    p.say("F1 is elected once ZooKeeper expires L's session");
    let f1 = poll(Duration::from_millis(SESSION_MS * 3), "F1 leads", || async { followers[0].0.leadership() }).await;
    let handover = cut_at.elapsed();
    p.say(format!("F1 leads {handover:?} after the cut (session timeout {SESSION_MS} ms)"));
    assert!(handover < Duration::from_millis(SESSION_MS + 1000), "hand-over took {handover:?}");
    assert!(f1.epoch() > l_term.epoch());
    assert!(!followers[1].0.is_leader());

    p.say("L learns its session is gone: Lost, and the latch ends");
    tokio::time::timeout(Duration::from_millis(SESSION_MS * 3), l_loss.lost()).await.expect("L's term is lost");
    let err = l.await_leadership().await.expect_err("L's candidacy is over");
    assert!(err.is_session_lost(), "{err}");
    assert!(matches!(err, ElectionError::Ended { reason: EndReason::SessionLost, .. }), "{err}");
    l_recorder.await.expect("recorder");

    p.say("L rejoins with a new session, at the end of the line, and leads after F1 and F2 resign");
    let mut l = Arc::try_unwrap(l).expect("only the test holds L now");
    let l_zk2 = connect(&hosts, SESSION_MS).await;
    l.rejoin(&l_zk2).await.expect("rejoin");
    let l = Arc::new(l);
    log.follow("L", l.clone());
    assert!(!l.is_leader());
    followers[0].0.resign().await.expect("F1 resigns");
    let f2 = poll(Duration::from_secs(5), "F2 leads", || async { followers[1].0.leadership() }).await;
    assert!(f2.epoch() > f1.epoch());
    followers[1].0.resign().await.expect("F2 resigns");
    let l_again = poll(Duration::from_secs(5), "L leads again", || async { l.leadership() }).await;
    assert!(l_again.epoch() > f2.epoch());

    log.check();
    p.say(format!("{} leadership intervals, no overlap, epochs rising", log.intervals().len()));
    drop(l_zk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_leader_steps_down_within_the_grace_and_resumes() {
    const SESSION_MS: u64 = 4000;
    const GRACE_MS: u64 = 400;
    let p = Phases::new("suspended_leader");
    let zk_server = start_zk("suspended_leader").await;
    let hosts = zk_server.connect_string();
    let election = "scheduler";
    let log = LeaderLog::default();
    let options = |id: &str| ElectionOptions { suspend_grace: Some(Duration::from_millis(GRACE_MS)), ..opts(id) };

    p.say("leader L and follower F, both talking to the one ZooKeeper server");
    let l_zk = connect(&hosts, SESSION_MS).await;
    let l = Arc::new(LeaderLatch::start(&l_zk, election, options("L")).await.expect("start L"));
    log.follow("L", l.clone());
    let term = poll(Duration::from_secs(5), "L leads", || async { l.leadership() }).await;
    let f_zk = connect(&hosts, SESSION_MS).await;
    let f = Arc::new(LeaderLatch::start(&f_zk, election, options("F")).await.expect("start F"));
    log.follow("F", f.clone());
    let session = l_zk.client().session_id();

    // When L's client notices the suspension.
    let noticed: Arc<Mutex<Option<Instant>>> = Arc::default();
    {
        let (mut states, noticed) = (l_zk.client().state_watcher(), noticed.clone());
        tokio::spawn(async move {
            loop {
                if states.changed().await == SessionState::Disconnected {
                    noticed.lock().expect("noticed").get_or_insert(Instant::now());
                }
            }
        });
    }

    p.say("SIGSTOP ZooKeeper");
    let mut loss = term.loss();
    let frozen_at = Instant::now();
    zk_server.sigstop();
    let stepped = tokio::time::timeout(Duration::from_millis(SESSION_MS), loss.may_be_lost()).await;
    let stepped_at = Instant::now();
    p.say("stepped down; SIGCONT ZooKeeper");
    zk_server.sigcont();
    assert_eq!(stepped, Ok(Hold::MayBeLost), "L must step down while ZooKeeper is frozen");
    assert!(!l.is_leader());
    let noticed =
        poll(Duration::from_secs(1), "L's client noticed", || async { *noticed.lock().expect("noticed") }).await;
    let after_notice = stepped_at - noticed;
    let after_freeze = stepped_at - frozen_at;
    p.say(format!(
        "suspension noticed {:?} after the freeze; stepped down {after_notice:?} later",
        noticed - frozen_at
    ));
    assert!(
        after_notice >= Duration::from_millis(GRACE_MS - 20) && after_notice < Duration::from_millis(GRACE_MS + 500),
        "stepped down {after_notice:?} after noticing; the grace is {GRACE_MS} ms"
    );
    assert!(
        after_freeze < Duration::from_millis(SESSION_MS * 3 / 4),
        "stepped down only {after_freeze:?} after the freeze"
    );

    p.say("the session survives: L resumes the same term, F never led");
    let resumed = poll(Duration::from_millis(SESSION_MS), "L leads again", || async { l.leadership() }).await;
    assert_eq!(resumed.epoch(), term.epoch(), "same term");
    assert_eq!(l_zk.client().session_id(), session, "same session");
    assert!(term.is_held());
    assert!(!f.is_leader());
    let info = current_leader(&f_zk, ROOT, election).await.expect("read").expect("a leader");
    assert_eq!((info.id.as_str(), info.epoch), ("L", term.epoch()));

    p.say("L resigns: F leads with a higher epoch");
    l.resign().await.expect("resign");
    let f_term = poll(Duration::from_secs(5), "F leads", || async { f.leadership() }).await;
    assert!(f_term.epoch() > term.epoch());
    log.check();
    let intervals = log.intervals();
    assert!(intervals.iter().filter(|i| i.who == "L").count() >= 2, "L led, stepped down, led again: {intervals:#?}");
    p.say("done");
}
