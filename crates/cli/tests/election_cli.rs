//! `zedis election run` and `zedis election leader` against a real ZooKeeper: the first
//! process leads and runs its command; `kill -9` of that zedis hands the leadership (and the
//! command) to the second, with a higher `ZEDIS_LEADER_EPOCH`, within about a session timeout;
//! signals, exit codes, resignation, and a ZooKeeper freeze that makes the leader stop its
//! command.

mod common;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ELECTION: &str = "nightly-report";

/// A `zedis election run` child process; SIGKILLed and reaped on drop.
struct Runner {
    id: String,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Runner {
    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("runner is running")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit and returns its code (`None`: killed by a signal).
    fn wait_exit(&mut self, h: &Harness, timeout: Duration, what: &str) -> Option<i32> {
        let child = self.child.as_mut().expect("runner is running");
        let status = h.wait_until(timeout, what, || match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        });
        self.child = None;
        status.code()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- election run {} log ----\n{}", self.id, tail(&self.log(), 60));
        }
        self.kill9();
    }
}

/// The command each runner runs: records its environment and pid (atomically), then sleeps.
fn script(dir: &Path, id: &str) -> String {
    let out = dir.join(format!("{id}.started"));
    format!(
        "echo \"$ZEDIS_LEADER_EPOCH $ZEDIS_ELECTION_NAME $ZEDIS_LEADER_ID $$\" > {out}.tmp && mv {out}.tmp {out} && exec sleep 600",
        out = out.display()
    )
}

/// Spawns `zedis election run ELECTION --id ID [extra] -- sh -c SCRIPT` with its output in a log.
fn spawn_runner(h: &Harness, id: &str, session_ms: u64, extra: &[&str]) -> Runner {
    let log_path = h.dir.path().join(format!("election-{id}.log"));
    let log = File::create(&log_path).expect("runner log");
    let log2 = log.try_clone().expect("runner log");
    let session = session_ms.to_string();
    let script = script(h.dir.path(), id);
    let mut cmd = Command::new(ZEDIS);
    cmd.args(["--zk", &h.zk.connect_string(), "--session-timeout-ms", &session, "--log", "info"])
        .args(["election", "run", ELECTION, "--id", id])
        .args(extra)
        .args(["--", "sh", "-c", &script])
        .env_remove("RUST_LOG")
        .env_remove("ZEDIS_ROOT")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: prctl is async-signal-safe; the runner dies with this test process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn zedis election run: {e}"));
    h.phase(&format!("election run --id {id} started (pid {})", child.id()));
    Runner { id: id.to_string(), log_path, child: Some(child) }
}

/// What a runner's command recorded: (epoch, election, id, pid).
fn started(h: &Harness, id: &str) -> Option<(u64, String, String, i32)> {
    let text = std::fs::read_to_string(h.dir.path().join(format!("{id}.started"))).ok()?;
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts[..] {
        [epoch, election, who, pid] => Some((epoch.parse().ok()?, election.into(), who.into(), pid.parse().ok()?)),
        _ => panic!("unexpected {id}.started: {text:?}"),
    }
}

fn wait_started(h: &Harness, id: &str, timeout: Duration) -> (u64, String, String, i32) {
    h.wait_until(timeout, &format!("{id}'s command runs"), || started(h, id).ok_or_else(|| "not yet".to_string()))
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs no more code either).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
    }
}

/// `election leader --json`, parsed.
fn leader_json(h: &Harness) -> (Option<i32>, Value) {
    let out = h.zedis(&["election", "leader", ELECTION, "--json"]);
    let doc = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.describe()));
    (out.code, doc)
}

#[test]
fn election_run_hands_over_when_the_leader_is_killed() {
    let h = Harness::start("election-run", &[]);

    h.phase("nobody stands: `election leader` says so with exit code 3");
    let out = h.zedis(&["election", "leader", ELECTION]);
    assert_eq!(out.code, Some(3), "{}", out.describe());
    assert!(out.stdout.contains("no leader"), "{}", out.describe());
    let (code, doc) = leader_json(&h);
    assert_eq!(code, Some(3));
    assert_eq!(doc, serde_json::json!({"election": ELECTION, "leader": null}));

    h.phase("a joins first and runs its command");
    let mut a = spawn_runner(&h, "a", SESSION_TIMEOUT_MS, &[]);
    let (epoch_a, election, who, pid_a) = wait_started(&h, "a", Duration::from_secs(15));
    assert_eq!((election.as_str(), who.as_str()), (ELECTION, "a"));
    assert!(epoch_a > 0);

    h.phase("b joins and waits in line; its command does not run");
    let mut b = spawn_runner(&h, "b", SESSION_TIMEOUT_MS, &[]);
    h.wait_until(Duration::from_secs(15), "b is in line", || {
        if b.log().contains("in line") {
            Ok(())
        } else {
            Err(b.log())
        }
    });
    let (code, doc) = leader_json(&h);
    assert_eq!(code, Some(0));
    assert_eq!(doc["leader"]["id"], "a");
    assert_eq!(doc["leader"]["epoch"].as_u64(), Some(epoch_a));
    assert!(started(&h, "b").is_none(), "b's command must not run while a leads");
    let text = h.zedis_ok(&["election", "leader", ELECTION]);
    assert!(text.contains("leader    a") && text.contains(&format!("epoch     {epoch_a}")), "{text}");

    h.phase("kill -9 a's zedis: its command dies with it, b takes over");
    let killed_at = Instant::now();
    a.kill9();
    h.wait_until(Duration::from_secs(3), "a's command is gone with a", || {
        if process_gone(pid_a) {
            Ok(())
        } else {
            Err(format!("pid {pid_a} still runs"))
        }
    });
    let (epoch_b, _, who, _) = wait_started(&h, "b", Duration::from_millis(SESSION_TIMEOUT_MS * 3));
    let handover = killed_at.elapsed();
    h.phase(&format!("b's command runs {handover:?} after the kill (session timeout {SESSION_TIMEOUT_MS} ms)"));
    assert_eq!(who, "b");
    assert!(handover < Duration::from_millis(SESSION_TIMEOUT_MS + 1500), "hand-over took {handover:?}");
    assert!(epoch_b > epoch_a, "epoch {epoch_b} after {epoch_a}");
    let (code, doc) = leader_json(&h);
    assert_eq!(code, Some(0));
    assert_eq!(doc["leader"]["id"], "b");
    assert_eq!(doc["leader"]["epoch"].as_u64(), Some(epoch_b));
    assert!(doc["leader"]["since_ms"].as_u64().is_some_and(|t| t > 0), "{doc}");

    h.phase("SIGTERM to b: forwarded to its command, b resigns and exits 143");
    b.signal(libc::SIGTERM);
    let code = b.wait_exit(&h, Duration::from_secs(10), "b exits");
    assert_eq!(code, Some(128 + libc::SIGTERM), "b's log:\n{}", b.log());
    eprintln!("---- b's log ----\n{}", tail(&b.log(), 20));
    let out = h.zedis(&["election", "leader", ELECTION]);
    assert_eq!(out.code, Some(3), "b resigned at once, not after its session:\n{}", out.describe());

    h.phase("the command's own exit code is zedis's, and it resigns");
    let out = h.zedis(&[
        "election",
        "run",
        ELECTION,
        "--id",
        "c",
        "--",
        "sh",
        "-c",
        "test \"$ZEDIS_LEADER_EPOCH\" -gt 0 && test \"$ZEDIS_ELECTION_NAME\" = nightly-report && exit 7",
    ]);
    assert_eq!(out.code, Some(7), "{}", out.describe());
    assert_eq!(h.zedis(&["election", "leader", ELECTION]).code, Some(3));

    h.phase("a command that does not exist: exit 127 with a one-line reason");
    let out = h.zedis(&["election", "run", ELECTION, "--", "/nonexistent/zedis-test-command"]);
    assert_eq!(out.code, Some(127), "{}", out.describe());
    expect_one_line_error(&out, "cannot run");
    assert_eq!(h.zedis(&["election", "leader", ELECTION]).code, Some(3));
    h.phase("done");
}

#[test]
fn election_run_stops_its_command_when_zookeeper_freezes() {
    const SESSION_MS: u64 = 4000;
    let mut h = Harness::start("election-freeze", &[]);

    h.phase("d leads with a 300 ms suspend grace");
    let mut d = spawn_runner(&h, "d", SESSION_MS, &["--suspend-grace-ms", "300", "--stop-grace-ms", "500"]);
    let (_, _, _, pid_d) = wait_started(&h, "d", Duration::from_secs(15));

    h.phase("SIGSTOP ZooKeeper: d stops its command well before its session could expire");
    let frozen_at = Instant::now();
    h.zk.single().sigstop();
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h.wait_until(Duration::from_millis(SESSION_MS), "d's command is stopped", || {
            if process_gone(pid_d) {
                Ok(frozen_at.elapsed())
            } else {
                Err(format!("pid {pid_d} still runs"))
            }
        })
    }));
    h.zk.single().sigcont();
    let after = stopped.unwrap_or_else(|e| std::panic::resume_unwind(e));
    h.phase(&format!("d's command stopped {after:?} after the freeze; ZooKeeper resumed"));
    assert!(after < Duration::from_millis(SESSION_MS * 3 / 4), "d stepped down only after {after:?}");

    h.phase("d exits 75 with a one-line reason");
    let code = d.wait_exit(&h, Duration::from_millis(SESSION_MS), "d exits");
    assert_eq!(code, Some(75), "d's log:\n{}", d.log());
    let lines: Vec<String> = d.log().lines().filter(|l| l.starts_with("zedis: ")).map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "one line of reason; log:\n{}", d.log());
    h.phase(&format!("d said: {}", lines[0]));
    assert!(lines[0].contains("lost the leadership") && lines[0].contains("suspended"), "{}", lines[0]);
    h.phase("done");
}
