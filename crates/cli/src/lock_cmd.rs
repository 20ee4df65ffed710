//! `zedis lock run NAME -- CMD ...` (run a command while holding a ZooKeeper lock) and
//! `zedis lock list` (holders, fencing tokens, waiters).

use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::process::Child;
use zedis_coord::Zk;
use zedis_recipes::lock::{list_locks, lock_state, ContenderState, LockGuard, LockOptions, LockState, ZkLock};
use zedis_recipes::Hold;

use crate::common::{exit_code, Global, Signals};
use zedis_topology::now_ms;

/// How long a mirror connection may take to set up before `lock run` goes on without it.
const MIRROR_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for ZooKeeper to confirm the session is closed at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Run a command while holding a lock; the command gets the lock's fencing token.
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
    /// List locks: holders, fencing tokens and waiters.
    #[command(long_about = LIST_ABOUT)]
    List(ListArgs),
}

const RUN_ABOUT: &str = "\
Run a command while holding a lock; the command gets the lock's fencing token.

Takes the ZooKeeper lock NAME (fair: first come, first served), runs CMD with
ZEDIS_FENCING_TOKEN (a number greater than that of every earlier holder of NAME) and
ZEDIS_LOCK_NAME in its environment, and releases the lock when CMD exits. Pass the token
to whatever CMD writes to, so that it can refuse a holder that lost the lock.

Exit status: CMD's own (128+N if CMD died of signal N); 128+N if zedis got signal N
(SIGINT or SIGTERM: forwarded to CMD, then zedis waits for CMD and releases the lock; a
second signal kills CMD); 1 with a one-line reason if the lock was not acquired within
--timeout, or was lost while CMD ran.

If the lock is lost (the ZooKeeper session expired, or the lock node was deleted), CMD gets
SIGTERM, then SIGKILL after --kill-after. While the connection to ZooKeeper is only
suspended, CMD keeps running and a warning is logged: the session may still recover.
CMD also gets SIGTERM if zedis itself dies.

Example:
  zedis lock run nightly-report --timeout 30s -- ./report.sh --date today";

const LIST_ABOUT: &str = "\
List locks: holders, fencing tokens and waiters.

Shows every lock under <root>/locks (or only NAME): who holds it (owner, host, pid), its
fencing token, for how long, and who waits in line. Read-write locks and semaphores can
have several holders. --json prints the full state, one object per lock.";

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Lock name (letters, digits, '-', '_' or '.').
    pub name: String,
    /// Give up if the lock is not acquired within this long, e.g. 500ms, 10s, 2m
    /// (default: wait as long as it takes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Also show the lock's state in this Redis (hash zedis:locks:NAME), e.g.
    /// redis://127.0.0.1:6379. Best effort: if Redis fails, the lock works without it.
    #[arg(long, value_name = "URL")]
    pub mirror_redis: Option<String>,
    /// Who holds the lock, as `zedis lock list` shows it (default: HOST:PID).
    #[arg(long)]
    pub owner: Option<String>,
    /// After the lock is lost, how long CMD has between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub kill_after: Duration,
    /// The command to run and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this lock.
    pub name: Option<String>,
    /// Print JSON: an array of {name, holders, waiting, waiters}; each contender has node,
    /// kind, token, owner, host, pid, queued_ms (and since_ms for holders).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, cmd: LockCommand) -> Result<()> {
    match cmd {
        LockCommand::Run(args) => run_locked(global, args).await,
        LockCommand::List(args) => list(global, args).await,
    }
}

/// How waiting for the lock ended.
enum Acquisition {
    Got(Option<LockGuard>),
    Signal(i32),
}

/// How running CMD under the lock ended.
enum Outcome {
    Exited(ExitStatus),
    Lost(String),
}

async fn run_locked(global: &Global, args: RunArgs) -> Result<()> {
    // Catch signals before anything else, so a Ctrl-C while queueing still cleans up.
    let mut signals = Signals::new()?;
    let Some((program, program_args)) = args.command.split_first() else { bail!("no command given after --") };
    let zk = global.connect().await?;
    let mut options = LockOptions {
        root: global.root.clone(),
        mirror: connect_mirror(args.mirror_redis.as_deref()).await?,
        ..LockOptions::default()
    };
    if let Some(owner) = &args.owner {
        options.owner = owner.clone();
    }
    let lock = ZkLock::new(&zk, &args.name, options)?;

    tracing::info!(lock = %args.name, "waiting for the lock");
    let acquisition = {
        let acquiring = async {
            match args.timeout {
                Some(t) => lock.try_lock(t).await,
                None => lock.lock().await.map(Some),
            }
        };
        tokio::select! {
            got = acquiring => Acquisition::Got(got.with_context(|| format!("cannot take lock {:?}", args.name))?),
            sig = signals.recv() => Acquisition::Signal(sig),
        }
    };
    let mut guard = match acquisition {
        Acquisition::Got(Some(guard)) => guard,
        Acquisition::Got(None) => {
            let holder = describe_holder(&zk, &global.root, &args.name).await;
            bail!(
                "timed out after {} waiting for lock {:?}{holder}",
                show_duration(args.timeout.unwrap_or_default()),
                args.name
            )
        }
        Acquisition::Signal(sig) => {
            // The cancelled acquisition deletes its node; closing the session makes sure.
            drop(lock);
            close_session(zk).await;
            std::process::exit(128 + sig);
        }
    };
    tracing::info!(lock = %args.name, token = guard.token(), "lock acquired; running the command");

    let mut command = tokio::process::Command::new(program);
    command.args(program_args).env("ZEDIS_FENCING_TOKEN", guard.token().to_string()).env("ZEDIS_LOCK_NAME", &args.name);
    // SAFETY: prctl is async-signal-safe. CMD must not outlive zedis: once zedis is gone
    // nobody holds the lock for CMD (its session expires), so CMD gets SIGTERM.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = guard.release().await;
            bail!("cannot run {program:?}: {e}")
        }
    };
    let pid = child.id().map(|p| p as libc::pid_t);

    let mut loss = guard.loss();
    let mut suspended = false;
    let mut got_signal: Option<i32> = None;
    let outcome = loop {
        tokio::select! {
            status = child.wait() => break Outcome::Exited(status.context("waiting for the command")?),
            sig = signals.recv() => {
                if got_signal.is_some() {
                    tracing::warn!(signal = sig, "second signal: killing the command");
                    send(pid, libc::SIGKILL);
                } else if sig != libc::SIGINT || !terminal_sent_it() {
                    send(pid, sig);
                }
                got_signal = Some(sig);
            }
            why = guard.lost() => break Outcome::Lost(why.to_string()),
            hold = loss.may_be_lost(), if !suspended => match hold {
                Hold::MayBeLost => {
                    suspended = true;
                    tracing::warn!(lock = %args.name, "connection to ZooKeeper suspended: the lock may be lost");
                }
                Hold::Lost => break Outcome::Lost(guard.lost().await.to_string()),
                Hold::Held => {}
            },
            _ = tokio::time::sleep(Duration::from_millis(100)), if suspended => {
                if guard.hold() == Hold::Held {
                    suspended = false;
                    tracing::warn!(lock = %args.name, "reconnected to ZooKeeper: the lock is still held");
                }
            }
        }
    };

    match outcome {
        Outcome::Exited(status) => {
            if let Err(e) = guard.release().await {
                tracing::warn!(lock = %args.name, error = %e, "release");
            }
            drop(guard);
            drop(lock);
            close_session(zk).await;
            let code = match got_signal {
                Some(sig) => 128 + sig,
                None => exit_code(status),
            };
            std::process::exit(code);
        }
        Outcome::Lost(why) => {
            terminate(&mut child, pid, args.kill_after).await;
            let _ = guard.release().await;
            bail!("lost lock {:?} ({why}); {program} was terminated", args.name)
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`; reaps the child.
async fn terminate(child: &mut Child, pid: Option<libc::pid_t>, grace: Duration) {
    send(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(after = ?grace, "the command ignored SIGTERM: killing it");
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

fn send(pid: Option<libc::pid_t>, sig: i32) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) has no memory effects; the child is not reaped yet (we only signal
        // it while we wait for it), so the pid is still its own.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Whether a SIGINT most likely came from the terminal (Ctrl-C), which sends it to the whole
/// foreground process group, CMD included: then forwarding it would make CMD see it twice.
fn terminal_sent_it() -> bool {
    // SAFETY: plain queries of process state.
    unsafe {
        let foreground = libc::tcgetpgrp(libc::STDIN_FILENO);
        foreground != -1 && foreground == libc::getpgrp()
    }
}

/// Closes the session (its ephemeral nodes go at once) and waits a little for it. Every
/// other handle on the session must be gone already.
async fn close_session(zk: Zk) {
    let mut states = zk.client().state_watcher();
    drop(zk);
    let closed = async { while !states.changed().await.is_terminated() {} };
    if tokio::time::timeout(CLOSE_TIMEOUT, closed).await.is_err() {
        tracing::debug!("session not confirmed closed; it expires on its own");
    }
}

/// A connection to the mirror, or `None` (with a warning) if Redis cannot be reached now: the
/// mirror is best effort. A malformed URL is the user's mistake and fails.
async fn connect_mirror(url: Option<&str>) -> Result<Option<ConnectionManager>> {
    let Some(url) = url else { return Ok(None) };
    let client = redis::Client::open(url).with_context(|| format!("bad --mirror-redis URL {url:?}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2);
    match tokio::time::timeout(MIRROR_CONNECT_TIMEOUT, client.get_connection_manager_with_config(config)).await {
        Ok(Ok(conn)) => Ok(Some(conn)),
        Ok(Err(e)) => {
            tracing::warn!(url, error = %e, "lock mirror unreachable; going on without it");
            Ok(None)
        }
        Err(_) => {
            tracing::warn!(url, "lock mirror unreachable; going on without it");
            Ok(None)
        }
    }
}

/// ` (held by OWNER on HOST pid PID, token T; N waiting)`, or empty if unknown.
async fn describe_holder(zk: &Zk, root: &str, name: &str) -> String {
    let Ok(state) = lock_state(zk, root, name).await else { return String::new() };
    match state.holder() {
        Some(h) => format!(" (held by {}, token {}; {} waiting)", who(h), h.token, state.waiting),
        None => String::new(),
    }
}

fn who(c: &ContenderState) -> String {
    match &c.record {
        Some(r) if r.owner == format!("{}:{}", r.host, r.pid) => r.owner.clone(),
        Some(r) => format!("{} ({}:{})", r.owner, r.host, r.pid),
        None => format!("node {}", c.node),
    }
}

async fn list(global: &Global, args: ListArgs) -> Result<()> {
    let zk = global.connect().await?;
    let locks = match &args.name {
        Some(name) => vec![lock_state(&zk, &global.root, name).await?],
        None => list_locks(&zk, &global.root).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&locks)?);
    } else {
        print!("{}", render(&locks, now_ms()));
    }
    Ok(())
}

/// The `lock list` table: one row per holder (or one "free" row), waiters below.
fn render(locks: &[LockState], now_ms: u64) -> String {
    if locks.is_empty() {
        return "no locks\n".to_string();
    }
    let mut rows = vec![["LOCK", "KIND", "HOLDER", "TOKEN", "HELD FOR", "WAITING"].map(String::from).to_vec()];
    let mut notes: Vec<(usize, String)> = Vec::new();
    for lock in locks {
        if lock.holders.is_empty() {
            rows.push(vec![
                lock.name.clone(),
                "-".into(),
                "(free)".into(),
                "-".into(),
                "-".into(),
                lock.waiting.to_string(),
            ]);
        }
        for (i, h) in lock.holders.iter().enumerate() {
            let held_for = h.since_ms.map(|s| show_duration(Duration::from_millis(now_ms.saturating_sub(s))));
            rows.push(vec![
                if i == 0 { lock.name.clone() } else { String::new() },
                h.kind.to_string(),
                who(h),
                h.token.to_string(),
                held_for.unwrap_or_else(|| "-".into()),
                if i == 0 { lock.waiting.to_string() } else { String::new() },
            ]);
        }
        if !lock.waiters.is_empty() {
            let queue: Vec<String> = lock.waiters.iter().map(|w| format!("{} [{}]", who(w), w.kind)).collect();
            notes.push((rows.len() - 1, format!("  waiting: {}", queue.join(", "))));
        }
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        for (_, note) in notes.iter().filter(|(after, _)| *after == i) {
            out.push_str(note);
            out.push('\n');
        }
    }
    out
}

/// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 10s, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// `850ms`, `12s`, `1.5s`, `3m20s`, `2h5m`.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..10_000 if d.subsec_millis() != 0 => format!("{:.1}s", d.as_secs_f64()),
        1_000..60_000 => format!("{}s", ms / 1000),
        60_000..3_600_000 => format!("{}m{}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zedis_recipes::lock::{ContenderKind, ContenderRecord};

    #[test]
    fn durations_parse() {
        let table: &[(&str, Option<u64>)] = &[
            ("500ms", Some(500)),
            ("10s", Some(10_000)),
            ("1.5s", Some(1_500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("3", Some(3_000)),
            ("0", Some(0)),
            ("", None),
            ("ms", None),
            ("10x", None),
            ("-1s", None),
            ("1e400s", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text).ok().map(|d| d.as_millis() as u64), *want, "{text:?}");
        }
    }

    #[test]
    fn durations_show() {
        let table = [(850, "850ms"), (1_500, "1.5s"), (12_000, "12s"), (200_000, "3m20s"), (7_500_000, "2h5m")];
        for (ms, want) in table {
            assert_eq!(show_duration(Duration::from_millis(ms)), want);
        }
    }

    fn contender(node: &str, owner: &str, token: u64, since: Option<u64>) -> ContenderState {
        ContenderState {
            node: node.into(),
            kind: ContenderKind::Exclusive,
            token,
            since_ms: since,
            record: Some(ContenderRecord {
                owner: owner.into(),
                host: "h".into(),
                pid: 1,
                queued_ms: 0,
                acquired_ms: None,
                permits: None,
            }),
        }
    }

    #[test]
    fn table() {
        assert_eq!(render(&[], 0), "no locks\n");
        let locks = vec![
            LockState {
                name: "jobs".into(),
                holders: vec![contender("lock-a-0000000001", "h:1", 17, Some(1_000))],
                waiting: 1,
                waiters: vec![contender("lock-b-0000000002", "web", 19, None)],
            },
            LockState { name: "idle".into(), holders: vec![], waiting: 0, waiters: vec![] },
        ];
        let want = "\
LOCK  KIND  HOLDER  TOKEN  HELD FOR  WAITING
jobs  lock  h:1     17     12s       1
  waiting: web (h:1) [lock]
idle  -     (free)  -      -         0
";
        assert_eq!(render(&locks, 13_000), want);
    }
}
