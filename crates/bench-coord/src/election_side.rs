//! Election hand-over time: two candidates ([`LeaderLatch`]), each with its own ZooKeeper
//! session; the leader goes and we time until the other's `await_leadership()` returns.
//!
//! Two ways to go:
//! - [`Exit::Resign`]: the leader calls `resign()` (a planned hand-over);
//! - [`Exit::SessionClosed`]: the leader's process stops dead (its runtime is torn down, so it
//!   neither resigns nor deletes its node), then its session is closed, so ZooKeeper deletes
//!   its node at once — what a process that closes its session on exit gets. The close is sent
//!   by a second client attached to the same session (the dead client cannot send it).
//!
//! A `kill -9` without the close is bounded by the session timeout and is covered by
//! `crates/cli/tests/election_cli.rs`; it is not measured here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use tokio::time::Instant;
use zedis_coord::Zk;
use zedis_recipes::leader::{ElectionOptions, LeaderLatch};
use zookeeper_client::{Client, SessionInfo};

use crate::zk_side::{self, SESSION_TIMEOUT};

/// Longest one step (a leadership, a hand-over) may take before the round is declared stuck.
const STUCK: Duration = Duration::from_secs(10);

/// How the leader goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Resign,
    SessionClosed,
}

impl Exit {
    pub fn describe(self) -> &'static str {
        match self {
            Exit::Resign => "leader resign() -> next leader",
            Exit::SessionClosed => "leader session closed -> next leader",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Exit::Resign => "resign",
            Exit::SessionClosed => "close",
        }
    }
}

fn options(id: &str) -> ElectionOptions {
    ElectionOptions::with_id(format!("zedis-bench-coord-{id}"))
}

/// One session, on the current runtime.
async fn session(hosts: &str) -> Result<Zk> {
    zk_side::sessions(hosts, 1).await?.pop().context("no session")
}

/// Hand-overs done before the timed ones, not counted.
pub const WARMUP_ROUNDS: usize = 1;

/// `rounds` hand-overs of one kind, each in a fresh election with fresh sessions, after
/// [`WARMUP_ROUNDS`] untimed ones.
pub async fn handovers(hosts: &str, exit: Exit, rounds: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(WARMUP_ROUNDS + rounds);
    for round in 0..WARMUP_ROUNDS + rounds {
        let election = format!("bench-{}-{round}-{}", exit.tag(), std::process::id());
        let took = match exit {
            Exit::Resign => resign_round(hosts, &election).await,
            Exit::SessionClosed => close_round(hosts, &election).await,
        };
        samples.push(took.with_context(|| format!("{} hand-over, round {}", exit.tag(), round + 1))?);
    }
    Ok(samples.split_off(WARMUP_ROUNDS))
}

async fn resign_round(hosts: &str, election: &str) -> Result<Duration> {
    let (za, zb) = (session(hosts).await?, session(hosts).await?);
    let a = LeaderLatch::start(&za, election, options("a")).await?;
    tokio::time::timeout(STUCK, a.await_leadership()).await.context("the first candidate never led")??;
    let b = LeaderLatch::start(&zb, election, options("b")).await?;
    ensure!(!b.is_leader(), "the second candidate leads while the first has not gone");
    time_handover(b, async { a.resign().await.context("resign") }).await
}

async fn close_round(hosts: &str, election: &str) -> Result<Duration> {
    let doomed = Doomed::start(hosts, election).await?;
    let zb = session(hosts).await?;
    let b = LeaderLatch::start(&zb, election, options("b")).await?;
    let node = doomed.node.clone();
    let (leader_session, handles) = doomed.kill();
    // The dead leader's tasks are dropped by its runtime's workers: give them a moment, then
    // check that nothing deleted its node (only the close below may).
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(handles);
    ensure!(zb.get(&node).await?.is_some(), "the dead leader's node {node} went before its session was closed");
    ensure!(!b.is_leader(), "the second candidate leads while the dead leader's node is there");
    let closer = Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_session(leader_session)
        .connect(hosts)
        .await
        .context("attach to the dead leader's session")?;
    // Dropping the last handle on a client sends CloseSession.
    time_handover(b, async move {
        drop(closer);
        Ok(())
    })
    .await
}

/// Times from just before `go` runs until `next`'s `await_leadership()` returns, then makes
/// `next` resign.
async fn time_handover(next: LeaderLatch, go: impl Future<Output = Result<()>>) -> Result<Duration> {
    let next = Arc::new(next);
    let waiter = tokio::spawn({
        let next = next.clone();
        async move { next.await_leadership().await.map(|_| Instant::now()) }
    });
    let start = Instant::now();
    go.await?;
    let led_at = tokio::time::timeout_at(start + STUCK, waiter)
        .await
        .map_err(|_| anyhow!("no new leader {STUCK:?} after the old one went"))?
        .map_err(|e| anyhow!("waiter task failed: {e}"))?
        .context("the next candidate's await_leadership")?;
    next.resign().await.context("resign the new leader")?;
    Ok(led_at.saturating_duration_since(start))
}

/// A leader whose whole "process" (a runtime of its own, with its session and its candidacy
/// task) can be stopped dead.
struct Doomed {
    runtime: tokio::runtime::Runtime,
    latch: LeaderLatch,
    zk: Zk,
    node: String,
}

impl Doomed {
    /// Connects and stands on a runtime of its own; returns once it leads.
    async fn start(hosts: &str, election: &str) -> Result<Doomed> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("doomed-leader")
            .enable_all()
            .build()
            .context("start the leader's runtime")?;
        let (hosts, election) = (hosts.to_owned(), election.to_owned());
        let (latch, zk) = runtime
            .spawn(async move {
                let zk = session(&hosts).await?;
                let latch = LeaderLatch::start(&zk, &election, options("a")).await?;
                tokio::time::timeout(STUCK, latch.await_leadership())
                    .await
                    .context("the first candidate never led")??;
                Ok::<_, anyhow::Error>((latch, zk))
            })
            .await
            .map_err(|e| anyhow!("leader task failed: {e}"))??;
        let node = latch.node_path().to_owned();
        Ok(Doomed { runtime, latch, zk, node })
    }

    /// Stops every task of the leader without a word to ZooKeeper (no resign, no
    /// CloseSession) and returns its session, to be closed by someone else, and its handles:
    /// drop them only once the runtime's workers surely dropped its tasks.
    fn kill(self) -> (SessionInfo, (LeaderLatch, Zk)) {
        let Doomed { runtime, latch, zk, node: _ } = self;
        let session = zk.client().session().clone();
        runtime.shutdown_background();
        (session, (latch, zk))
    }
}
