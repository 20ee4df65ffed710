//! `zedis election ...`: run a command while this process leads an election; show the leader.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tokio::process::{Child, Command};
use zedis_recipes::leader::{current_leader, default_id, ElectionOptions, LeaderInfo, LeaderLatch};
use zedis_recipes::Hold;

use crate::common::{exit_code, format_utc, Global, Signals};
use zedis_topology::now_ms;

/// Exit code of `election run` when the leadership was lost and CMD was stopped (EX_TEMPFAIL:
/// try again).
const EXIT_LOST: i32 = 75;
/// Exit code of `election leader` when nobody leads.
const EXIT_NO_LEADER: i32 = 3;
/// Shell conventions when CMD cannot be run.
const EXIT_NOT_EXECUTABLE: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

const RUN_HELP: &str = "\
CMD runs only while this process leads: `zedis election run` joins the election, waits for its
turn, starts CMD with ZEDIS_LEADER_EPOCH (the leader's fencing token: greater for every later
leader), ZEDIS_ELECTION_NAME and ZEDIS_LEADER_ID in its environment, and stops it when the
leadership may be lost (the ZooKeeper connection suspended longer than --suspend-grace-ms, or the
session expired): SIGTERM to CMD's process group, SIGKILL after --stop-grace-ms. CMD runs in its
own process group and is killed if zedis itself dies (kill -9); `exec` the real program from shell
wrappers so nothing outlives it.

Exit status:
  CMD's own status    CMD exited by itself (128+N if it died of signal N); zedis resigns first
  128+N               zedis got SIGINT/SIGTERM (N); the signal is forwarded to CMD, zedis waits
                      for it (a second signal kills it), then resigns
  75                  the leadership was lost; CMD was stopped
  126, 127            CMD could not be run (not executable, not found)
  1                   any other error (ZooKeeper unreachable, bad name, ...)

Example:
  zedis election run reports --id worker-1 -- sh -c 'exec ./report-job --epoch \"$ZEDIS_LEADER_EPOCH\"'";

const LEADER_HELP: &str = "\
Shows the first candidate in line: the leader, or the one about to notice it leads.

Exit status: 0 when there is a leader, 3 when nobody stands (\"no leader\", or a JSON document
with \"leader\": null), 1 on errors.";

#[derive(Subcommand, Debug)]
pub enum ElectionCommand {
    /// Run a command while this process is the elected leader; stop it when leadership is lost.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Show who leads an election (id, epoch, since when).
    #[command(after_help = LEADER_HELP)]
    Leader(LeaderArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Election name: letters, digits, '-', '_' and '.' (its nodes live under ROOT/elections/NAME).
    pub name: String,
    /// This participant's id, as `election leader` shows it [default: HOST:PID].
    #[arg(long)]
    pub id: Option<String>,
    /// Data published with the candidacy, e.g. the address CMD serves on: JSON, or else taken
    /// as a string.
    #[arg(long)]
    pub data: Option<String>,
    /// Step down (stop CMD) when the ZooKeeper connection stays suspended this long; at most
    /// half the session timeout [default: a third of the session timeout].
    #[arg(long, value_name = "MS")]
    pub suspend_grace_ms: Option<u64>,
    /// How long CMD may take to exit after SIGTERM once the leadership is lost, before SIGKILL.
    /// Keep it short: a new leader may be elected a session timeout after the old one was last
    /// heard of [default: a fifth of the session timeout].
    #[arg(long, value_name = "MS")]
    pub stop_grace_ms: Option<u64>,
    /// The command to run while leader, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LeaderArgs {
    /// Election name.
    pub name: String,
    /// Print JSON: {"election": NAME, "leader": {"id", "epoch", "since_ms", "data", "node"} or null}.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, cmd: ElectionCommand) -> Result<()> {
    match cmd {
        ElectionCommand::Run(args) => run_while_leader(global, args).await,
        ElectionCommand::Leader(args) => show_leader(global, args).await,
    }
}

async fn show_leader(global: &Global, args: LeaderArgs) -> Result<()> {
    let zk = global.connect().await?;
    let leader = current_leader(&zk, &global.root, &args.name)
        .await
        .with_context(|| format!("cannot read election {:?}", args.name))?;
    if args.json {
        let doc = serde_json::json!({ "election": args.name, "leader": leader });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        match &leader {
            Some(l) => print!("{}", describe(&args.name, l, now_ms())),
            None => println!("no leader for election {}", args.name),
        }
    }
    if leader.is_none() {
        exit(EXIT_NO_LEADER);
    }
    Ok(())
}

/// The text form of `election leader`.
fn describe(election: &str, l: &LeaderInfo, now_ms: u64) -> String {
    let age = Duration::from_millis(now_ms.saturating_sub(l.since_ms));
    let mut out = format!(
        "election  {election}\nleader    {}\nepoch     {}\nsince     {} ({:.1}s ago)\n",
        l.id,
        l.epoch,
        format_utc(l.since_ms),
        age.as_secs_f64()
    );
    if !l.data.is_null() {
        out.push_str(&format!("data      {}\n", l.data));
    }
    out
}

async fn run_while_leader(global: &Global, args: RunArgs) -> Result<()> {
    // Installed first, so a Ctrl-C at any point is ours to handle (and resign on).
    let mut signals = Signals::new()?;
    let name = args.name.clone();
    let data = match &args.data {
        None => serde_json::Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone())),
    };
    let options = ElectionOptions {
        root: global.root.clone(),
        id: args.id.clone().unwrap_or_else(default_id),
        data,
        suspend_grace: args.suspend_grace_ms.map(Duration::from_millis),
        requeue: false,
    };
    let id = options.id.clone();
    let zk = tokio::select! {
        zk = global.connect() => zk?,
        sig = signals.recv() => exit(128 + sig),
    };
    let stop_grace = args.stop_grace_ms.map(Duration::from_millis).unwrap_or(zk.session_timeout() / 5);
    let grace = options.grace_for(zk.session_timeout())?;
    let latch = tokio::select! {
        latch = LeaderLatch::start(&zk, &name, options) => latch.with_context(|| format!("cannot join election {name:?}"))?,
        // The start is cancellation safe: a node created meanwhile is withdrawn in the background,
        // and the session closes with the process anyway.
        sig = signals.recv() => exit(128 + sig),
    };
    tracing::info!(election = %name, id = %id, node = latch.node_path(), "in line; waiting to lead");
    let leadership = tokio::select! {
        l = latch.await_leadership() => l.with_context(|| format!("cannot lead election {name:?}"))?,
        sig = signals.recv() => {
            resign(&latch, &zk).await;
            exit(128 + sig);
        }
    };
    let epoch = leadership.epoch();
    tracing::info!(election = %name, id = %id, epoch, command = ?args.command, "leading; starting the command");

    let mut child = match spawn(&args.command, &name, &id, epoch) {
        Ok(child) => child,
        Err(e) => {
            resign(&latch, &zk).await;
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => EXIT_NOT_EXECUTABLE,
                _ => 1,
            };
            fail(code, &format!("cannot run {:?}: {e}", args.command[0]));
        }
    };
    // The process group to signal; CMD leads its own (see `spawn`).
    let group = child.id().map(|pid| pid as libc::pid_t);
    let mut loss = leadership.loss();
    tokio::select! {
        status = child.wait() => {
            let code = exit_code(status.context("waiting for the command")?);
            tracing::info!(election = %name, code, "the command exited; resigning");
            resign(&latch, &zk).await;
            exit(code);
        }
        hold = loss.may_be_lost() => {
            let why = match hold {
                Hold::MayBeLost => format!("the ZooKeeper connection was suspended longer than {grace:?}"),
                _ => latch.ended().map(|r| r.to_string()).unwrap_or_else(|| "the ZooKeeper session ended".into()),
            };
            tracing::warn!(election = %name, epoch, reason = %why, "leadership lost: stopping the command");
            stop(&mut child, group, stop_grace).await;
            // Deleting our node lets the next leader in at once if the connection is back soon;
            // otherwise the session's expiry deletes it, so do not hold the exit for long.
            if tokio::time::timeout(zk.session_timeout() / 2, latch.resign()).await.is_err() {
                tracing::info!(election = %name, "not reconnected: the candidacy ends with the session");
            }
            fail(EXIT_LOST, &format!("lost the leadership of election {name} (epoch {epoch}): {why}; the command was stopped"));
        }
        sig = signals.recv() => {
            tracing::info!(election = %name, signal = sig, "forwarding the signal to the command");
            signal_group(group, sig);
            // Wait for CMD; losing the leadership meanwhile stops it for good, a second signal kills it.
            loop {
                tokio::select! {
                    _ = child.wait() => break,
                    _ = loss.may_be_lost(), if loss.is_held() => {
                        tracing::warn!(election = %name, epoch, "leadership lost while the command shuts down");
                        stop(&mut child, group, stop_grace).await;
                        break;
                    }
                    _ = signals.recv() => signal_group(group, libc::SIGKILL),
                }
            }
            resign(&latch, &zk).await;
            exit(128 + sig);
        }
    }
}

/// Starts CMD in its own process group (so a terminal's Ctrl-C reaches only zedis, which
/// forwards it once), dying with zedis if zedis is killed.
fn spawn(command: &[String], election: &str, id: &str, epoch: u64) -> std::io::Result<Child> {
    let (program, args) = command.split_first().ok_or_else(|| std::io::Error::other("no command given"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("ZEDIS_LEADER_EPOCH", epoch.to_string())
        .env("ZEDIS_ELECTION_NAME", election)
        .env("ZEDIS_LEADER_ID", id);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs between fork and exec and calls only async-signal-safe functions (setpgid,
    // prctl, getppid); it does not allocate. PR_SET_PDEATHSIG fires when the forking *thread*
    // exits: this runs on the thread that drives `block_on` in main, which lives as long as the
    // process.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                // SIGKILL, not SIGTERM: with zedis gone nobody could escalate, and a new leader
                // may be elected a session timeout later.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // zedis may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGTERM to CMD's group, SIGKILL after `grace`; returns once CMD is reaped.
async fn stop(child: &mut Child, group: Option<libc::pid_t>, grace: Duration) {
    signal_group(group, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(grace = ?grace, "the command did not exit after SIGTERM: SIGKILL");
        signal_group(group, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn signal_group(group: Option<libc::pid_t>, sig: i32) {
    if let Some(pgid) = group {
        // SAFETY: kill(2) has no memory-safety preconditions. The group exists at least until
        // CMD is reaped, and it is reaped only by our own `wait`, after which we never signal.
        let rc = unsafe { libc::kill(-pgid, sig) };
        if rc != 0 {
            tracing::debug!(pgid, sig, error = %std::io::Error::last_os_error(), "cannot signal the command");
        }
    }
}

/// Withdraws from the election, waiting at most two session timeouts for a suspended
/// connection (by then the server has expired the session and the node with it).
async fn resign(latch: &LeaderLatch, zk: &zedis_coord::Zk) {
    match tokio::time::timeout(zk.session_timeout() * 2, latch.resign()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot resign; the candidacy ends with the session"),
        Err(_) => tracing::warn!("resigning timed out; the candidacy ends with the session"),
    }
}

/// Prints the one-line reason and exits with `code`.
fn fail(code: i32, reason: &str) -> ! {
    eprintln!("zedis: {}", reason.replace('\n', " "));
    exit(code)
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let l = LeaderInfo {
            id: "w1".into(),
            epoch: 42,
            data: serde_json::Value::Null,
            since_ms: 1_000,
            node: "c-x-0000000001".into(),
        };
        let text = describe("jobs", &l, 3_500);
        assert_eq!(text, "election  jobs\nleader    w1\nepoch     42\nsince     1970-01-01T00:00:01.000Z (2.5s ago)\n");
        let with_data = LeaderInfo { data: serde_json::json!({"addr": "h:1"}), ..l };
        assert!(describe("jobs", &with_data, 3_500).ends_with("data      {\"addr\":\"h:1\"}\n"));
    }
}
