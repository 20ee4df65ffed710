//! Online slot migration against real processes (`zedis up`): keys move between groups while a
//! client keeps reading and writing through the proxy, and it never sees an error or a wrong
//! value; every acknowledged write reads back afterwards, each key lives in exactly one group.
//! Faults: the controller leader killed mid-migration, a proxy frozen (SIGSTOP) and another
//! killed so they never apply the migration's epoch; cancel; a 1M-field hash moved in chunks
//! while the source keeps answering PINGs quickly.
//!
//! Each test starts its own sandbox; they take turns (one lock) so that the 2-core machine is
//! not running several migrations at once.

mod proxy_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proxy_common::{redis_conn, wait_until, Sandbox};
use serde_json::Value;

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(i: usize) -> String {
    format!("m:{i}")
}

/// Writes `n` keys `m:i` = `v{i}` through the proxy, in MSET batches.
fn seed(sb: &Sandbox, n: usize) {
    let mut c = sb.conn();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut mset = redis::cmd("MSET");
        for &i in chunk {
            mset.arg(key(i)).arg(format!("v{i}"));
        }
        let _: () = mset.query(&mut c).expect("seed MSET");
    }
}

/// What the client expects each key to hold (None: deleted).
type Model = HashMap<String, Option<String>>;

/// A client on one connection to the proxy doing SET, GET, INCR, MSET, MGET and DEL over the
/// seeded keys, checking every reply against its model of the data.
struct Workload {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(u64, Vec<String>, Model)>>,
}

impl Workload {
    fn start(proxy: &str, keys: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let proxy = proxy.to_string();
        let handle = std::thread::spawn(move || {
            let mut c = redis_conn(&proxy, Duration::from_secs(30)).expect("workload connection");
            let mut model: Model = (0..keys).map(|i| (key(i), Some(format!("v{i}")))).collect();
            let mut errors = Vec::new();
            let mut ops = 0u64;
            let mut rng = 0x9e3779b97f4a7c15u64;
            let mut next = |n: usize| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % n as u64) as usize
            };
            while !flag.load(Ordering::Relaxed) {
                let (a, b) = (key(next(keys)), key(next(keys)));
                let op = next(100);
                let result: Result<(), String> = (|| {
                    match op {
                        0..=29 => {
                            let v = format!("w{ops}");
                            let _: () = redis::cmd("SET").arg(&a).arg(&v).query(&mut c).map_err(|e| e.to_string())?;
                            model.insert(a.clone(), Some(v));
                        }
                        30..=64 => {
                            let got: Option<String> =
                                redis::cmd("GET").arg(&a).query(&mut c).map_err(|e| e.to_string())?;
                            let want = model.get(&a).cloned().flatten();
                            if got != want {
                                return Err(format!("GET {a}: {got:?}, expected {want:?}"));
                            }
                        }
                        65..=74 => {
                            let k = format!("m:c:{}", next(50));
                            let got: i64 = redis::cmd("INCR").arg(&k).query(&mut c).map_err(|e| e.to_string())?;
                            let before = model.get(&k).cloned().flatten().map(|v| v.parse::<i64>().unwrap_or(0));
                            if got != before.unwrap_or(0) + 1 {
                                return Err(format!("INCR {k}: {got}, expected {}", before.unwrap_or(0) + 1));
                            }
                            model.insert(k, Some(got.to_string()));
                        }
                        75..=84 => {
                            let (va, vb) = (format!("ma{ops}"), format!("mb{ops}"));
                            let _: () = redis::cmd("MSET")
                                .arg(&a)
                                .arg(&va)
                                .arg(&b)
                                .arg(&vb)
                                .query(&mut c)
                                .map_err(|e| e.to_string())?;
                            model.insert(a.clone(), Some(va));
                            model.insert(b.clone(), Some(vb));
                        }
                        85..=94 => {
                            let got: Vec<Option<String>> =
                                redis::cmd("MGET").arg(&a).arg(&b).query(&mut c).map_err(|e| e.to_string())?;
                            let want = vec![model.get(&a).cloned().flatten(), model.get(&b).cloned().flatten()];
                            if got != want {
                                return Err(format!("MGET {a} {b}: {got:?}, expected {want:?}"));
                            }
                        }
                        _ => {
                            let n: i64 = redis::cmd("DEL").arg(&a).query(&mut c).map_err(|e| e.to_string())?;
                            let existed = model.get(&a).cloned().flatten().is_some();
                            if n != i64::from(existed) {
                                return Err(format!("DEL {a}: {n}, expected {}", i64::from(existed)));
                            }
                            model.insert(a.clone(), None);
                        }
                    }
                    Ok(())
                })();
                ops += 1;
                if let Err(e) = result {
                    eprintln!("workload error: {e}");
                    errors.push(e);
                    if errors.len() > 20 {
                        break;
                    }
                }
            }
            (ops, errors, model)
        });
        Workload { stop, handle: Some(handle) }
    }

    fn finish(mut self) -> (u64, Vec<String>, Model) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().expect("running").join().expect("workload thread")
    }
}

/// Every key of the model reads back through the proxy as the model says, and lives in
/// exactly one group (none when deleted); `more` are masters of groups added since.
fn verify(sb: &Sandbox, model: &Model, more: &[String]) {
    let mut c = sb.conn();
    let keys: Vec<&String> = model.keys().collect();
    let mut masters: Vec<redis::Connection> = (0..sb.groups.len()).map(|g| sb.master_conn(g)).collect();
    for addr in more {
        masters.push(redis_conn(addr, Duration::from_secs(5)).expect("an added master"));
    }
    let mut wrong = Vec::new();
    for chunk in keys.chunks(500) {
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut c).expect("MGET through the proxy");
        let mut pipes: Vec<Vec<i64>> = Vec::new();
        for m in masters.iter_mut() {
            let mut p = redis::pipe();
            for k in chunk {
                p.cmd("EXISTS").arg(k.as_str());
            }
            pipes.push(p.query(m).expect("EXISTS on a master"));
        }
        for (i, k) in chunk.iter().enumerate() {
            let want = model.get(*k).cloned().flatten();
            if got[i] != want {
                wrong.push(format!("{k}: {:?}, expected {want:?}", got[i]));
            }
            let copies: i64 = pipes.iter().map(|p| p[i]).sum();
            if copies != i64::from(want.is_some()) {
                wrong.push(format!("{k}: in {copies} groups"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} keys wrong, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(10)]);
}

fn migrations(sb: &Sandbox) -> Vec<Value> {
    let out = sb.zedis(&["cluster", "migrations", "--json"]);
    assert!(out.status.success(), "cluster migrations: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("migrations --json is JSON");
    v.as_array().cloned().or_else(|| v["migrations"].as_array().cloned()).unwrap_or_default()
}

fn migration(sb: &Sandbox, id: u64) -> Value {
    migrations(sb).into_iter().find(|m| m["id"].as_u64() == Some(id)).unwrap_or(Value::Null)
}

fn keys_moved(m: &Value) -> u64 {
    m["progress"]["keys_moved"].as_u64().or_else(|| m["keys_moved"].as_u64()).unwrap_or(0)
}

/// `cluster migrate ARGS`; returns the migration id it printed.
fn migrate(sb: &Sandbox, args: &[&str]) -> u64 {
    let mut all = vec!["cluster", "migrate"];
    all.extend_from_slice(args);
    let out = sb.zedis(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "migrate failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text.split_whitespace()
        .skip_while(|w| *w != "migration")
        .nth(1)
        .and_then(|w| w.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no migration id in {text:?}"))
}

fn wait_state(sb: &Sandbox, id: u64, state: &str, timeout: Duration) -> Value {
    wait_until(timeout, &format!("migration {id} {state}"), || {
        let m = migration(sb, id);
        if m["state"] == state {
            Ok(m)
        } else {
            Err(format!("{m}"))
        }
    })
}

/// Waits until migration `id` has moved at least `n` keys; returns its record.
fn wait_moved(sb: &Sandbox, id: u64, n: u64) -> Value {
    wait_until(Duration::from_secs(60), &format!("{n} keys moved"), || {
        let m = migration(sb, id);
        if keys_moved(&m) >= n {
            Ok(m)
        } else {
            Err(format!("{m}"))
        }
    })
}

/// The slot ranges `(from, to, group)` of `status --json`.
fn slot_ranges(sb: &Sandbox) -> Vec<(u64, u64, u64)> {
    sb.status()["slots"]
        .as_array()
        .expect("status has slots")
        .iter()
        .map(|r| (r["from"].as_u64().unwrap_or(0), r["to"].as_u64().unwrap_or(0), r["group"].as_u64().unwrap_or(0)))
        .collect()
}

fn owner(ranges: &[(u64, u64, u64)], slot: u64) -> Option<u64> {
    ranges.iter().find(|(f, t, _)| (*f..=*t).contains(&slot)).map(|r| r.2)
}

/// No marker or temporary key left on any master once the migration is over.
fn markers_gone(sb: &Sandbox) {
    wait_until(Duration::from_secs(30), "migration markers removed", || {
        for g in 0..sb.groups.len() {
            let mut m = sb.master_conn(g);
            let left: Vec<String> = redis::cmd("KEYS").arg("zedis:mig:*").query(&mut m).map_err(|e| e.to_string())?;
            if !left.is_empty() {
                return Err(format!("group {} still has {left:?}", g + 1));
            }
        }
        Ok(())
    });
}

/// The done-when: 50,000 keys, slots 0-8191 to group 2 while a client reads and writes.
#[test]
fn half_the_slots_move_under_load_without_a_client_error() {
    let _turn = one_at_a_time();
    let sb = Sandbox::start_with("migration_under_load", &["--replicas", "0"]);
    sb.phase("seed 50,000 keys");
    seed(&sb, 50_000);
    let before = slot_ranges(&sb);
    assert_eq!(owner(&before, 0), Some(1));
    assert_eq!(owner(&before, 8191), Some(1));

    sb.phase("a client reads and writes through the proxy; move slots 0-8191 to group 2");
    let load = Workload::start(&sb.proxy, 50_000);
    let started = Instant::now();
    let id = migrate(&sb, &["--slots", "0-8191", "--to", "2"]);
    let done = wait_state(&sb, id, "done", Duration::from_secs(180));
    let took = started.elapsed();
    sb.phase(&format!("migration done in {:.1}s: {done}", took.as_secs_f64()));
    let (ops, errors, model) = load.finish();
    sb.phase(&format!("the client ran {ops} commands"));
    assert!(errors.is_empty(), "{} client errors, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert!(ops > 1000, "the client barely ran ({ops} commands)");

    sb.phase("every key and acknowledged write reads back, from exactly one group");
    verify(&sb, &model, &[]);
    let after = slot_ranges(&sb);
    assert_eq!(after.iter().filter(|r| r.2 == 2).map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(0, 16383)]);
    let st = sb.status();
    let listed = st["migrations"].as_array().expect("status lists migrations");
    assert!(listed.iter().any(|m| m["id"].as_u64() == Some(id) && m["state"] == "done"), "{st}");
    let mut g1 = sb.master_conn(0);
    let left: i64 = redis::cmd("DBSIZE").query(&mut g1).expect("DBSIZE");
    markers_gone(&sb);
    assert!(left <= 3, "group 1 keeps {left} keys");
    assert!(keys_moved(&done) >= 25_000 - 2_000, "progress counts the keys moved: {done}");
}

/// Cancel half-way (after a pause): every key stays readable and in exactly one group, the
/// slots stay with the source, and no client error.
#[test]
fn a_paused_then_cancelled_migration_leaves_every_key_in_one_place() {
    let _turn = one_at_a_time();
    let sb = Sandbox::start_with("migration_cancel", &["--replicas", "0"]);
    seed(&sb, 20_000);
    let load = Workload::start(&sb.proxy, 20_000);
    sb.phase("move 0-8191 to group 2 at 2,000 keys/s");
    let id = migrate(&sb, &["--slots", "0-8191", "--to", "2", "--rate", "2000"]);
    wait_moved(&sb, id, 3000);
    sb.phase("pause: the mover stops");
    let out = sb.zedis(&["cluster", "migration", "pause", &id.to_string()]);
    assert!(out.status.success(), "pause: {}", String::from_utf8_lossy(&out.stderr));
    let paused = wait_state(&sb, id, "paused", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500)); // let a last batch land before sampling
    let a = keys_moved(&migration(&sb, id));
    std::thread::sleep(Duration::from_secs(2));
    let b = keys_moved(&migration(&sb, id));
    assert_eq!(a, b, "keys kept moving while paused: {paused}");

    sb.phase("cancel: keys flow back to group 1");
    let out = sb.zedis(&["cluster", "migration", "cancel", &id.to_string()]);
    assert!(out.status.success(), "cancel: {}", String::from_utf8_lossy(&out.stderr));
    wait_state(&sb, id, "cancelled", Duration::from_secs(120));
    let (ops, errors, model) = load.finish();
    assert!(
        errors.is_empty(),
        "{} client errors in {ops} commands, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    verify(&sb, &model, &[]);
    let ranges = slot_ranges(&sb);
    assert_eq!((owner(&ranges, 0), owner(&ranges, 8191), owner(&ranges, 8192)), (Some(1), Some(1), Some(2)));
    let mut g2 = sb.master_conn(1);
    let moved_back: i64 = redis::cmd("EVAL")
        .arg("local n = 0 for _, k in ipairs(redis.call('KEYS', 'm:*')) do if redis.call('CLUSTER', 'KEYSLOT', k) < 8192 then n = n + 1 end end return n")
        .arg(0)
        .query(&mut g2)
        .unwrap_or(-1);
    assert!(moved_back <= 0, "group 2 still holds {moved_back} keys of group 1's slots");
    markers_gone(&sb);
}

/// kill -9 of the controller leader while keys move: the other controller finishes the job.
#[test]
fn a_new_controller_leader_finishes_a_migration() {
    let _turn = one_at_a_time();
    let sb = Sandbox::start_with("migration_controller_kill", &["--replicas", "0", "--controllers", "2"]);
    seed(&sb, 20_000);
    let load = Workload::start(&sb.proxy, 20_000);
    let id = migrate(&sb, &["--slots", "0-8191", "--to", "2", "--rate", "2500"]);
    let m = wait_moved(&sb, id, 2000);
    let leader = m["progress"]["by"].as_str().or_else(|| m["by"].as_str()).unwrap_or_default().to_string();
    let pid = sb.json["controllers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == leader.as_str())
        .and_then(|c| c["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for the driving controller {leader:?} in {}", sb.json));
    sb.phase(&format!("kill -9 the leader {leader} (pid {pid})"));
    // SAFETY: signalling a controller process this sandbox started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let done = wait_state(&sb, id, "done", Duration::from_secs(120));
    assert_ne!(done["progress"]["by"].as_str().unwrap_or(&leader), leader, "another controller finished it: {done}");
    let (ops, errors, model) = load.finish();
    assert!(
        errors.is_empty(),
        "{} client errors in {ops} commands, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    verify(&sb, &model, &[]);
    assert_eq!(owner(&slot_ranges(&sb), 100), Some(2));
}

/// A proxy that never applies the migration's epoch (frozen with SIGSTOP) holds the keys
/// back until its session expires; so does one killed just after the migration was
/// recorded. The frozen one, resumed, serves no stale data: it refuses until it has the new
/// topology, then answers right.
#[test]
fn proxies_that_never_apply_the_epoch_hold_the_migration_until_their_sessions_expire() {
    let _turn = one_at_a_time();
    let sb = Sandbox::start_with("migration_proxy_faults", &["--replicas", "0"]);
    seed(&sb, 2_000);
    let frozen_port = zedis_testkit::free_port().expect("free port");
    let killed_port = zedis_testkit::free_port().expect("free port");
    let spawn = |port: u16, id: &str| {
        std::process::Command::new(proxy_common::ZEDIS)
            .args(["--zk", &sb.zk, "proxy", "--listen", &format!("127.0.0.1:{port}"), "--id", id])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn zedis proxy")
    };
    let mut frozen = spawn(frozen_port, "frozen");
    let mut killed = spawn(killed_port, "killed");
    let probe = |port: u16| -> Result<Option<String>, String> {
        let mut c = redis_conn(&format!("127.0.0.1:{port}"), Duration::from_secs(2))?;
        redis::cmd("GET").arg(key(7)).query(&mut c).map_err(|e| e.to_string())
    };
    for port in [frozen_port, killed_port] {
        wait_until(Duration::from_secs(20), "the extra proxy serves", || match probe(port)? {
            Some(v) if v == "v7" => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }
    sb.phase("SIGSTOP one proxy; migrate; kill -9 the other");
    // SAFETY: signalling processes this test spawned.
    unsafe {
        libc::kill(frozen.id() as i32, libc::SIGSTOP);
    }
    let started = Instant::now();
    let id = migrate(&sb, &["--slots", "0-8191", "--to", "2"]);
    let _ = killed.kill();
    let _ = killed.wait();
    std::thread::sleep(Duration::from_secs(3));
    let m = migration(&sb, id);
    assert_eq!(m["state"], "preparing", "keys must not move while a registered proxy lags: {m}");
    let done = wait_state(&sb, id, "done", Duration::from_secs(90));
    sb.phase(&format!("done {:.1}s after it was started: {done}", started.elapsed().as_secs_f64()));

    sb.phase("SIGCONT the frozen proxy: never a stale answer");
    // SAFETY: as above.
    unsafe {
        libc::kill(frozen.id() as i32, libc::SIGCONT);
    }
    let mut refused = 0;
    wait_until(Duration::from_secs(30), "the resumed proxy serves the moved key", || match probe(frozen_port) {
        Ok(Some(v)) if v == "v7" => Ok(()),
        Ok(other) => panic!("the resumed proxy answered {other:?} for a key that holds v7"),
        Err(e) => {
            refused += 1;
            Err(e)
        }
    });
    sb.phase(&format!("the resumed proxy refused {refused} times before it had the topology"));
    let _ = frozen.kill();
    let _ = frozen.wait();
}

/// A 1M-field hash (with a TTL) moves in chunks: the source keeps answering PINGs within
/// 100 ms throughout, a write to the hash through the proxy waits and lands, the TTL stays.
#[test]
fn a_big_hash_moves_in_chunks_without_blocking_the_source() {
    let _turn = one_at_a_time();
    let sb = Sandbox::start_with("migration_big_key", &["--replicas", "0"]);
    let big = "big:{h}";
    let slot = u64::from(zedis_topology::key_slot(big.as_bytes()));
    let source = sb.group_of(big.as_bytes());
    sb.phase(&format!("build a 1,000,000-field hash in slot {slot} on group {}", source + 1));
    let mut m = sb.master_conn(source);
    for chunk in 0..1000 {
        let mut hset = redis::cmd("HSET");
        hset.arg(big);
        for f in chunk * 1000..(chunk + 1) * 1000 {
            hset.arg(format!("f{f}")).arg(f);
        }
        let _: i64 = hset.query(&mut m).expect("HSET");
    }
    let _: i64 = redis::cmd("EXPIRE").arg(big).arg(3600).query(&mut m).expect("EXPIRE");

    sb.phase("PING the source every 5 ms while the slot moves; write to the hash through the proxy");
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        let addr = sb.groups[source].master.clone();
        std::thread::spawn(move || {
            let mut c = redis_conn(&addr, Duration::from_secs(10)).expect("ping connection");
            let mut worst = Duration::ZERO;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _: String = redis::cmd("PING").query(&mut c).expect("PING");
                worst = worst.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (worst, n)
        })
    };
    let target = if source == 0 { "2" } else { "1" };
    let id = migrate(&sb, &["--slots", &slot.to_string(), "--to", target]);
    wait_until(Duration::from_secs(60), "the hash is being moved", || {
        let m = migration(&sb, id);
        if m["state"] == "moving" || m["state"] == "done" {
            Ok(())
        } else {
            Err(format!("{m}"))
        }
    });
    // The write waits while the hash is held (up to the proxy's --migration-wait-ms).
    let mut c = redis_conn(&sb.proxy, Duration::from_secs(30)).expect("proxy connection");
    let t = Instant::now();
    let added: i64 = redis::cmd("HSET").arg(big).arg("during").arg("1").query(&mut c).expect("HSET during the move");
    assert_eq!(added, 1);
    sb.phase(&format!("HSET during the move answered after {:?}", t.elapsed()));
    let done = wait_state(&sb, id, "done", Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    let (worst, pings) = pinger.join().expect("pinger");
    sb.phase(&format!("worst PING of {pings} during the move: {worst:?}; {done}"));
    assert!(worst < Duration::from_millis(100), "the source stalled {worst:?}");
    let len: i64 = redis::cmd("HLEN").arg(big).query(&mut c).expect("HLEN");
    assert_eq!(len, 1_000_001);
    let during: Option<String> = redis::cmd("HGET").arg(big).arg("during").query(&mut c).expect("HGET");
    assert_eq!(during.as_deref(), Some("1"));
    let ttl: i64 = redis::cmd("TTL").arg(big).query(&mut c).expect("TTL");
    assert!((3000..=3600).contains(&ttl), "TTL kept: {ttl}");
    let mut t = sb.master_conn(1 - source);
    let there: i64 = redis::cmd("EXISTS").arg(big).query(&mut t).expect("EXISTS");
    assert_eq!(there, 1, "the hash lives on the target");
    let big_keys = done["progress"]["big_keys"].as_u64().or_else(|| done["big_keys"].as_u64()).unwrap_or(0);
    assert_eq!(big_keys, 1, "moved in chunks: {done}");
    markers_gone(&sb);
}

fn slots_of(ranges: &[(u64, u64, u64)], group: u64) -> u64 {
    ranges.iter().filter(|r| r.2 == group).map(|r| r.1 - r.0 + 1).sum()
}

/// After `add-group`, `rebalance` spreads the slots evenly, then by weight, while a client
/// works; every key stays readable and in one group.
#[test]
fn rebalance_after_add_group_spreads_slots_by_weight() {
    let _turn = one_at_a_time();
    let sb = Sandbox::start_with("migration_rebalance", &["--replicas", "0"]);
    seed(&sb, 10_000);
    let third = zedis_testkit::RedisServer::start().expect("a third redis-server");
    sb.phase(&format!("add group 3 ({}) and rebalance evenly", third.addr()));
    let out = sb.zedis(&["cluster", "add-group", &third.addr()]);
    assert!(out.status.success(), "add-group: {}", String::from_utf8_lossy(&out.stderr));
    let load = Workload::start(&sb.proxy, 10_000);
    let rebalance = |args: &[&str]| {
        let mut all = vec!["cluster", "rebalance", "--wait", "--timeout", "120"];
        all.extend_from_slice(args);
        let out = sb.zedis(&all);
        assert!(
            out.status.success(),
            "rebalance {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    rebalance(&[]);
    let ranges = slot_ranges(&sb);
    let counts: Vec<u64> = (1..=3).map(|g| slots_of(&ranges, g)).collect();
    sb.phase(&format!("slots per group after an even rebalance: {counts:?}"));
    assert_eq!(counts.iter().sum::<u64>(), 16384);
    assert!(counts.iter().all(|c| (5461..=5462).contains(c)), "{counts:?}");

    sb.phase("rebalance with weights 3=2: group 3 gets half");
    rebalance(&["--weights", "3=2"]);
    let ranges = slot_ranges(&sb);
    let counts: Vec<u64> = (1..=3).map(|g| slots_of(&ranges, g)).collect();
    sb.phase(&format!("slots per group with weights 1:1:2: {counts:?}"));
    assert_eq!(counts, vec![4096, 4096, 8192]);
    let (ops, errors, model) = load.finish();
    assert!(
        errors.is_empty(),
        "{} client errors in {ops} commands, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    verify(&sb, &model, &[third.addr()]);
    let mut g3 = redis_conn(&third.addr(), Duration::from_secs(5)).expect("group 3");
    let n: i64 = redis::cmd("DBSIZE").query(&mut g3).expect("DBSIZE");
    assert!(n > 3000, "group 3 holds {n} keys");
}
