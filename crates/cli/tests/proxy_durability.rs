//! What the proxy acknowledges around failovers (BRIEF §3 "Failover fencing" and "Durability
//! modes"), with a real ZooKeeper, real Redis groups, a `zedis controller` and `zedis proxy`
//! child processes started by each test:
//!
//! - `async` mode, `kill -9` of a master under load: every write the proxy acknowledged after
//!   the new master took over is on the new master; earlier acknowledged ones may be lost
//!   (counted and printed).
//! - `async` mode, a master frozen (SIGSTOP) while writes to it are in flight: after the
//!   failover its late `+OK`s are turned into `TRYAGAIN` errors, never acknowledgements.
//! - `replicated` mode, `kill -9` of a master of a group with two replicas under load: no
//!   acknowledged write is lost.
//! - `replicated` mode with every replica frozen: writes fail with `NOREPLICAS` within about
//!   the WAIT timeout, never `+OK`; they succeed again once the replicas resume.
//! - The proxy's registration node: address, pid and the applied epoch, which follows a
//!   failover; it vanishes one session timeout after the proxy is `kill -9`ed.
//!
//! Every write path is covered: single-key, multi-key split, EXEC, EVAL and blocking writes.
//! The one test marked `#[ignore]` fails today (run it with `--ignored`): it shows a
//! multi-fault window, beyond the single-failover guarantee, in which a failover promotes a
//! lagging replica while a stalled one holds acknowledged writes.

mod common;
mod proxy_common;
mod proxy_faults_common;

use std::time::{Duration, Instant};

use common::{epoch, master_of, replicates, Harness};
use proxy_common::Resp;
use proxy_faults_common::{
    error_kinds, registration_path, server_values, wait_for, Client, Outcome, ProxyProc, Writers, ZkReader,
};

const SETTLE: Duration = Duration::from_secs(20);

/// Starts a proxy for the harness's cluster.
fn proxy(h: &Harness, id: &str, global: &[&str], args: &[&str]) -> ProxyProc {
    let p = ProxyProc::spawn(&h.zk.connect_string(), &h.cluster, h.dir.path(), id, global, args);
    h.phase(&format!("proxy {id} on {} with {global:?} {args:?}", p.addr));
    p
}

/// ZooKeeper, one group of `servers` Redis servers, a controller, the cluster settled.
fn settled_group(test: &str, servers: usize) -> (Harness, u64) {
    let mut h = Harness::start(test, &[servers]);
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    let st = h.wait_settled(SETTLE);
    let e = epoch(&st);
    (h, e)
}

/// Which of `outcomes` were acknowledged but are not on `addr` (with the right value), and
/// which keys hold a value nobody wrote.
fn missing_on(addr: &str, prefix: &str, outcomes: &[Outcome]) -> (Vec<Outcome>, Vec<String>) {
    let keys: Vec<String> = outcomes.iter().map(|o| format!("{prefix}:{}", o.i)).collect();
    let values = server_values(addr, None, &keys).unwrap_or_else(|e| panic!("reading {addr}: {e}"));
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for ((o, k), v) in outcomes.iter().zip(&keys).zip(values) {
        match v {
            Some(v) if v != o.i.to_string() => wrong.push(format!("{k} = {v:?}")),
            None if o.acked() => missing.push(o.clone()),
            _ => {}
        }
    }
    (missing, wrong)
}

fn first_keys(outcomes: &[Outcome], prefix: &str) -> Vec<String> {
    outcomes.iter().take(10).map(|o| format!("{prefix}:{} ({:?})", o.i, o.reply)).collect()
}

/// `async` mode: `kill -9` of the master while three clients write. Writes sent after the kill
/// can only be acknowledged by the promoted replica, and all of those must be on it; writes
/// acknowledged by the old master before it died may be lost (asynchronous replication), and
/// are counted.
#[test]
fn async_kill9_loses_no_write_acknowledged_by_the_new_master() {
    let (mut h, e0) = settled_group("dur-async-kill9", 2);
    let (old, replica) = (h.addr(0, 0), h.addr(0, 1));
    let p = proxy(&h, "p1", &[], &[]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));

    h.phase("3 writers: SET dak:i i through the proxy");
    let start = Instant::now();
    let w = Writers::start(&p.addr, "dak", 3, Duration::from_secs(8));
    w.wait_acked_since(start, 300, Duration::from_secs(15), "300 writes acknowledged");

    h.phase(&format!("kill -9 the master {old}"));
    let killed = Instant::now();
    h.redis(&old).kill9();
    let st = h.wait_master(1, Duration::from_secs(15), "the replica is promoted", |m| m == replica);
    w.wait_acked_since(killed, 300, Duration::from_secs(15), "300 writes sent after the kill acknowledged");
    let outcomes = w.stop();

    h.phase("check every acknowledged write against the new master");
    let first_new = outcomes
        .iter()
        .filter(|o| o.sent > killed && o.acked())
        .map(|o| o.done)
        .min()
        .expect("a write acknowledged after the kill");
    let (missing, wrong) = missing_on(&replica, "dak", &outcomes);
    let (late, early): (Vec<Outcome>, Vec<Outcome>) =
        missing.into_iter().partition(|o| o.sent > killed || o.done >= first_new);
    let acked = outcomes.iter().filter(|o| o.acked()).count();
    h.phase(&format!(
        "{} writes, {acked} acknowledged, errors {:?}; {} acknowledged by the old master and lost \
         (allowed in async mode), {} acknowledged by the new master and lost; first write on the new \
         master {:.2}s after the kill",
        outcomes.len(),
        error_kinds(&outcomes),
        early.len(),
        late.len(),
        (first_new - killed).as_secs_f64()
    ));
    assert!(wrong.is_empty(), "keys hold values nobody wrote: {:?}", &wrong[..wrong.len().min(10)]);
    assert!(late.is_empty(), "writes acknowledged after the failover are lost: {:?}", first_keys(&late, "dak"));
    let new_epoch = epoch(&st);
    assert!(new_epoch > e0, "the failover bumped the epoch ({e0} -> {new_epoch})");
    p.wait_epoch(new_epoch, &[], Duration::from_secs(5));
}

/// `async` mode: the master is frozen (SIGSTOP) with a write from each of three clients in
/// flight (the proxy's request timeout is longer than the freeze). The controller fails over;
/// a new client's write goes to the new master; then the old master resumes and answers the
/// stuck writes with `+OK`. The proxy must not pass those on: the old master is deposed and
/// will be resynchronised from the new one, dropping them.
#[test]
fn async_late_replies_of_a_deposed_master_are_not_acknowledged() {
    let (mut h, e0) = settled_group("dur-async-frozen", 2);
    let (old, replica) = (h.addr(0, 0), h.addr(0, 1));
    let p = proxy(&h, "p1", &[], &["--request-timeout-ms", "40000"]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));

    h.phase("3 writers: SET daf:i i through the proxy");
    let start = Instant::now();
    let w = Writers::start(&p.addr, "daf", 3, Duration::from_secs(60));
    w.wait_acked_since(start, 200, Duration::from_secs(15), "200 writes acknowledged");

    h.phase(&format!("SIGSTOP the master {old}"));
    let frozen = Instant::now();
    h.redis(&old).sigstop();
    let st = h.wait_master(1, Duration::from_secs(25), "the replica is promoted", |m| m == replica);
    let new_epoch = epoch(&st);
    p.wait_epoch(new_epoch, &[], Duration::from_secs(10));

    h.phase("while the old master is frozen, a new client's write goes to the new master");
    let mut c = Client::connect(&p.addr, Duration::from_secs(5)).expect("connect to the proxy");
    assert_eq!(c.call(&["SET", "daf:probe", "1"]).expect("SET"), Resp::ok());
    let stuck_before = w.snapshot().len();

    h.phase("SIGCONT the old master: it answers the writes stuck on it");
    let resumed = Instant::now();
    h.redis(&old).sigcont();
    w.wait_acked_since(resumed, 300, Duration::from_secs(15), "300 writes sent after the resume acknowledged");
    h.wait_until(Duration::from_secs(15), "the old master is demoted to a replica of the new one", || {
        replicates(&old, &replica)
    });
    let outcomes = w.stop();

    let stuck: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent < resumed && o.done >= resumed).collect();
    let stuck_acked: Vec<String> = stuck
        .iter()
        .filter(|o| o.acked())
        .map(|o| format!("daf:{} sent {:?} after the freeze", o.i, o.sent - frozen))
        .collect();
    let tryagain = stuck.iter().filter(|o| o.error().is_some_and(|e| e.starts_with("TRYAGAIN"))).count();
    let after_freeze: Vec<Outcome> = outcomes.iter().filter(|o| o.sent > frozen).cloned().collect();
    let (missing, wrong) = missing_on(&replica, "daf", &after_freeze);
    let (lost_before, _) = missing_on(&replica, "daf", &outcomes);
    h.phase(&format!(
        "{} writes ({stuck_before} before the resume), errors {:?}; {} were stuck on the frozen master: \
         {tryagain} TRYAGAIN, {} acknowledged; {} acknowledged before the freeze and lost (allowed in async mode)",
        outcomes.len(),
        error_kinds(&outcomes),
        stuck.len(),
        stuck_acked.len(),
        lost_before.len() - missing.len()
    ));
    assert!(!stuck.is_empty(), "no write was in flight on the frozen master; the test proves nothing");
    assert!(stuck_acked.is_empty(), "the deposed master's replies were acknowledged: {stuck_acked:?}");
    assert!(
        tryagain >= 1,
        "the stuck writes should get TRYAGAIN: {:?}",
        stuck.iter().map(|o| &o.reply).collect::<Vec<_>>()
    );
    assert!(wrong.is_empty(), "keys hold values nobody wrote: {wrong:?}");
    assert!(
        missing.is_empty(),
        "writes sent after the freeze were acknowledged and lost: {:?}",
        first_keys(&missing, "daf")
    );
}

/// `replicated` mode (`WAIT 1 500` after every write): `kill -9` of the master of a group with
/// two replicas while three clients write, and one more second of writes after the failover.
/// Every acknowledged write must be on the new master: the acknowledgement means a replica has
/// it, and the controller promotes the replica with the greatest offset.
#[test]
fn replicated_kill9_loses_no_acknowledged_write() {
    let (mut h, e0) = settled_group("dur-repl-kill9", 3);
    let old = h.addr(0, 0);
    let replicas = [h.addr(0, 1), h.addr(0, 2)];
    let p = proxy(&h, "p1", &[], &["--durability", "replicated", "--wait-timeout-ms", "500"]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));

    wait_streaming(&old, 2);

    h.phase("4 writers: SET drk:i i through the proxy");
    let start = Instant::now();
    let w = Writers::start(&p.addr, "drk", 4, Duration::from_secs(10));
    w.wait_acked_since(start, 1000, Duration::from_secs(15), "1,000 writes acknowledged");

    h.phase(&format!("kill -9 the master {old}"));
    let killed = Instant::now();
    h.redis(&old).kill9();
    let st = h.wait_master(1, Duration::from_secs(15), "a replica is promoted", |m| replicas.iter().any(|r| r == m));
    let promoted = master_of(&st, 1);
    let failed_over = Instant::now();
    w.wait_acked_since(killed, 1, Duration::from_secs(15), "a write sent after the kill is acknowledged");
    let resumed = Instant::now();
    wait_for(Duration::from_secs(5), "one more second of writes", || {
        if resumed.elapsed() >= Duration::from_secs(1) {
            Ok(())
        } else {
            Err("writing".into())
        }
    });
    let outcomes = w.stop();

    h.phase(&format!("check every acknowledged write on the new master {promoted}"));
    let (missing, wrong) = missing_on(&promoted, "drk", &outcomes);
    let acked = outcomes.iter().filter(|o| o.acked()).count();
    let acked_after = outcomes.iter().filter(|o| o.acked() && o.sent > killed).count();
    h.phase(&format!(
        "{} writes, {acked} acknowledged ({acked_after} sent after the kill), errors {:?}; failover seen \
         {:.2}s after the kill, writes acknowledged again {:.2}s after it; {} acknowledged writes lost",
        outcomes.len(),
        error_kinds(&outcomes),
        (failed_over - killed).as_secs_f64(),
        (resumed - killed).as_secs_f64(),
        missing.len()
    ));
    if !missing.is_empty() {
        for r in &replicas {
            eprintln!("INFO replication of {r}: {:?}", common::info_replication(r));
        }
    }
    assert!(wrong.is_empty(), "keys hold values nobody wrote: {:?}", &wrong[..wrong.len().min(10)]);
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are not on the new master {promoted}, e.g. {:?}",
        missing.len(),
        first_keys(&missing, "drk")
    );
    assert!(acked_after >= 1, "no write was acknowledged after the failover");
}

/// Waits until `replicas` replicas of `master` confirm a write with `WAIT`. Right after a
/// diskless full sync a replica reports its link up, but its master starts streaming to it (and
/// counting it in `WAIT`) only after the replica's first `REPLCONF ACK`, up to a second later.
fn wait_streaming(master: &str, replicas: usize) {
    wait_for(Duration::from_secs(10), &format!("{replicas} replicas of {master} confirm writes"), || {
        let mut m = proxy_faults_common::server_client(master, None)?;
        m.call(&["SET", "wait-streaming-probe", "1"])?;
        match m.call(&["WAIT", &replicas.to_string(), "200"])? {
            Resp::Int(n) if n as usize >= replicas => Ok(()),
            other => Err(format!("WAIT answered {other}")),
        }
    });
}

/// Sends `args` and returns the reply and how long it took.
fn timed(c: &mut Client, args: &[&str]) -> (Resp, Duration) {
    let t = Instant::now();
    let r = c.call(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    (r, t.elapsed())
}

/// `replicated` mode with both replicas frozen: every kind of write gets `NOREPLICAS` after
/// about the WAIT timeout (500 ms), never `+OK`; reads still work; once the replicas resume,
/// writes are acknowledged again.
#[test]
fn replicated_writes_fail_with_noreplicas_while_replicas_are_frozen() {
    let (mut h, e0) = settled_group("dur-repl-noreplicas", 3);
    let replicas = [h.addr(0, 1), h.addr(0, 2)];
    let p = proxy(&h, "p1", &[], &["--durability", "replicated", "--wait-timeout-ms", "500"]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));
    let mut c = Client::connect(&p.addr, Duration::from_secs(10)).expect("connect to the proxy");
    wait_streaming(&h.addr(0, 0), 2);

    h.phase("with the replicas up, writes are acknowledged");
    let (r, took) = timed(&mut c, &["SET", "drn:a", "1"]);
    assert_eq!(r, Resp::ok(), "SET with replicas up ({took:?})");
    assert_eq!(timed(&mut c, &["MSET", "drn:b", "1", "drn:c", "1"]).0, Resp::ok());

    h.phase("SIGSTOP both replicas");
    for r in &replicas {
        h.redis(r).sigstop();
    }
    let writes: &[&[&str]] = &[
        &["SET", "drn:a", "2"],
        &["SET", "drn:new", "2"],
        &["INCR", "drn:counter"],
        &["LPUSH", "drn:list", "x"],
        &["DEL", "drn:b"],
        &["MSET", "drn:b", "2", "drn:c", "2"],
        &["SET", "drn:a", "3"],
    ];
    for args in writes {
        let (r, took) = timed(&mut c, args);
        let e = r.as_error().unwrap_or_else(|| panic!("{args:?} with the replicas frozen answered {r} after {took:?}"));
        assert!(e.starts_with("NOREPLICAS"), "{args:?} answered -{e}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{args:?} failed after {took:?}; the WAIT timeout is 500 ms"
        );
        eprintln!("    {args:?} -> -{e} after {:.0} ms", took.as_secs_f64() * 1000.0);
    }
    h.phase("reads still work (the master has the unconfirmed writes)");
    let (r, took) = timed(&mut c, &["GET", "drn:a"]);
    assert_eq!(r, Resp::bulk("3"), "GET while the replicas are frozen ({took:?})");
    assert!(took < Duration::from_millis(450), "a read waited for replicas: {took:?}");

    h.phase("SIGCONT the replicas: writes are acknowledged again");
    for r in &replicas {
        h.redis(r).sigcont();
    }
    wait_for(Duration::from_secs(10), "SET is acknowledged again", || match c.call(&["SET", "drn:a", "4"]) {
        Ok(r) if r == Resp::ok() => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(timed(&mut c, &["MSET", "drn:b", "4", "drn:c", "4"]).0, Resp::ok());
}

/// The registration node `/zedis/clusters/<cluster>/proxies/<id>`: JSON with the proxy's id,
/// address, pid, version and applied epoch; the epoch follows a failover; the node is
/// ephemeral and vanishes one session timeout (2 s) after the proxy is `kill -9`ed.
#[test]
fn registration_follows_the_epoch_and_vanishes_with_the_session() {
    let (mut h, e0) = settled_group("dur-registration", 2);
    let (old, replica) = (h.addr(0, 0), h.addr(0, 1));
    let mut p = proxy(&h, "reg-1", &["--session-timeout-ms", "2000"], &[]);
    let zk = ZkReader::connect(&h.zk.connect_string());
    let path = registration_path(&h.cluster, "reg-1");
    let pid = u64::from(p.pid().expect("proxy pid"));

    h.phase(&format!("{path} shows the proxy at epoch {e0}"));
    let reg =
        wait_for(Duration::from_secs(10), "the registration node has the current epoch", || match zk.json(&path)? {
            Some(v) if v["epoch"].as_u64() == Some(e0) => Ok(v),
            other => Err(format!("{other:?}")),
        });
    assert_eq!(reg["id"], "reg-1", "{reg}");
    assert_eq!(reg["addr"].as_str(), Some(p.addr.as_str()), "{reg}");
    assert_eq!(reg["pid"].as_u64(), Some(pid), "{reg}");
    assert_eq!(reg["version"].as_str(), Some(env!("CARGO_PKG_VERSION")), "{reg}");
    let since = reg["since_ms"].as_u64().unwrap_or(0);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(since > 0 && since <= now_ms && now_ms - since < 120_000, "since_ms {since}, now {now_ms}: {reg}");
    let children = zk.children(&format!("/zedis/clusters/{}/proxies", h.cluster)).unwrap();
    assert_eq!(children, vec!["reg-1".to_string()]);

    h.phase(&format!("kill -9 the master {old}: the node follows the new epoch"));
    h.redis(&old).kill9();
    let st = h.wait_master(1, Duration::from_secs(15), "the replica is promoted", |m| m == replica);
    let e1 = epoch(&st);
    assert!(e1 > e0);
    let reg = wait_for(Duration::from_secs(10), "the registration node shows the new epoch", || {
        // The topology may move on again (the controller records later changes): follow it.
        let now = epoch(&h.status());
        match zk.json(&path)? {
            Some(v) if v["epoch"].as_u64() == Some(now) && now >= e1 => Ok(v),
            other => Err(format!("topology epoch {now}, node {other:?}")),
        }
    });
    assert_eq!(reg["addr"].as_str(), Some(p.addr.as_str()), "{reg}");
    assert_eq!(reg["since_ms"].as_u64(), Some(since), "same process, same since_ms: {reg}");

    h.phase("kill -9 the proxy: its node vanishes after the session timeout");
    p.kill9();
    let killed = Instant::now();
    assert!(zk.json(&path).unwrap().is_some(), "the node vanished at once; it should last the session timeout");
    wait_for(Duration::from_secs(10), "the registration node is gone", || match zk.json(&path)? {
        None => Ok(()),
        Some(v) => Err(format!("still there: {v}")),
    });
    let gone = killed.elapsed();
    h.phase(&format!("the node vanished {:.2}s after the kill (session timeout 2 s)", gone.as_secs_f64()));
    assert!(gone >= Duration::from_millis(1000), "vanished after {gone:?}, before the session could expire");
    assert!(gone < Duration::from_secs(6), "vanished only after {gone:?}");
}

/// Runs `commands` one after the other on a connection of its own, in a thread; returns the
/// replies (I/O failures as errors).
fn in_background(addr: &str, commands: &[&[&str]]) -> std::thread::JoinHandle<Vec<Resp>> {
    let addr = addr.to_string();
    let commands: Vec<Vec<String>> = commands.iter().map(|c| c.iter().map(|s| s.to_string()).collect()).collect();
    std::thread::spawn(move || {
        let mut c = Client::connect(&addr, Duration::from_secs(60)).expect("connect to the proxy");
        commands.iter().map(|args| c.call(args).unwrap_or_else(|e| Resp::Error(format!("i/o: {e}")))).collect()
    })
}

/// Write paths other than single-key commands, sent while the master is frozen and answered by
/// it after the failover, when it is deposed: none may be acknowledged, since the old master is
/// resynchronised from the new one and their effects are dropped.
///
/// Fails today: only single-key commands go through the epoch fence
/// (`crates/proxy/src/dispatch.rs`: `keyed` builds a `Fence`; `split` — MSET, multi-key DEL —,
/// `tx::command` — EXEC — and `blocking` — BLMOVE — do not), so the deposed master's `OK`,
/// `:2`, `[OK]` and popped element reach the client.
#[test]
fn async_no_write_path_is_acknowledged_by_a_deposed_master() {
    let (mut h, e0) = settled_group("dur-async-unfenced", 2);
    let (old, replica) = (h.addr(0, 0), h.addr(0, 1));
    let p = proxy(&h, "p1", &[], &["--request-timeout-ms", "40000"]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));
    let mut c = Client::connect(&p.addr, Duration::from_secs(5)).expect("connect to the proxy");
    for args in [&["RPUSH", "{dau}src", "a", "b"][..], &["MSET", "dau:d1", "1", "dau:d2", "1"]] {
        assert!(!c.call(args).expect("seed").is_error(), "{args:?}");
    }
    h.wait_until(Duration::from_secs(10), "the replica has the seed keys", || {
        match server_values(&replica, None, &["dau:d1".into(), "dau:d2".into()])? {
            v if v.iter().all(|v| v.is_some()) => Ok(()),
            v => Err(format!("{v:?}")),
        }
    });

    h.phase(&format!("SIGSTOP the master {old}; send one write of each kind"));
    h.redis(&old).sigstop();
    let probes: Vec<(&str, std::thread::JoinHandle<Vec<Resp>>)> = vec![
        ("SET (fenced)", in_background(&p.addr, &[&["SET", "dau:set", "1"]])),
        ("MSET", in_background(&p.addr, &[&["MSET", "dau:m1", "1", "dau:m2", "1"]])),
        ("DEL of two keys", in_background(&p.addr, &[&["DEL", "dau:d1", "dau:d2"]])),
        ("MULTI/SET/EXEC", in_background(&p.addr, &[&["MULTI"], &["SET", "dau:tx", "1"], &["EXEC"]])),
        ("BLMOVE", in_background(&p.addr, &[&["BLMOVE", "{dau}src", "{dau}dst", "LEFT", "RIGHT", "0"]])),
    ];
    let st = h.wait_master(1, Duration::from_secs(25), "the replica is promoted", |m| m == replica);
    p.wait_epoch(epoch(&st), &[], Duration::from_secs(10));

    h.phase("SIGCONT the old master: it answers the stuck writes");
    h.redis(&old).sigcont();
    let mut acknowledged = Vec::new();
    for (what, t) in probes {
        let replies = t.join().expect("probe thread");
        let last = replies.last().cloned().unwrap_or(Resp::Nil);
        eprintln!("    {what}: {}", replies.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" / "));
        if !last.is_error() {
            acknowledged.push(format!("{what} -> {last}"));
        }
    }
    h.wait_until(Duration::from_secs(15), "the old master is demoted", || replicates(&old, &replica));
    let after = server_values(&replica, None, &["dau:m1".into(), "dau:d1".into(), "dau:tx".into(), "{dau}dst".into()]);
    h.phase(&format!("on the new master: dau:m1, dau:d1, dau:tx, {{dau}}dst = {after:?}"));
    assert!(acknowledged.is_empty(), "writes acknowledged by the deposed master (and lost): {acknowledged:?}");
}

/// `replicated` mode with both replicas frozen: transactions, scripts that write and blocking
/// writes must not be acknowledged either, since no replica has them (every write path —
/// keyed, split, EXEC, blocking, scripts — is followed by `WAIT`).
#[test]
fn replicated_every_write_path_waits_for_a_replica() {
    let (mut h, e0) = settled_group("dur-repl-paths", 3);
    let replicas = [h.addr(0, 1), h.addr(0, 2)];
    let p = proxy(&h, "p1", &[], &["--durability", "replicated", "--wait-timeout-ms", "500"]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));
    let mut c = Client::connect(&p.addr, Duration::from_secs(10)).expect("connect to the proxy");
    assert_eq!(c.call(&["RPUSH", "{drp}src", "a", "b"]).unwrap(), Resp::Int(2));

    h.phase("SIGSTOP both replicas");
    for r in &replicas {
        h.redis(r).sigstop();
    }
    let cases: &[(&str, &[&[&str]])] = &[
        ("SET (control)", &[&["SET", "drp:set", "1"]]),
        ("MULTI/SET/EXEC", &[&["MULTI"], &["SET", "drp:tx", "1"], &["EXEC"]]),
        ("EVAL set", &[&["EVAL", "return redis.call('set', KEYS[1], ARGV[1])", "1", "drp:eval", "1"]]),
        ("BLMOVE", &[&["BLMOVE", "{drp}src", "{drp}dst", "LEFT", "RIGHT", "0"]]),
    ];
    let mut acknowledged = Vec::new();
    for (what, commands) in cases {
        let mut last = Resp::Nil;
        for args in commands.iter() {
            last = c.call(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        eprintln!("    {what}: {last}");
        if !last.is_error() {
            acknowledged.push(format!("{what} -> {last}"));
        }
    }
    for r in &replicas {
        h.redis(r).sigcont();
    }
    assert!(acknowledged.is_empty(), "acknowledged while no replica could confirm them: {acknowledged:?}");
}

/// `replicated` mode, one failover, but the replica that confirmed the last writes is stalled
/// (SIGSTOP, 2 s) when the master dies, while the other one, which had lost its link and missed
/// them, is reachable. Promoting the lagging one loses writes that were acknowledged.
///
/// Fails today: `choose_failover` (crates/controller/src/planner.rs) considers only replicas
/// whose last probe succeeded (`reachable`; one failed probe is enough, observer.rs) and
/// promotes the best of those instead of waiting for a replica that may be further ahead.
/// This is several faults at once (a replica link broken, then the master dead and the other
/// replica stalled), beyond what `--wait-replicas 1` promises; it shows the window, not a
/// violation of the single-failover guarantee.
#[test]
#[ignore = "limitation: a failover promotes a lagging replica while a stalled one holds acknowledged writes"]
fn replicated_failover_waits_for_a_stalled_replica_that_may_be_ahead() {
    let (mut h, e0) = settled_group("dur-repl-stalled", 3);
    let (old, r1, r2) = (h.addr(0, 0), h.addr(0, 1), h.addr(0, 2));
    let p = proxy(&h, "p1", &[], &["--durability", "replicated", "--wait-timeout-ms", "500"]);
    p.wait_epoch(e0, &[], Duration::from_secs(10));
    let mut c = Client::connect(&p.addr, Duration::from_secs(10)).expect("connect to the proxy");
    wait_streaming(&old, 2);

    h.phase(&format!("SIGSTOP {r1} and cut its replication link; 50 writes are confirmed by {r2} alone"));
    // The replication connection as R1 sees it: its local address is the master's client address.
    let mut r = proxy_faults_common::server_client(&r1, None).unwrap();
    let list = r.call(&["CLIENT", "LIST", "TYPE", "master"]).unwrap().as_text().unwrap_or_default();
    let conn = list
        .split_whitespace()
        .find_map(|f| f.strip_prefix("laddr="))
        .unwrap_or_else(|| panic!("no master connection on {r1}: {list}"))
        .to_string();
    h.redis(&r1).sigstop();
    let mut m = proxy_faults_common::server_client(&old, None).unwrap();
    assert_eq!(m.call(&["CLIENT", "KILL", "TYPE", "replica", "ADDR", conn.as_str()]).unwrap(), Resp::Int(1));
    let keys: Vec<String> = (0..50).map(|i| format!("drs:{i}")).collect();
    for k in &keys {
        assert_eq!(c.call(&["SET", k.as_str(), "1"]).unwrap(), Resp::ok(), "SET {k}");
    }
    h.phase(&format!("kill -9 the master, SIGSTOP {r2}, SIGCONT {r1}"));
    h.redis(&old).kill9();
    h.redis(&r2).sigstop();
    h.redis(&r1).sigcont();
    let st = h.wait_master(1, Duration::from_secs(15), "a replica is promoted", |m| m == r1 || m == r2);
    let stalled_at = Instant::now();
    wait_for(Duration::from_secs(5), "the stalled replica stays frozen for 2 s", || {
        if stalled_at.elapsed() >= Duration::from_secs(2) {
            Ok(())
        } else {
            Err("waiting".into())
        }
    });
    h.redis(&r2).sigcont();
    let promoted = master_of(&st, 1);
    let values = server_values(&promoted, None, &keys).unwrap();
    let lost = values.iter().filter(|v| v.is_none()).count();
    h.phase(&format!("{promoted} promoted; {lost} of {} acknowledged writes missing on it", keys.len()));
    assert_eq!(lost, 0, "acknowledged writes lost: {promoted} was promoted while {r2} had them");
}
