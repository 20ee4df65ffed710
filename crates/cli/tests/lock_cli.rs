//! `zedis lock run` and `zedis lock list` as users run them, against a real ZooKeeper (and a
//! Redis for the mirror): the token and exit code pass through, a timeout fails cleanly, a
//! signal is forwarded, concurrent runs never overlap, and a holder frozen past its session
//! timeout loses the lock to the next one (higher token) and stops its command once it wakes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `zedis` in the background with this file's session timeout.
fn background(h: &Harness, name: &str, args: &[&str]) -> Background {
    Background::spawn_with(h, name, &["--session-timeout-ms", SESSION_MS], args)
}

/// Session timeout given to every `zedis lock run` here.
const SESSION_MS: &str = "2000";

/// `lock list --json NAME`, parsed.
fn lock_json(h: &Harness, name: &str) -> Result<Value, String> {
    let out = h.zedis(&["lock", "list", "--json", name]);
    if !out.ok() {
        return Err(out.describe());
    }
    let v: Value = serde_json::from_str(&out.stdout).map_err(|e| format!("not JSON ({e}): {}", out.stdout))?;
    Ok(v[0].clone())
}

fn read_number(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim().parse().map_err(|e| format!("{}: {text:?}: {e}", path.display()))
}

#[test]
fn run_passes_token_and_exit_code_times_out_and_forwards_signals() {
    let h = Harness::start("lock_run", &[1]);
    let redis = h.addr(0, 0);

    h.phase("the command sees the token and the lock name, and its exit code comes back");
    let script = "echo token=$ZEDIS_FENCING_TOKEN name=$ZEDIS_LOCK_NAME; exit 7";
    let out = h.zedis(&["lock", "run", "job", "--", "sh", "-c", script]);
    assert_eq!(out.code, Some(7), "{}", out.describe());
    let token = |out: &Out| -> u64 {
        let line = out.stdout.lines().find(|l| l.starts_with("token=")).unwrap_or_else(|| panic!("{}", out.describe()));
        line["token=".len()..].split(' ').next().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    let first = token(&out);
    assert!(out.stdout.contains("name=job"), "{}", out.describe());
    let out = h.zedis(&["lock", "run", "job", "--", "sh", "-c", script]);
    assert!(token(&out) > first, "the second run's token must be higher:\n{}", out.describe());
    let out = h.zedis(&["lock", "run", "job", "--", "/nonexistent/cmd"]);
    expect_one_line_error(&out, "cannot run");

    h.phase("a holder in the background, mirrored to Redis; a waiter queues behind it");
    let url = format!("redis://{redis}/");
    let mut holder = background(
        &h,
        "holder",
        &["lock", "run", "job", "--owner", "batch-1", "--mirror-redis", &url, "--", "sh", "-c", "exec sleep 60"],
    );
    let state = h.wait_until(Duration::from_secs(15), "holder holds", || {
        let v = lock_json(&h, "job")?;
        (v["holders"][0]["owner"] == "batch-1").then_some(v.clone()).ok_or(format!("{v}"))
    });
    let holder_token = state["holders"][0]["token"].as_u64().expect("token");
    let mut waiter = background(&h, "waiter", &["lock", "run", "job", "--", "true"]);
    h.wait_until(Duration::from_secs(15), "waiter queued", || {
        let v = lock_json(&h, "job")?;
        (v["waiting"] == 1).then_some(()).ok_or(format!("{v}"))
    });
    let table = h.zedis_ok(&["lock", "list"]);
    assert!(table.contains("batch-1") && table.contains(&holder_token.to_string()), "{table}");
    assert!(table.contains("waiting:"), "{table}");
    let mirror: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg("zedis:locks:job").query(&mut redis_conn(&redis).expect("redis")).expect("HGETALL");
    assert_eq!(mirror.get("holder").map(String::as_str), Some("batch-1"), "{mirror:?}");
    assert_eq!(mirror.get("token"), Some(&holder_token.to_string()));

    h.phase("SIGINT while queueing: zedis leaves the queue and exits 128+2");
    let mut impatient = background(&h, "impatient", &["lock", "run", "job", "--", "true"]);
    h.wait_until(Duration::from_secs(15), "impatient queued", || {
        let v = lock_json(&h, "job")?;
        (v["waiting"] == 2).then_some(()).ok_or(format!("{v}"))
    });
    impatient.signal(libc::SIGINT);
    assert_eq!(impatient.wait(&h, Duration::from_secs(15)), Some(130), "{}", impatient.describe());
    let v = lock_json(&h, "job").expect("lock list");
    assert_eq!(v["waiting"], 1, "the interrupted contender left the queue: {v}");

    h.phase("--timeout while held: a clean one-line failure naming the holder");
    let out = h.zedis(&["lock", "run", "job", "--timeout", "300ms", "--", "true"]);
    let line = expect_one_line_error(&out, "timed out");
    assert!(line.contains("batch-1"), "{line}");

    h.phase("SIGTERM to the holder: forwarded to the command, lock released, exit 128+15");
    holder.signal(libc::SIGTERM);
    assert_eq!(holder.wait(&h, Duration::from_secs(15)), Some(143), "{}", holder.describe());
    assert_eq!(waiter.wait(&h, Duration::from_secs(15)), Some(0), "{}", waiter.describe());
    let v = lock_json(&h, "job").expect("lock list");
    assert_eq!((v["holders"].as_array().map(Vec::len), &v["waiting"]), (Some(0), &Value::from(0)), "{v}");
    let free: String = redis::cmd("HGET")
        .arg("zedis:locks:job")
        .arg("holder")
        .query(&mut redis_conn(&redis).expect("redis"))
        .expect("HGET");
    assert_eq!(free, "", "the mirror shows the lock free");
}

#[test]
fn concurrent_runs_never_overlap() {
    const RUNS: usize = 8;
    let h = Harness::start("lock_overlap", &[]);
    let file = h.dir.path().join("sections.log");
    let script = format!(
        "echo \"start $ZEDIS_FENCING_TOKEN\" >> {f}; sleep 0.05; echo \"end $ZEDIS_FENCING_TOKEN\" >> {f}",
        f = file.display()
    );
    h.phase(&format!("{RUNS} concurrent `lock run` appending to one file"));
    let mut runs: Vec<Background> = (0..RUNS)
        .map(|i| background(&h, &format!("run{i}"), &["lock", "run", "shared", "--", "sh", "-c", &script]))
        .collect();
    for run in &mut runs {
        assert_eq!(run.wait(&h, Duration::from_secs(30)), Some(0), "{}", run.describe());
    }
    h.phase("checking the critical sections: start/end pairs, one at a time, rising tokens");
    let text = std::fs::read_to_string(&file).expect("sections file");
    let lines: Vec<(&str, u64)> = text
        .lines()
        .map(|l| {
            let (what, token) = l.split_once(' ').unwrap_or_else(|| panic!("bad line {l:?}"));
            (what, token.parse().unwrap_or_else(|_| panic!("bad token in {l:?}")))
        })
        .collect();
    assert_eq!(lines.len(), 2 * RUNS, "{text}");
    let mut last = 0;
    for pair in lines.chunks(2) {
        let [(start, t1), (end, t2)] = [pair[0], pair[1]];
        assert_eq!((start, end), ("start", "end"), "sections overlap:\n{text}");
        assert_eq!(t1, t2, "sections overlap:\n{text}");
        assert!(t1 > last, "tokens must rise:\n{text}");
        last = t1;
    }
}

#[test]
fn frozen_holder_loses_the_lock_and_stops_its_command() {
    let h = Harness::start("lock_frozen", &[]);
    let dir = h.dir.path();
    let (a_token, a_pid, b_token) = (dir.join("a.token"), dir.join("a.pid"), dir.join("b.token"));
    let a_script =
        format!("echo $ZEDIS_FENCING_TOKEN > {}; echo $$ > {}; exec sleep 60", a_token.display(), a_pid.display());
    let mut a = background(&h, "a", &["lock", "run", "frozen", "--kill-after", "2s", "--", "sh", "-c", &a_script]);
    let first = h.wait_until(Duration::from_secs(15), "a holds and runs its command", || {
        let token = read_number(&a_token)?;
        read_number(&a_pid)?;
        Ok(token)
    });
    let cmd_pid = read_number(&a_pid).expect("pid") as i32;

    h.phase("SIGSTOP a (its command keeps running) past the session timeout; b queues");
    a.signal(libc::SIGSTOP);
    let b_script = format!("echo $ZEDIS_FENCING_TOKEN > {}", b_token.display());
    let mut b = background(&h, "b", &["lock", "run", "frozen", "--", "sh", "-c", &b_script]);
    let started = Instant::now();
    assert_eq!(b.wait(&h, Duration::from_secs(20)), Some(0), "{}", b.describe());
    let second = read_number(&b_token).expect("b's token");
    eprintln!(
        "b got the lock {:.1}s after a was frozen; tokens {first} then {second}",
        started.elapsed().as_secs_f64()
    );
    assert!(second > first, "b's token {second} must exceed a's {first}");

    h.phase("SIGCONT a: it learns the session expired, stops its command, exits non-zero");
    a.signal(libc::SIGCONT);
    let code = a.wait(&h, Duration::from_secs(20));
    assert!(code.is_some() && code != Some(0), "a must fail cleanly: {code:?}\n{}", a.describe());
    let stderr = a.stderr();
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.starts_with("zedis: lost lock"), "one-line reason expected, got:\n{stderr}");
    assert!(last.contains("session expired"), "{stderr}");
    // SAFETY: kill with signal 0 only checks existence.
    let alive = unsafe { libc::kill(cmd_pid, 0) } == 0;
    assert!(!alive, "a's command (pid {cmd_pid}) must have been terminated");
}
