//! `kill -9` of a group's master while a client writes and another reads through the proxy:
//! the writes to that group resume within 5 s of the kill (errors are allowed during the
//! switch), the other group never notices, and no read ever returns a wrong value. Writes the
//! proxy acknowledged after the new master took over are all readable afterwards; writes
//! acknowledged by the old master just before its death may be lost (asynchronous
//! replication), and are counted, but a key never holds a value nobody wrote.

mod proxy_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy_common::{redis_conn, wait_until, Sandbox};

/// One write through the proxy: key index, when it was acknowledged (or failed), and the outcome.
struct Write {
    i: usize,
    at: Instant,
    result: Result<(), String>,
}

fn key(i: usize) -> String {
    format!("fo:w:{i}")
}

fn value(i: usize) -> String {
    format!("w-{i}")
}

#[test]
fn writes_resume_after_a_master_is_killed() {
    let sb = Sandbox::start("proxy_failover");
    let proxy = sb.proxy.clone();
    let victim = 0; // group index whose master dies
    let old_master = sb.groups[victim].master.clone();
    let replica = sb.groups[victim].replicas[0].clone();

    sb.phase("seed 200 keys through the proxy and wait until every replica has them");
    let seeds: Vec<String> = (0..200).map(|i| format!("fo:seed:{i}")).collect();
    let mut c = sb.conn();
    let mut mset = redis::cmd("MSET");
    for s in &seeds {
        mset.arg(s).arg(format!("seed-{s}"));
    }
    let _: () = mset.query(&mut c).unwrap();
    for g in 0..2 {
        let mine: Vec<&String> = seeds.iter().filter(|s| sb.group_of(s.as_bytes()) == g).collect();
        let replica = sb.groups[g].replicas[0].clone();
        wait_until(Duration::from_secs(10), &format!("group {}'s replica has the seed keys", g + 1), || {
            let mut r = redis_conn(&replica, Duration::from_secs(2))?;
            let n: i64 = redis::cmd("EXISTS").arg(&mine).query(&mut r).map_err(|e| e.to_string())?;
            if n as usize == mine.len() {
                Ok(())
            } else {
                Err(format!("{n} of {}", mine.len()))
            }
        });
    }

    sb.phase("a writer (SET fo:w:i) and a reader (GET of seed keys) run through the proxy");
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<Write>>> = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, writes, proxy) = (stop.clone(), writes.clone(), proxy.clone());
        std::thread::spawn(move || {
            let mut conn = redis_conn(&proxy, Duration::from_secs(8)).unwrap();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let r: redis::RedisResult<String> = redis::cmd("SET").arg(key(i)).arg(value(i)).query(&mut conn);
                let result = match r {
                    Ok(s) if s == "OK" => Ok(()),
                    Ok(other) => Err(format!("unexpected reply {other:?}")),
                    Err(e) => {
                        if e.is_io_error() || e.is_timeout() {
                            if let Ok(c) = redis_conn(&proxy, Duration::from_secs(8)) {
                                conn = c;
                            }
                        }
                        Err(e.to_string())
                    }
                };
                writes.lock().unwrap().push(Write { i, at: Instant::now(), result });
                i += 1;
            }
        })
    };
    let reader = {
        let (stop, proxy, seeds) = (stop.clone(), proxy.clone(), seeds.clone());
        std::thread::spawn(move || -> (usize, usize, Vec<String>) {
            let mut conn = redis_conn(&proxy, Duration::from_secs(8)).unwrap();
            let (mut ok, mut errors, mut wrong) = (0, 0, Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let s = &seeds[n % seeds.len()];
                n += 1;
                match redis::cmd("GET").arg(s).query::<Option<String>>(&mut conn) {
                    Ok(Some(v)) if v == format!("seed-{s}") => ok += 1,
                    Ok(other) => wrong.push(format!("GET {s} gave {other:?}")),
                    Err(e) => {
                        errors += 1;
                        if e.is_io_error() || e.is_timeout() {
                            if let Ok(c) = redis_conn(&proxy, Duration::from_secs(8)) {
                                conn = c;
                            }
                        }
                    }
                }
            }
            (ok, errors, wrong)
        })
    };
    let started = Instant::now();
    wait_until(Duration::from_secs(10), "the writer has written through both groups", || {
        let w = writes.lock().unwrap();
        let ok = w.iter().filter(|w| w.result.is_ok()).count();
        if ok >= 500 {
            Ok(())
        } else {
            Err(format!("{ok} writes acknowledged after {:?}", started.elapsed()))
        }
    });

    sb.phase(&format!("kill -9 group {}'s master {old_master}", victim + 1));
    // SAFETY: the pid is a redis-server child of the sandbox this test started.
    assert_eq!(unsafe { libc::kill(sb.groups[victim].master_pid, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let first_write_after = wait_until(Duration::from_secs(5), "a write to the killed group succeeds again", || {
        let w = writes.lock().unwrap();
        // An acknowledgement racing the kill could still come from the old master: count from
        // the first failure the kill caused, when there is one.
        let on_victim = |w: &&Write| sb.group_of(key(w.i).as_bytes()) == victim;
        let since = w.iter().filter(on_victim).find(|w| w.at > killed && w.result.is_err()).map_or(killed, |w| w.at);
        w.iter().filter(on_victim).find(|w| w.at > since && w.result.is_ok()).map(|w| (w.i, w.at)).ok_or_else(|| {
            let errors = w.iter().filter(|w| w.at > killed && w.result.is_err()).count();
            format!("{errors} failed writes since the kill, none acknowledged by group {}", victim + 1)
        })
    });
    let resumed_after = first_write_after.1 - killed;
    sb.phase(&format!("writes to group {} resumed {resumed_after:?} after the kill", victim + 1));
    let status = sb.status();
    assert_eq!(
        status["groups"][victim]["master"].as_str(),
        Some(replica.as_str()),
        "the replica was promoted: {status}"
    );

    // A little more traffic on the new master, then stop.
    let resumed_count =
        || writes.lock().unwrap().iter().filter(|w| w.at > first_write_after.1 && w.result.is_ok()).count();
    wait_until(Duration::from_secs(10), "1,000 more writes after the failover", || {
        let n = resumed_count();
        if n >= 1000 {
            Ok(())
        } else {
            Err(format!("{n} writes"))
        }
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let (reads_ok, read_errors, wrong_reads) = reader.join().unwrap();
    let writes = std::mem::take(&mut *writes.lock().unwrap());

    sb.phase("check every write's outcome");
    let mut conn = sb.conn();
    let mut stored: HashMap<usize, Option<String>> = HashMap::new();
    for chunk in writes.chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|w| key(w.i)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut conn).unwrap();
        for (w, v) in chunk.iter().zip(values) {
            stored.insert(w.i, v);
        }
    }
    let mut lost_before_kill = Vec::new();
    let mut lost_after_failover = Vec::new();
    let mut wrong_values = Vec::new();
    let mut other_group_errors = Vec::new();
    let mut victim_errors = 0;
    for w in &writes {
        let v = &stored[&w.i];
        if v.as_ref().is_some_and(|v| *v != value(w.i)) {
            wrong_values.push(format!("{} = {v:?}", key(w.i)));
        }
        let group = sb.group_of(key(w.i).as_bytes());
        match &w.result {
            Ok(()) if v.is_none() => {
                if w.at >= first_write_after.1 || group != victim {
                    lost_after_failover.push(key(w.i));
                } else {
                    lost_before_kill.push(key(w.i));
                }
            }
            Ok(()) => {}
            Err(e) if group != victim => other_group_errors.push(format!("{}: {e}", key(w.i))),
            Err(_) => victim_errors += 1,
        }
    }
    let acked = writes.iter().filter(|w| w.result.is_ok()).count();
    sb.phase(&format!(
        "{} writes, {acked} acknowledged, {victim_errors} failed on group {} during the switch, \
         {} acknowledged but lost (by the old master, before the kill: allowed in async mode); \
         reads: {reads_ok} ok, {read_errors} errors",
        writes.len(),
        victim + 1,
        lost_before_kill.len()
    ));
    assert!(resumed_after < Duration::from_secs(5), "writes resumed only after {resumed_after:?}");
    assert!(
        wrong_reads.is_empty(),
        "reads of seed keys gave wrong values or nil: {:?}",
        &wrong_reads[..wrong_reads.len().min(10)]
    );
    assert!(
        wrong_values.is_empty(),
        "keys hold values nobody wrote: {:?}",
        &wrong_values[..wrong_values.len().min(10)]
    );
    assert!(
        lost_after_failover.is_empty(),
        "{} writes acknowledged by a live master are lost, e.g. {:?}",
        lost_after_failover.len(),
        &lost_after_failover[..lost_after_failover.len().min(10)]
    );
    assert!(
        other_group_errors.is_empty(),
        "writes to the group whose master lives failed {} times, e.g. {:?}",
        other_group_errors.len(),
        &other_group_errors[..other_group_errors.len().min(5)]
    );
    for s in &seeds {
        let v: Option<String> = redis::cmd("GET").arg(s).query(&mut conn).unwrap();
        assert_eq!(v, Some(format!("seed-{s}")), "replicated seed key {s} after the failover");
    }
    let info: String = redis::cmd("INFO").arg("cluster").query(&mut conn).unwrap();
    assert!(!info.contains("topology_epoch:1\r\n"), "the proxy follows the new epoch: {info}");
}
