//! What a holder holds: [`LockGuard`], its fencing token and its loss signal.
//!
//! One acquisition is one [`HeldNode`]: the contender node, a task that follows the session
//! and the node (to move the loss signal), and the mirror. Reentrant guards share it; the
//! node is deleted when the last of them is released or dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use zedis_coord::Zk;
use zookeeper_client::{EventType, SessionState};

use super::acquire::{delete_bounded, delete_node, spawn_cleanup, Acquired, LockTarget};
use super::contender::{in_order, ContenderKind};
use super::error::LockError;
use super::mirror::{LockMirror, MirrorEntry};
use crate::loss::{next_hold, Hold, LossSender, LossSignal};

/// Why a hold ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// The holder released it.
    Released,
    /// The ZooKeeper session expired: the node is gone, someone else may hold the lock.
    SessionExpired,
    /// The session was closed (or its authentication failed).
    SessionClosed,
    /// Someone (an operator) deleted the contender node.
    NodeDeleted,
}

impl LossReason {
    fn of_session(state: SessionState) -> LossReason {
        match state {
            SessionState::Expired => LossReason::SessionExpired,
            _ => LossReason::SessionClosed,
        }
    }
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LossReason::Released => "released",
            LossReason::SessionExpired => "ZooKeeper session expired",
            LossReason::SessionClosed => "ZooKeeper session closed",
            LossReason::NodeDeleted => "lock node deleted by someone else",
        })
    }
}

/// The facts of one acquisition; they stay readable on a guard after release.
#[derive(Debug)]
struct HoldInfo {
    lock: String,
    dir: String,
    path: String,
    kind: ContenderKind,
    token: u64,
    since_ms: u64,
}

type Reason = Arc<Mutex<Option<LossReason>>>;

/// How long a vanished node's holder waits to learn whether its session ended with it.
const GONE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn note(reason: &Reason, why: LossReason) {
    reason.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
}

/// One acquisition: owns the contender node.
pub(crate) struct HeldNode {
    zk: Zk,
    info: Arc<HoldInfo>,
    sender: Arc<LossSender>,
    signal: LossSignal,
    reason: Reason,
    watcher: JoinHandle<()>,
    mirror: Option<LockMirror>,
    /// Set once the node was deleted (or handed to a cleanup task).
    released: bool,
}

impl HeldNode {
    /// Takes over the acquired node and starts following the session and the node.
    pub fn start(target: &LockTarget, kind: ContenderKind, acquired: Acquired) -> Arc<HeldNode> {
        let Acquired { node, token, record, waiters, .. } = acquired;
        let (zk, path) = node.take();
        let info = Arc::new(HoldInfo {
            lock: target.name.clone(),
            dir: target.dir.clone(),
            path,
            kind,
            token,
            since_ms: record.since_ms(),
        });
        // Only exclusive holds are mirrored: one hash describes one holder.
        let mirror = target.options.mirror.clone().filter(|_| kind.is_exclusive()).map(|conn| {
            LockMirror::new(conn, &target.name, record.owner.clone(), record.host.clone(), record.pid, waiters)
        });
        let (sender, signal) = LossSignal::new();
        let sender = Arc::new(sender);
        let reason: Reason = Arc::default();
        let watcher =
            tokio::spawn(follow_hold(zk.clone(), info.clone(), sender.clone(), reason.clone(), mirror.clone()));
        Arc::new(HeldNode { zk, info, sender, signal, reason, watcher, mirror, released: false })
    }

    pub fn hold(&self) -> Hold {
        self.signal.hold()
    }

    /// Writes the new holder into the mirror (bounded, best effort).
    pub async fn mirror_acquired(&self) {
        if let Some(mirror) = &self.mirror {
            mirror
                .acquired(MirrorEntry { token: self.info.token, since_ms: self.info.since_ms, kind: self.info.kind })
                .await;
        }
    }

    /// Ends the hold: the signal goes `Lost` first (the holder must stop before anyone else
    /// can get in), then the node is deleted, then the mirror says the lock is free.
    async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        note(&self.reason, LossReason::Released);
        self.sender.set(Hold::Lost);
        self.watcher.abort();
        let bound = self.zk.session_timeout();
        let result = delete_bounded(self.zk.clone(), self.info.path.clone(), bound).await;
        if let Some(mirror) = &self.mirror {
            let waiting = count_contenders(&self.zk, &self.info.dir).await;
            mirror.released(self.info.token, waiting).await;
        }
        tracing::debug!(lock = %self.info.lock, token = self.info.token, "released");
        result
    }
}

impl Drop for HeldNode {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        note(&self.reason, LossReason::Released);
        self.sender.set(Hold::Lost);
        self.watcher.abort();
        let (zk, path, dir, token, mirror) =
            (self.zk.clone(), self.info.path.clone(), self.info.dir.clone(), self.info.token, self.mirror.take());
        spawn_cleanup(path.clone(), async move {
            let deleted = delete_node(&zk, &path).await;
            if let Some(mirror) = mirror {
                mirror.released(token, count_contenders(&zk, &dir).await).await;
            }
            deleted
        });
    }
}

/// Contenders queued in `dir` now (for the mirror; `None` if unknown).
async fn count_contenders(zk: &Zk, dir: &str) -> Option<usize> {
    let read = zk.client().list_children(dir);
    match tokio::time::timeout(Duration::from_secs(1), read).await {
        Ok(Ok(names)) => Some(in_order(&names).len()),
        Ok(Err(zookeeper_client::Error::NoNode)) => Some(0),
        _ => None,
    }
}

/// Follows the session (suspended → may be lost; expired → lost) and our node (deleted →
/// lost) until the hold is lost; then says so in the mirror. The reason is noted before the
/// signal goes `Lost`, so whoever wakes on the signal can read it.
async fn follow_hold(zk: Zk, info: Arc<HoldInfo>, sender: Arc<LossSender>, reason: Reason, mirror: Option<LockMirror>) {
    let mut states = zk.client().state_watcher();
    let now = states.state();
    let why = if next_hold(sender.hold(), now) == Hold::Lost {
        LossReason::of_session(now)
    } else {
        sender.session_state(now);
        tokio::select! {
            why = follow_session(&mut states, &sender) => why,
            end = follow_node(&zk, &info.path, &sender) => match end {
                NodeEnd::Deleted => LossReason::NodeDeleted,
                // The client reports the end of the session to requests and watches in
                // several ways (expired, closed); its state says which it was.
                NodeEnd::SessionEnded => LossReason::of_session(zk.state()),
            },
        }
    };
    note(&reason, why);
    sender.set(Hold::Lost);
    // Info, not warn: the holder gets the signal and is the one to report it.
    tracing::info!(lock = %info.lock, token = info.token, node = %info.path, reason = %why, "lock lost");
    if let Some(mirror) = mirror {
        mirror.released(info.token, None).await;
    }
}

/// Moves the signal with the session until the session ends (left for the caller to send).
async fn follow_session(states: &mut zookeeper_client::StateWatcher, sender: &LossSender) -> LossReason {
    loop {
        let state = states.changed().await;
        tracing::debug!(?state, "lock holder's session changed");
        if next_hold(sender.hold(), state) == Hold::Lost {
            return LossReason::of_session(state);
        }
        sender.session_state(state);
    }
}

/// How watching our node ended.
enum NodeEnd {
    Deleted,
    SessionEnded,
}

async fn follow_node(zk: &Zk, path: &str, sender: &LossSender) -> NodeEnd {
    use zookeeper_client::Error as E;
    loop {
        match zk.client().check_and_watch_stat(path).await {
            Ok((None, _)) => return gone(zk, path, sender).await,
            Ok((Some(_), watcher)) => {
                let event = watcher.changed().await;
                match event.event_type {
                    EventType::NodeDeleted => return gone(zk, path, sender).await,
                    EventType::Session if event.session_state.is_terminated() => return NodeEnd::SessionEnded,
                    // A data change (our own mark) or a connection change: watch again.
                    _ => {}
                }
            }
            // Waits for the reconnect: not a spin.
            Err(E::ConnectionLoss) => {}
            Err(E::SessionExpired | E::ClientClosed | E::AuthFailed | E::SessionMoved) => return NodeEnd::SessionEnded,
            Err(e) => {
                // Cannot watch the node: the session alone tells the story from here.
                tracing::warn!(node = %path, error = %e, "cannot watch the lock node");
                return std::future::pending().await;
            }
        }
    }
}

/// Our node is gone: deleted by someone, or with our session (the server deletes the
/// ephemeral nodes of a session it expires, and that notification can reach us before we
/// learn of the expiry). One more request tells which: a live session answers it. Meanwhile
/// the hold may be lost; after [`GONE_PROBE_TIMEOUT`] without an answer it is lost anyway.
async fn gone(zk: &Zk, path: &str, sender: &LossSender) -> NodeEnd {
    use zookeeper_client::Error as E;
    sender.set(Hold::MayBeLost);
    let probe = async {
        loop {
            match zk.client().check_stat(path).await {
                Err(E::ConnectionLoss) => continue,
                Err(E::SessionExpired | E::ClientClosed | E::AuthFailed | E::SessionMoved) => {
                    return NodeEnd::SessionEnded
                }
                _ => return NodeEnd::Deleted,
            }
        }
    };
    tokio::time::timeout(GONE_PROBE_TIMEOUT.min(zk.session_timeout()), probe).await.unwrap_or(NodeEnd::Deleted)
}

/// A held lock (or read lock, write lock, semaphore permit).
///
/// Carries the **fencing token** of this acquisition ([`LockGuard::token`]): the `czxid` of
/// its contender node, which is greater than the token of every earlier acquisition of the
/// same lock, whoever held it, across sessions, ZooKeeper restarts and the deletion of the
/// lock's directory. Pass it to the protected resource so it can refuse older holders.
///
/// And a **loss signal** ([`LockGuard::loss`]): `MayBeLost` while the connection to
/// ZooKeeper is suspended (the session may expire before we hear of it), `Lost` once the
/// session expired or closed, the node was deleted by someone else, or the lock released.
///
/// Release it with [`LockGuard::release`]. Dropping it releases too, in a background task
/// (the loss signal goes `Lost` at once); outside a tokio runtime the node then stays until
/// the session ends.
pub struct LockGuard {
    held: Option<Arc<HeldNode>>,
    info: Arc<HoldInfo>,
    signal: LossSignal,
    reason: Reason,
}

impl LockGuard {
    pub(crate) fn new(held: Arc<HeldNode>) -> LockGuard {
        LockGuard {
            info: held.info.clone(),
            signal: held.signal.clone(),
            reason: held.reason.clone(),
            held: Some(held),
        }
    }

    /// The fencing token: strictly greater than that of any earlier acquisition of this lock.
    /// Reentrant guards on one hold share it.
    pub fn token(&self) -> u64 {
        self.info.token
    }

    /// The loss signal: select on it to stop the critical section in time.
    pub fn loss(&self) -> LossSignal {
        self.signal.clone()
    }

    /// The hold now.
    pub fn hold(&self) -> Hold {
        self.signal.hold()
    }

    /// Whether the lock is held for sure right now.
    pub fn is_held(&self) -> bool {
        self.signal.is_held()
    }

    /// Why the hold ended, once it has.
    pub fn lost_reason(&self) -> Option<LossReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.info.lock
    }

    /// The contender node's path.
    pub fn node_path(&self) -> &str {
        &self.info.path
    }

    /// What this guard holds: exclusive, read, write or a permit.
    pub fn kind(&self) -> ContenderKind {
        self.info.kind
    }

    /// When it was acquired (ms since the Unix epoch, local clock).
    pub fn since_ms(&self) -> u64 {
        self.info.since_ms
    }

    /// Releases the lock: the loss signal goes `Lost`, then the node is deleted (at most a
    /// session timeout is spent on it; after that the delete goes on in the background and
    /// [`LockError::ReleaseTimedOut`] is returned). Idempotent. With reentrant guards, the
    /// lock is released when the last of them is.
    ///
    /// # Cancellation safety
    /// Safe: dropped midway, the delete still goes out (or the drop cleanup does it).
    pub async fn release(&mut self) -> Result<(), LockError> {
        let Some(held) = self.held.take() else { return Ok(()) };
        match Arc::into_inner(held) {
            Some(held) => held.release().await,
            // Other reentrant guards still hold it.
            None => Ok(()),
        }
    }

    /// Waits until the hold is lost for good and returns why.
    ///
    /// # Cancellation safety
    /// Safe to drop and call again.
    pub async fn lost(&self) -> LossReason {
        let mut signal = self.signal.clone();
        signal.lost().await;
        self.lost_reason().unwrap_or(LossReason::SessionClosed)
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.info.lock)
            .field("node", &self.info.path)
            .field("kind", &self.info.kind)
            .field("token", &self.info.token)
            .field("hold", &self.hold())
            .finish()
    }
}

impl std::fmt::Debug for HeldNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldNode").field("info", &self.info).field("hold", &self.hold()).finish()
    }
}
