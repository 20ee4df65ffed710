//! One candidacy, run by a task of its own: join the line, wait for our turn, lead while the
//! verdict says so, withdraw. [`super::LeaderLatch`] and [`super::LeaderSelector`] are thin
//! handles on it.
//!
//! The task owns the candidate node, so dropping or cancelling a handle never leaves the node
//! behind: the task sees its command channel close and deletes the node itself (retrying
//! through connection loss until the session ends, which deletes it anyway).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use zedis_coord::election::in_order;
use zedis_coord::{Candidate, CoordError, SessionState, StateWatcher, Zk};
use zookeeper_client::{EventType, OneshotWatcher};

use super::error::{zk_error, ElectionError, EndReason};
use super::leadership::Leadership;
use super::options::{election_dir, ElectionOptions};
use super::record::{epoch_of, now_ms, CandidateRecord};
use super::verdict::{decide, Facts, Verdict};
use crate::loss::{Hold, LossSender, LossSignal};

/// Pause before asking ZooKeeper again after a failed call, so a flapping link does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where a candidacy stands.
#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// In line behind other candidates (or checking our turn).
    InLine,
    /// Our term: act as leader while `leadership.is_held()`.
    Leading(Leadership),
    /// Over for good.
    Ended(EndReason),
}

/// A resign request and where to answer it.
type Reply = oneshot::Sender<Result<(), CoordError>>;

/// The handle on a running candidacy. Dropping it withdraws the candidacy.
#[derive(Debug)]
pub(crate) struct Campaign {
    election: String,
    path: String,
    phase: watch::Receiver<Phase>,
    resign: mpsc::Sender<Reply>,
}

impl Campaign {
    /// Checks the options, joins the line (the node exists when this returns) and starts the
    /// task that follows it.
    ///
    /// # Cancellation safety
    /// Safe: the node is created by the task; if this future is dropped, the task withdraws
    /// the node as soon as it exists.
    pub async fn start(zk: &Zk, election: &str, options: &ElectionOptions) -> Result<Campaign, ElectionError> {
        options.check()?;
        let dir = election_dir(&options.root, election)?;
        let grace = options.grace_for(zk.session_timeout())?;
        let record = CandidateRecord {
            id: options.id.clone(),
            data: options.data.clone(),
            joined_ms: now_ms(),
            leading_since_ms: None,
        };
        let (phase_tx, phase) = watch::channel(Phase::InLine);
        let (resign, resign_rx) = mpsc::channel(1);
        let (joined_tx, joined) = oneshot::channel();
        let runner = Runner {
            states: zk.client().state_watcher(),
            zk: zk.clone(),
            dir,
            election: election.to_string(),
            record,
            grace,
            phase: phase_tx,
            resign: resign_rx,
            since: None,
        };
        tokio::spawn(runner.run(joined_tx));
        let path = match joined.await {
            Ok(Ok(path)) => path,
            Ok(Err(e)) => return Err(e.into()),
            // The task is gone without an answer: the runtime is shutting down.
            Err(_) => {
                return Err(CoordError::Zk { path: String::new(), source: zookeeper_client::Error::ClientClosed }.into())
            }
        };
        Ok(Campaign { election: election.to_string(), path, phase, resign })
    }

    /// The candidate node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// The leadership, if we lead and may act on it now.
    pub fn leadership(&self) -> Option<Leadership> {
        match &*self.phase.borrow() {
            Phase::Leading(l) if l.is_held() => Some(l.clone()),
            _ => None,
        }
    }

    /// Waits until we lead and may act on it.
    ///
    /// # Cancellation safety
    /// Safe: it only watches the task's state.
    pub async fn await_leadership(&self) -> Result<Leadership, ElectionError> {
        let mut phase = self.phase.clone();
        let ready = |p: &Phase| matches!(p, Phase::Ended(_)) || matches!(p, Phase::Leading(l) if l.is_held());
        // An error means the task is gone; its last word is still readable.
        let waited = phase.wait_for(ready).await.map(|p| p.clone());
        let now = waited.unwrap_or_else(|_| phase.borrow().clone());
        match now {
            Phase::Leading(l) if l.is_held() => Ok(l),
            Phase::Ended(reason) => Err(ElectionError::Ended { election: self.election.clone(), reason }),
            // Only when the task vanished without ending (a panic): nothing vouches for us.
            _ => Err(ElectionError::Ended { election: self.election.clone(), reason: EndReason::SessionLost }),
        }
    }

    /// Withdraws: the leadership (if any) is `Lost` first, then the node is deleted, so no
    /// successor can start before we stopped. Idempotent. Waits for a suspended connection to
    /// come back (or the session to end, which deletes the node too).
    ///
    /// # Cancellation safety
    /// Safe: once asked, the task withdraws whether or not this future is still awaited.
    pub async fn resign(&self) -> Result<(), ElectionError> {
        let (reply, answer) = oneshot::channel();
        if self.resign.send(reply).await.is_err() {
            // The task has ended: the node is gone already.
            return Ok(());
        }
        match answer.await {
            Ok(result) => result.map_err(ElectionError::from),
            Err(_) => Ok(()),
        }
    }
}

/// Why the task stops following the line.
enum Stop {
    /// Asked to resign (`Some`), or the handle was dropped (`None`).
    Resign(Option<Reply>),
    /// Over for another reason; nothing to delete.
    End(EndReason),
}

/// What a re-check of our node found.
enum Verified {
    /// Still first; here is a fresh watch on our node.
    Leads(OneshotWatcher),
    /// Our node is gone (or, impossibly, no longer first).
    Gone,
}

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Runner {
    zk: Zk,
    dir: String,
    election: String,
    record: CandidateRecord,
    grace: Duration,
    phase: watch::Sender<Phase>,
    resign: mpsc::Receiver<Reply>,
    states: StateWatcher,
    /// When this candidacy first began to lead (kept across re-checks of the same term).
    since: Option<SystemTime>,
}

impl Runner {
    async fn run(mut self, joined: oneshot::Sender<Result<String, CoordError>>) {
        let candidate = match Candidate::join(&self.zk, &self.dir, &self.record.to_bytes()).await {
            Ok(c) => c,
            Err(e) => {
                let reason = if e.is_session_lost() { EndReason::SessionLost } else { EndReason::Resigned };
                self.phase.send_replace(Phase::Ended(reason));
                let _ = joined.send(Err(e));
                return;
            }
        };
        tracing::info!(election = %self.election, id = %self.record.id, node = %candidate.name(), "joined the election");
        // Nobody waiting any more (start was cancelled): the closed channel makes us withdraw below.
        let _ = joined.send(Ok(candidate.path()));
        let stop = self.campaign(&candidate).await;
        let (reason, reply) = match stop {
            Stop::Resign(reply) => (EndReason::Resigned, reply),
            Stop::End(reason) => (reason, None),
        };
        self.phase.send_replace(Phase::Ended(reason));
        let result = match reason {
            EndReason::Resigned => self.withdraw(&candidate).await,
            _ => Ok(()),
        };
        match &result {
            Ok(()) => tracing::info!(election = %self.election, node = %candidate.name(), %reason, "candidacy over"),
            Err(e) => tracing::warn!(election = %self.election, node = %candidate.name(), error = %e,
                "cannot delete the candidate node; it goes when the session ends"),
        }
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    async fn campaign(&mut self, candidate: &Candidate) -> Stop {
        loop {
            if let Some(stop) = self.wait_turn(candidate).await {
                return stop;
            }
            if let Some(stop) = self.lead(candidate).await {
                return stop;
            }
            // Our turn could not be confirmed (connection trouble): check the line again.
        }
    }

    /// Waits until our node is first; `Some` if the candidacy ends first.
    async fn wait_turn(&mut self, candidate: &Candidate) -> Option<Stop> {
        loop {
            let names = match guarded(&mut self.resign, self.zk.children(&self.dir)).await {
                Err(reply) => return Some(Stop::Resign(reply)),
                Ok(Ok(names)) => names,
                Ok(Err(e)) => match self.after_error(e).await {
                    Some(stop) => return Some(stop),
                    None => continue,
                },
            };
            let order = in_order(names);
            let Some(pos) = order.iter().position(|n| n == candidate.name()) else {
                return Some(Stop::End(self.vanished()));
            };
            if pos == 0 {
                return None;
            }
            // Herd-free: only the predecessor's departure can make us first.
            let predecessor = format!("{}/{}", self.dir, order[pos - 1]);
            tracing::debug!(election = %self.election, node = %candidate.name(), %predecessor, "in line");
            let watcher = match guarded(&mut self.resign, self.zk.client().check_and_watch_stat(&predecessor)).await {
                Err(reply) => return Some(Stop::Resign(reply)),
                Ok(Ok((Some(_), watcher))) => watcher,
                Ok(Ok((None, _))) => continue,
                Ok(Err(e)) => match self.after_error(zk_error(&predecessor, e)).await {
                    Some(stop) => return Some(stop),
                    None => continue,
                },
            };
            // Fires on the predecessor's deletion, or with the session's end.
            if let Err(reply) = guarded(&mut self.resign, watcher.changed()).await {
                return Some(Stop::Resign(reply));
            }
        }
    }

    /// Our node is first: confirm it, lead until the term ends. `None` if the turn could not be
    /// confirmed (back in line to check again).
    async fn lead(&mut self, candidate: &Candidate) -> Option<Stop> {
        let path = candidate.path();
        let since = *self.since.get_or_insert_with(SystemTime::now);
        let since_ms = since.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let stamped = CandidateRecord { leading_since_ms: Some(since_ms), ..self.record.clone() };
        // A write goes through the ensemble's leader: it proves our node exists right now, and
        // tells observers since when we lead.
        match guarded(&mut self.resign, self.zk.set(&path, &stamped.to_bytes(), None)).await {
            Err(reply) => return Some(Stop::Resign(reply)),
            Ok(Ok(_)) => {}
            Ok(Err(CoordError::Zk { source: zookeeper_client::Error::NoNode, .. })) => {
                return Some(Stop::End(self.vanished()))
            }
            Ok(Err(e)) => return self.after_error(e).await,
        }
        let watcher = match guarded(&mut self.resign, self.zk.client().check_and_watch_stat(&path)).await {
            Err(reply) => return Some(Stop::Resign(reply)),
            Ok(Ok((Some(_), watcher))) => watcher,
            Ok(Ok((None, _))) => return Some(Stop::End(self.vanished())),
            Ok(Err(e)) => return self.after_error(zk_error(&path, e)).await,
        };
        let (loss_tx, loss) = LossSignal::new();
        let epoch = epoch_of(candidate.czxid());
        let leadership = Leadership::new(&self.election, &self.record.id, epoch, candidate.name(), since, loss);
        tracing::info!(election = %self.election, id = %self.record.id, epoch, node = %candidate.name(), "leading");
        self.phase.send_replace(Phase::Leading(leadership));
        let stop = self.hold_office(candidate, watcher, &loss_tx).await;
        // Stop believing before anything else happens (the node's deletion lets a successor in).
        loss_tx.set(Hold::Lost);
        tracing::info!(election = %self.election, id = %self.record.id, epoch, "no longer leading");
        Some(stop)
    }

    /// Leads until the term ends, keeping the loss signal at the verdict's hold.
    async fn hold_office(&mut self, candidate: &Candidate, watcher: OneshotWatcher, loss: &LossSender) -> Stop {
        let path = candidate.path();
        let mut own: Pending<zookeeper_client::WatchedEvent> = Box::pin(watcher.changed());
        let mut verifying: Option<Pending<Result<Verified, CoordError>>> = None;
        let mut needs_check = false;
        let mut retry_at: Option<Instant> = None;
        let mut first = true;
        let mut suspended_since: Option<Instant> = None;
        let mut held = Hold::Held;
        // Changes before now were seen by the stamp we just wrote.
        let _ = self.states.state();
        loop {
            let now = Instant::now();
            let session = self.zk.state();
            match session {
                SessionState::Disconnected | SessionState::ConnectedReadOnly => {
                    suspended_since.get_or_insert(now);
                }
                SessionState::SyncConnected if suspended_since.is_some() => {
                    suspended_since = None;
                    needs_check = true;
                }
                _ => {}
            }
            let verdict = decide(Facts {
                first,
                session,
                suspended_for: suspended_since.map(|t| now.duration_since(t)),
                grace: self.grace,
            });
            let hold = verdict.hold();
            if hold != held {
                match verdict {
                    Verdict::StepDown => tracing::warn!(election = %self.election, grace = ?self.grace,
                        "ZooKeeper connection suspended longer than the grace: stepping down"),
                    Verdict::Lead => {
                        tracing::info!(election = %self.election, "reconnected and still first: leading again")
                    }
                    _ => {}
                }
                loss.set(hold);
                held = hold;
                // Wake whoever waits on the phase (the hold lives in the leadership it holds).
                self.phase.send_modify(|_| {});
            }
            match verdict {
                Verdict::Ended => return Stop::End(EndReason::SessionLost),
                // Believe again only after a read confirms the node once the connection is back.
                Verdict::StepDown => first = false,
                Verdict::Lead | Verdict::Wait => {}
            }
            if !first && suspended_since.is_none() {
                needs_check = true;
            }
            if needs_check && verifying.is_none() && retry_at.is_none() && session == SessionState::SyncConnected {
                needs_check = false;
                verifying = Some(Box::pin(verify(self.zk.clone(), self.dir.clone(), candidate.name().to_string())));
            }
            let grace_end = suspended_since.filter(|_| first).map(|t| t + self.grace);
            tokio::select! {
                event = &mut own => {
                    // A oneshot watcher is spent once it fired; the next check arms a new one.
                    own = Box::pin(std::future::pending());
                    if event.event_type == EventType::NodeDeleted {
                        return Stop::End(self.vanished());
                    }
                    // A change of our node's data (someone wrote it), or the session's end
                    // (seen at the top of the loop): check again, with a new watch.
                    needs_check = true;
                }
                state = self.states.changed() => {
                    // Even a reconnect we never saw as a disconnect gets a fresh check.
                    if state == SessionState::SyncConnected {
                        needs_check = true;
                    }
                }
                _ = tokio::time::sleep_until(grace_end.unwrap_or(now).into()), if grace_end.is_some() => {}
                _ = tokio::time::sleep_until(retry_at.unwrap_or(now).into()), if retry_at.is_some() => {
                    retry_at = None;
                }
                result = maybe(&mut verifying) => {
                    verifying = None;
                    match result {
                        Ok(Verified::Leads(watcher)) => {
                            first = true;
                            own = Box::pin(watcher.changed());
                        }
                        Ok(Verified::Gone) => return Stop::End(self.vanished()),
                        Err(e) if e.is_session_lost() => return Stop::End(EndReason::SessionLost),
                        Err(e) => {
                            if !matches!(e, CoordError::ConnectionLoss) {
                                tracing::warn!(election = %self.election, node = %path, error = %e,
                                    "cannot check the candidate node; not leading until it can be checked");
                                first = false;
                            }
                            needs_check = true;
                            retry_at = Some(Instant::now() + RETRY_PAUSE);
                        }
                    }
                }
                reply = self.resign.recv() => return Stop::Resign(reply),
            }
        }
    }

    /// Handles a failed call: `Some` if the candidacy is over, else waits until the connection
    /// is back (and a short pause) for the caller to try again.
    async fn after_error(&mut self, e: CoordError) -> Option<Stop> {
        if e.is_session_lost() {
            return Some(Stop::End(EndReason::SessionLost));
        }
        if !matches!(e, CoordError::ConnectionLoss) {
            tracing::warn!(election = %self.election, error = %e, "election call failed; trying again");
        }
        let (zk, states) = (&self.zk, &mut self.states);
        let wait = async move {
            let connected = until_connected(zk, states).await;
            tokio::time::sleep(RETRY_PAUSE).await;
            connected
        };
        match guarded(&mut self.resign, wait).await {
            Ok(connected) => (!connected).then_some(Stop::End(EndReason::SessionLost)),
            Err(reply) => Some(Stop::Resign(reply)),
        }
    }

    /// Why our node is not there: the session ended, or someone deleted it.
    fn vanished(&self) -> EndReason {
        if is_over(self.zk.state()) {
            EndReason::SessionLost
        } else {
            tracing::warn!(election = %self.election, "our candidate node was deleted by someone else");
            EndReason::NodeDeleted
        }
    }

    /// Deletes our node, through connection loss, until the session ends (which deletes it).
    async fn withdraw(&mut self, candidate: &Candidate) -> Result<(), CoordError> {
        let path = candidate.path();
        loop {
            match self.zk.delete(&path, None).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_session_lost() => return Ok(()),
                Err(CoordError::ConnectionLoss) => {
                    if !until_connected(&self.zk, &mut self.states).await {
                        return Ok(());
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Re-checks after a reconnect (or a change of our node) that our node is still first, and
/// arms a new watch on it.
async fn verify(zk: Zk, dir: String, name: String) -> Result<Verified, CoordError> {
    let path = format!("{dir}/{name}");
    let watcher = match zk.client().check_and_watch_stat(&path).await {
        Ok((Some(_), watcher)) => watcher,
        Ok((None, _)) => return Ok(Verified::Gone),
        Err(e) => return Err(zk_error(&path, e)),
    };
    let order = in_order(zk.children(&dir).await?);
    Ok(if order.first() == Some(&name) { Verified::Leads(watcher) } else { Verified::Gone })
}

/// Runs `fut` unless a resign request (or the handle's drop) comes first.
async fn guarded<T>(resign: &mut mpsc::Receiver<Reply>, fut: impl Future<Output = T>) -> Result<T, Option<Reply>> {
    tokio::select! {
        out = fut => Ok(out),
        reply = resign.recv() => Err(reply),
    }
}

/// Awaits the pending future if there is one, else never resolves.
async fn maybe<T>(fut: &mut Option<Pending<T>>) -> T {
    match fut {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

fn is_over(state: SessionState) -> bool {
    matches!(state, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed)
}

/// Waits until the session is connected (`true`) or over (`false`).
async fn until_connected(zk: &Zk, states: &mut StateWatcher) -> bool {
    loop {
        match zk.state() {
            SessionState::SyncConnected => return true,
            s if is_over(s) => return false,
            _ => {
                states.changed().await;
            }
        }
    }
}
