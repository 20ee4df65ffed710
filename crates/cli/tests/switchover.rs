//! Planned switchover (`zedis cluster failover`) under a concurrent writer: no write the
//! old or new master acknowledged may be lost, and the old master ends up a replica.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use zedis_coord::{ClusterPaths, TopologyStore, Zk, ZkOptions};

/// What the writer saw.
#[derive(Default)]
struct Log {
    /// Every acknowledged `i` with the master that acknowledged it.
    acked: Vec<(u64, String)>,
    /// Errors, as (i, master, error), for diagnostics.
    errors: Vec<(u64, String, String)>,
    /// Where the writer read the master from ZooKeeper, and what it found.
    lookups: Vec<String>,
}

impl Log {
    fn acked_by(&self, master: &str) -> usize {
        self.acked.iter().filter(|(_, m)| m == master).count()
    }

    fn summary(&self) -> String {
        let mut by_master: Vec<(String, usize)> = Vec::new();
        for (_, m) in &self.acked {
            match by_master.iter_mut().find(|(x, _)| x == m) {
                Some((_, n)) => *n += 1,
                None => by_master.push((m.clone(), 1)),
            }
        }
        format!(
            "{} acknowledged ({by_master:?}), {} errors (first ones: {:?}), lookups: {:?}",
            self.acked.len(),
            self.errors.len(),
            &self.errors[..self.errors.len().min(10)],
            self.lookups
        )
    }
}

/// Writes `key:i = i` for i = 0, 1, 2, ... to group 1's master as ZooKeeper names it,
/// re-reading the master after every failed write. Any error counts as not acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(zk_hosts: String, cluster: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let store = rt.block_on(async {
                let zk = Zk::connect(&ZkOptions::new(zk_hosts)).await.expect("writer connects to ZooKeeper");
                TopologyStore::new(zk, ClusterPaths::new("/zedis", &cluster).expect("paths"))
            });
            let lookup = |log: &Mutex<Log>| -> Option<String> {
                match rt.block_on(store.read()) {
                    Ok(t) => {
                        let g = t.value.group(1).expect("group 1");
                        let mut log = log.lock().unwrap();
                        let seen = format!("epoch {} -> {}", t.value.epoch, g.master);
                        if log.lookups.last() != Some(&seen) {
                            log.lookups.push(seen);
                        }
                        Some(g.master.clone())
                    }
                    Err(e) => {
                        log.lock().unwrap().lookups.push(format!("error {e}"));
                        None
                    }
                }
            };
            let mut conn: Option<(String, redis::Connection)> = None;
            let mut i: u64 = 0;
            while !stop2.load(Ordering::SeqCst) {
                if conn.is_none() {
                    let Some(master) = lookup(&log2) else {
                        std::thread::sleep(Duration::from_millis(20)); // back off while ZooKeeper is unreachable
                        continue;
                    };
                    // Generous timeouts: a paused master holds writes for up to seconds.
                    match redis_conn_with(&master, Duration::from_secs(10)) {
                        Ok(c) => conn = Some((master, c)),
                        Err(e) => {
                            log2.lock().unwrap().errors.push((i, master, e));
                            std::thread::sleep(Duration::from_millis(20)); // back off a refused connect
                            continue;
                        }
                    }
                }
                let (master, c) = conn.as_mut().expect("connected above");
                let reply: redis::RedisResult<String> =
                    redis::cmd("SET").arg(format!("key:{i}")).arg(i.to_string()).query(c);
                match reply {
                    Ok(ref ok) if ok == "OK" => log2.lock().unwrap().acked.push((i, master.clone())),
                    Ok(other) => {
                        log2.lock().unwrap().errors.push((i, master.clone(), format!("reply {other:?}")));
                        conn = None;
                    }
                    Err(e) => {
                        log2.lock().unwrap().errors.push((i, master.clone(), e.to_string()));
                        conn = None;
                    }
                }
                i += 1;
            }
        });
        Writer { stop, log, thread: Some(thread) }
    }

    fn acked_by(&self, master: &str) -> usize {
        self.log.lock().unwrap().acked_by(master)
    }

    fn summary(&self) -> String {
        self.log.lock().unwrap().summary()
    }

    /// Stops the writer and returns its log.
    fn finish(mut self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn planned_switchover_under_writes_loses_no_acknowledged_write() {
    let mut h = Harness::start("switchover", &[2]);
    let [old, new] = [h.addr(0, 0), h.addr(0, 1)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    let st = h.wait_settled(Duration::from_secs(20));
    let epoch0 = epoch(&st);

    h.phase("start the writer");
    let writer = Writer::start(h.zk.connect_string(), h.cluster.clone());
    h.wait_until(Duration::from_secs(10), "the writer gets writes acknowledged by the first master", || {
        match writer.acked_by(&old) {
            n if n >= 500 => Ok(()),
            n => Err(format!("{n} acknowledged; {}", writer.summary())),
        }
    });

    h.phase("switchover of group 1 to the best replica");
    let started = Instant::now();
    let out = h.zedis(&["cluster", "failover", "--group", "1"]);
    assert!(out.ok(), "switchover failed:\n{}\nwriter: {}", out.describe(), writer.summary());
    eprintln!("  {} ({:?})", out.stdout.trim(), started.elapsed());
    assert!(out.stdout.contains(&new), "the only replica {new} is the target: {}", out.stdout);
    let st = h.status();
    assert_eq!(master_of(&st, 1), new, "{st:#}");
    assert_eq!(epoch(&st), epoch0 + 1, "a switchover commits exactly one new epoch: {st:#}");
    h.wait_until(Duration::from_secs(10), "the old master replicates the new one", || replicates(&old, &new));
    h.wait_until(Duration::from_secs(10), "the writer gets writes acknowledged by the new master", || {
        match writer.acked_by(&new) {
            n if n >= 500 => Ok(()),
            n => Err(format!("{n} acknowledged by {new}; {}", writer.summary())),
        }
    });

    h.phase("switchover back to the old master with --to");
    h.wait_until(Duration::from_secs(10), "status shows the old master as an in-sync replica", || {
        let st = h.try_status()?;
        match server(&st, &old) {
            Some(s) if s["observed_role"] == "replica" && s["link_up"] == true && s["health"] == "up" => Ok(()),
            s => Err(format!("{s:?}")),
        }
    });
    let before_back = writer.acked_by(&old);
    let out = h.zedis(&["cluster", "failover", "--group", "1", "--to", &old]);
    assert!(out.ok(), "switchover back failed:\n{}\nwriter: {}", out.describe(), writer.summary());
    eprintln!("  {}", out.stdout.trim());
    let st = h.status();
    assert_eq!(master_of(&st, 1), old, "{st:#}");
    assert_eq!(epoch(&st), epoch0 + 2, "{st:#}");
    h.wait_until(Duration::from_secs(10), "the writer follows back to the old master", || {
        match writer.acked_by(&old) - before_back {
            n if n >= 500 => Ok(()),
            n => Err(format!("{n} new acknowledgements by {old}; {}", writer.summary())),
        }
    });

    h.phase("stop the writer; every acknowledged write is on the final master and its replica");
    let log = writer.finish();
    eprintln!("  writer: {}", log.summary());
    let acked: Vec<u64> = log.acked.iter().map(|(i, _)| *i).collect();
    h.wait_until(Duration::from_secs(10), "the final replica replicates the final master", || replicates(&new, &old));
    check_keys(&old, "key", &acked).unwrap_or_else(|e| panic!("acknowledged writes lost: {e}\n{}", log.summary()));
    // Once the replica has the master's whole stream, it must hold every acknowledged write too.
    h.wait_until(Duration::from_secs(10), "the replica has every acknowledged write", || {
        check_keys(&new, "key", &acked)
    });
    let kinds: Vec<String> = h.events().iter().map(|e| e["kind"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "switchover_done").count(), 2, "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "switchover_aborted"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "master_down"), "a planned switchover is not a failure: {kinds:?}");
}

#[test]
fn switchover_refusals_are_clear() {
    let mut h = Harness::start("switchover-refusals", &[2]);
    let [m, r] = [h.addr(0, 0), h.addr(0, 1)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    let st = h.wait_settled(Duration::from_secs(20));
    let e0 = epoch(&st);

    h.phase("bad targets");
    h.zedis_fails(&["cluster", "failover", "--group", "1", "--to", &m], "already the master");
    h.zedis_fails(&["cluster", "failover", "--group", "1", "--to", "127.0.0.1:1"], "not a server of group 1");
    h.zedis_fails(&["cluster", "failover", "--group", "9"], "no group 9");

    h.phase("a replica with priority 0 is not picked by default");
    h.zedis_ok(&["cluster", "set-priority", &r, "0"]);
    h.zedis_fails(&["cluster", "failover", "--group", "1"], "no healthy replica");
    let st = h.status();
    assert_eq!(master_of(&st, 1), m, "{st:#}");
    assert_eq!(epoch(&st), e0 + 1, "only set-priority changed the topology: {st:#}");
}

#[test]
fn switchover_picks_the_preferred_replica_and_repoints_the_others() {
    let mut h = Harness::start("switchover-three", &[3]);
    let [m, r1, r2] = [h.addr(0, 0), h.addr(0, 1), h.addr(0, 2)];
    h.create_cluster(&[]);
    h.spawn_controller("c1");
    h.wait_settled(Duration::from_secs(20));
    h.zedis_ok(&["cluster", "set-priority", &r2, "10"]);
    let e0 = epoch(&h.status());
    write_keys(&m, "k", 100, 2).expect("writes replicate");

    h.phase("switchover without --to picks the replica with the best priority");
    let out = h.zedis_ok(&["cluster", "failover", "--group", "1"]);
    assert!(out.contains(&r2), "r2 (priority 10) should be chosen: {out}");
    let st = h.status();
    assert_eq!(master_of(&st, 1), r2, "{st:#}");
    assert_eq!(epoch(&st), e0 + 1, "{st:#}");
    let mut replicas = replicas_of(&st, 1);
    replicas.sort();
    let mut want = vec![m.clone(), r1.clone()];
    want.sort();
    assert_eq!(replicas, want, "{st:#}");

    h.phase("both the old master and the other replica follow the new master");
    h.wait_until(Duration::from_secs(10), "old master replicates r2", || replicates(&m, &r2));
    h.wait_until(Duration::from_secs(10), "r1 replicates r2", || replicates(&r1, &r2));
    set(&r2, "after", "1").expect("the new master takes writes");
    h.wait_until(Duration::from_secs(5), "both replicas get the new write", || {
        for addr in [&m, &r1] {
            if get(addr, "after")?.as_deref() != Some("1") {
                return Err(format!("{addr} lacks the write"));
            }
        }
        Ok(())
    });
    check_keys(&r2, "k", &(0..100).collect::<Vec<_>>()).expect("no data lost");
    let st = h.wait_settled(Duration::from_secs(10));
    assert_eq!(epoch(&st), e0 + 1, "nothing else changed the topology: {st:#}");
}
