//! The I/O side of every lock recipe: create our contender node, wait our turn watching only
//! the nodes [`contender::decide`] names, and clean up after a timeout or a cancelled wait.
//!
//! The recipes (mutex, read-write lock, semaphore) differ only in the contender kind and the
//! number of permits; the decisions are pure functions in [`super::contender`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use zedis_coord::Zk;
use zookeeper_client::{Acls, CreateMode, CreateOptions, EventType, WatchedEvent};

use super::contender::{
    decide, find_own, in_order, must_mark, new_token, node_prefix, now_ms, ContenderKind, ContenderRecord, Decision,
    WaitFor,
};
use super::error::LockError;
use super::guard::{HeldNode, LockGuard};
use super::options::{lock_dir, LockOptions};
use crate::loss::Hold;

const EPHEMERAL_SEQUENTIAL: CreateOptions<'static> = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
/// Lock directories are containers: ZooKeeper deletes them once their last contender is
/// gone, so lock names used once do not pile up. Tokens do not care (zxids never go back).
const CONTAINER: CreateOptions<'static> = CreateMode::Container.with_acls(Acls::anyone_all());

/// How many times a background cleanup retries after a connection loss before it leaves the
/// node to the end of the session (each retry waits for a reconnect, so this is not a spin).
const CLEANUP_RETRIES: usize = 10;

/// What every recipe instance knows: the session, the lock's name and directory, options.
#[derive(Debug)]
pub(crate) struct LockTarget {
    pub zk: Zk,
    pub name: String,
    pub dir: String,
    pub options: LockOptions,
}

impl LockTarget {
    pub fn new(zk: &Zk, name: &str, options: LockOptions) -> Result<LockTarget, LockError> {
        let dir = lock_dir(&options.root, name)?;
        Ok(LockTarget { zk: zk.clone(), name: name.to_string(), dir, options })
    }

    fn path(&self, node: &str) -> String {
        format!("{}/{node}", self.dir)
    }
}

/// The reentrancy slot of a recipe instance: the hold it has now, if any.
pub(crate) type Slot = Mutex<Weak<HeldNode>>;

/// Another guard on the hold in `slot`, if this instance still holds it.
pub(crate) fn reenter(slot: &Slot) -> Option<LockGuard> {
    let held = slot.lock().unwrap_or_else(|e| e.into_inner()).upgrade()?;
    (held.hold() != Hold::Lost).then(|| LockGuard::new(held))
}

/// Whether the hold in `slot` is live.
pub(crate) fn holds(slot: &Slot) -> bool {
    slot.lock().unwrap_or_else(|e| e.into_inner()).upgrade().is_some_and(|h| h.hold() != Hold::Lost)
}

/// Takes the lock as `kind` (with `permits` for a semaphore) and returns a guard, or `None`
/// if `timeout` passed first. With a timeout the waiting for others is bounded by it; the
/// first attempt (create and one look at the queue) may take up to a session timeout when
/// ZooKeeper is slow to answer, so a zero timeout still takes a free lock.
///
/// # Cancellation safety
/// Safe: a dropped future leaves no node behind (a cleanup task deletes it, or the node
/// created by a create whose reply never came, found by its token).
pub(crate) async fn take(
    target: &Arc<LockTarget>,
    kind: ContenderKind,
    permits: u32,
    slot: Option<&Slot>,
    timeout: Option<Duration>,
) -> Result<Option<LockGuard>, LockError> {
    let attempt = async {
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let Some(acquired) = acquire(target, kind, permits, deadline).await? else { return Ok(None) };
        let held = HeldNode::start(target, kind, acquired);
        if let Some(slot) = slot {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&held);
        }
        held.mirror_acquired().await;
        Ok(Some(LockGuard::new(held)))
    };
    match timeout {
        None => attempt.await,
        Some(t) => {
            let hard = t.max(target.zk.session_timeout());
            tokio::time::timeout(hard, attempt).await.unwrap_or_else(|_| {
                tracing::debug!(lock = %target.name, after = ?hard, "ZooKeeper too slow: giving up the attempt");
                Ok(None)
            })
        }
    }
}

/// A contender that now holds.
pub(crate) struct Acquired {
    /// Deletes the node if this is dropped before a [`HeldNode`] takes it over.
    pub node: NodeGuard,
    /// The node's `czxid`: the fencing token.
    pub token: u64,
    pub record: ContenderRecord,
    /// Contenders queued behind us when we acquired.
    pub waiters: usize,
}

async fn acquire(
    target: &LockTarget,
    kind: ContenderKind,
    permits: u32,
    deadline: Option<Instant>,
) -> Result<Option<Acquired>, LockError> {
    let zk = &target.zk;
    if zk.state().is_terminated() {
        return Err(LockError::SessionLost);
    }
    let mut record = ContenderRecord {
        owner: target.options.owner.clone(),
        host: super::options::host_name(),
        pid: std::process::id(),
        queued_ms: now_ms(),
        acquired_ms: None,
        permits: (kind == ContenderKind::Permit).then_some(permits),
    };
    let token = new_token();
    let pending = PendingCreate { zk: Some(zk.clone()), dir: target.dir.clone(), token: token.clone() };
    let (name, czxid) = create_contender(target, kind, &token, &record).await?;
    let node = pending.created(target.path(&name));
    let path = target.path(&name);
    tracing::debug!(lock = %target.name, node = %name, token = czxid, "queued");
    let mut waited = false;
    loop {
        let names = match zk.client().list_children(&target.dir).await {
            Ok(names) => names,
            // Requests wait for the reconnect: asking again is not a spin.
            Err(zookeeper_client::Error::ConnectionLoss) => continue,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(LockError::zk(&target.dir, e)),
        };
        let queue = in_order(&names);
        match decide(&queue, &name, permits) {
            Decision::Acquired => {
                let index = queue.iter().position(|c| c.name == name).unwrap_or(0);
                let waiters = queue.len().saturating_sub(index + 1);
                if must_mark(kind, waited, waiters) {
                    record.acquired_ms = Some(now_ms());
                    mark_acquired(zk, &path, &record).await?;
                }
                tracing::debug!(lock = %target.name, node = %name, token = czxid, waiters, "acquired");
                return Ok(Some(Acquired { node, token: czxid, record, waiters }));
            }
            Decision::Gone => {
                node.forget();
                return Err(if zk.state().is_terminated() {
                    LockError::SessionLost
                } else {
                    LockError::ContenderDeleted { path }
                });
            }
            Decision::Wait(wait) => {
                waited = true;
                let waiting = wait_for(zk, &target.dir, &wait);
                let timed_out = match deadline {
                    None => {
                        waiting.await?;
                        false
                    }
                    Some(d) if Instant::now() >= d => true,
                    Some(d) => match tokio::time::timeout_at(d, waiting).await {
                        Ok(r) => {
                            r?;
                            false
                        }
                        Err(_) => true,
                    },
                };
                if timed_out {
                    tracing::debug!(lock = %target.name, node = %name, "timed out waiting; leaving the queue");
                    if let Err(e) = node.delete(zk.session_timeout()).await {
                        tracing::warn!(lock = %target.name, error = %e, "could not leave the queue cleanly");
                    }
                    return Ok(None);
                }
            }
        }
    }
}

/// Creates our contender node; returns its name and `czxid`. A create whose reply is lost
/// may have happened: we look for our token before creating again, so no orphan is left.
async fn create_contender(
    target: &LockTarget,
    kind: ContenderKind,
    token: &str,
    record: &ContenderRecord,
) -> Result<(String, u64), LockError> {
    let zk = &target.zk;
    let prefix = node_prefix(&target.dir, kind, token);
    let data = serde_json::to_vec(record).expect("a ContenderRecord always serializes");
    loop {
        match zk.client().create(&prefix, &data, &EPHEMERAL_SEQUENTIAL).await {
            Ok((stat, sequence)) => {
                let name = format!("{}-{token}-{sequence}", kind.prefix());
                return Ok((name, token_of(stat.czxid)));
            }
            Err(zookeeper_client::Error::NoNode) => ensure_dir(zk, &target.dir).await?,
            Err(zookeeper_client::Error::ConnectionLoss) => {
                // This session's requests run in order and wait for the reconnect, so this
                // listing sees the node if the create went through.
                if let Some(found) = find_by_token(zk, &target.dir, token).await? {
                    tracing::debug!(lock = %target.name, node = %found.0, "recovered our node after a lost create reply");
                    return Ok(found);
                }
            }
            Err(e) => return Err(LockError::zk(&prefix, e)),
        }
    }
}

/// Our node (name, czxid) by its token, if it exists.
async fn find_by_token(zk: &Zk, dir: &str, token: &str) -> Result<Option<(String, u64)>, LockError> {
    loop {
        let names = match zk.client().list_children(dir).await {
            Ok(names) => names,
            Err(zookeeper_client::Error::ConnectionLoss) => continue,
            Err(zookeeper_client::Error::NoNode) => return Ok(None),
            Err(e) => return Err(LockError::zk(dir, e)),
        };
        let Some(own) = find_own(&in_order(&names), token).map(|c| c.name.clone()) else { return Ok(None) };
        let path = format!("{dir}/{own}");
        match zk.client().check_stat(&path).await {
            Ok(Some(stat)) => return Ok(Some((own, token_of(stat.czxid)))),
            Ok(None) => return Ok(None),
            Err(zookeeper_client::Error::ConnectionLoss) => continue,
            Err(e) => return Err(LockError::zk(&path, e)),
        }
    }
}

/// Creates `<root>/locks` (persistent) and the lock's own directory (a container).
async fn ensure_dir(zk: &Zk, dir: &str) -> Result<(), LockError> {
    if let Some((parent, _)) = dir.rsplit_once('/') {
        if !parent.is_empty() {
            zk.ensure_path(parent).await?;
        }
    }
    match zk.client().create(dir, b"", &CONTAINER).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) | Err(zookeeper_client::Error::ConnectionLoss) => Ok(()),
        Err(e) => Err(LockError::zk(dir, e)),
    }
}

/// Writes the record with `acquired_ms` into our node (see [`must_mark`]).
async fn mark_acquired(zk: &Zk, path: &str, record: &ContenderRecord) -> Result<(), LockError> {
    let data = serde_json::to_vec(record).expect("a ContenderRecord always serializes");
    loop {
        match zk.client().set_data(path, &data, None).await {
            Ok(_) => return Ok(()),
            Err(zookeeper_client::Error::ConnectionLoss) => continue,
            Err(zookeeper_client::Error::NoNode) => return Err(LockError::ContenderDeleted { path: path.to_string() }),
            Err(e) => return Err(LockError::zk(path, e)),
        }
    }
}

type Watch = Pin<Box<dyn Future<Output = WatchedEvent> + Send>>;

/// What arming a watch found.
enum Armed {
    /// The node is gone (or moved up): decide again.
    DecideAgain,
    Watching(Watch),
}

/// Waits until one of the nodes in `wait` goes (or, with `wake_on_data`, is marked acquired).
/// Returns `Ok` whenever the caller should look at the queue again.
async fn wait_for(zk: &Zk, dir: &str, wait: &WaitFor) -> Result<(), LockError> {
    let mut watches: Vec<(String, Watch)> = Vec::with_capacity(wait.nodes.len());
    for node in &wait.nodes {
        let path = format!("{dir}/{node}");
        match arm(zk, &path, wait.wake_on_data).await? {
            Armed::DecideAgain => return Ok(()),
            Armed::Watching(w) => watches.push((path, w)),
        }
    }
    if watches.is_empty() {
        return Ok(());
    }
    loop {
        let (i, event) = first_event(&mut watches).await;
        if event.event_type == EventType::NodeDataChanged && !wait.wake_on_data {
            // A predecessor marked itself acquired: it is still there, keep waiting on it.
            match arm(zk, &watches[i].0, false).await? {
                Armed::DecideAgain => return Ok(()),
                Armed::Watching(w) => watches[i].1 = w,
            }
            continue;
        }
        return Ok(());
    }
}

async fn arm(zk: &Zk, path: &str, wake_on_data: bool) -> Result<Armed, LockError> {
    use zookeeper_client::Error as E;
    if wake_on_data {
        match zk.client().get_and_watch_data(path).await {
            Ok((data, _, watcher)) => {
                let marked = serde_json::from_slice::<ContenderRecord>(&data).is_ok_and(|r| r.acquired_ms.is_some());
                Ok(if marked { Armed::DecideAgain } else { Armed::Watching(Box::pin(watcher.changed())) })
            }
            Err(E::NoNode | E::ConnectionLoss) => Ok(Armed::DecideAgain),
            Err(e) => Err(LockError::zk(path, e)),
        }
    } else {
        match zk.client().check_and_watch_stat(path).await {
            Ok((Some(_), watcher)) => Ok(Armed::Watching(Box::pin(watcher.changed()))),
            Ok((None, _)) | Err(E::ConnectionLoss) => Ok(Armed::DecideAgain),
            Err(e) => Err(LockError::zk(path, e)),
        }
    }
}

/// The first event among `watches`, with its index.
async fn first_event(watches: &mut [(String, Watch)]) -> (usize, WatchedEvent) {
    std::future::poll_fn(|cx| {
        for (i, (_, w)) in watches.iter_mut().enumerate() {
            if let Poll::Ready(event) = w.as_mut().poll(cx) {
                return Poll::Ready((i, event));
            }
        }
        Poll::Pending
    })
    .await
}

fn token_of(czxid: i64) -> u64 {
    // zxids are never negative; clamp rather than wrap if a server ever sent one.
    czxid.max(0) as u64
}

/// Between sending the create and knowing the node's name: dropped here (a cancelled
/// acquire), it deletes whatever node carries our token, in the background.
struct PendingCreate {
    zk: Option<Zk>,
    dir: String,
    token: String,
}

impl PendingCreate {
    fn created(mut self, path: String) -> NodeGuard {
        NodeGuard { zk: self.zk.take(), path }
    }
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        if let Some(zk) = self.zk.take() {
            let (dir, token) = (std::mem::take(&mut self.dir), std::mem::take(&mut self.token));
            spawn_cleanup(format!("{dir}/*-{token}-*"), async move {
                match find_by_token(&zk, &dir, &token).await? {
                    Some((name, _)) => delete_node(&zk, &format!("{dir}/{name}")).await,
                    None => Ok(()),
                }
            });
        }
    }
}

/// Owns a contender node until a guard takes it over: dropped, it deletes the node in the
/// background (a cancelled wait must not leave a node that blocks everyone behind it).
pub(crate) struct NodeGuard {
    zk: Option<Zk>,
    path: String,
}

impl NodeGuard {
    /// Hands the node over to the caller, who now deletes it.
    pub fn take(mut self) -> (Zk, String) {
        let zk = self.zk.take().expect("a NodeGuard is taken once");
        (zk, std::mem::take(&mut self.path))
    }

    /// Nothing to delete (the node is already gone).
    fn forget(mut self) {
        self.zk = None;
    }

    /// Deletes the node now, waiting at most `bound`; after that the delete carries on in
    /// the background.
    async fn delete(self, bound: Duration) -> Result<(), LockError> {
        let (zk, path) = self.take();
        delete_bounded(zk, path, bound).await
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(zk) = self.zk.take() {
            let path = std::mem::take(&mut self.path);
            spawn_cleanup(path.clone(), async move { delete_node(&zk, &path).await });
        }
    }
}

/// Deletes `path` within `bound`, else leaves the delete to a background task.
pub(crate) async fn delete_bounded(zk: Zk, path: String, bound: Duration) -> Result<(), LockError> {
    match tokio::time::timeout(bound, delete_node(&zk, &path)).await {
        // Gone with the session is gone.
        Ok(Ok(())) | Ok(Err(LockError::SessionLost)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let err = LockError::ReleaseTimedOut { path: path.clone(), after: bound };
            spawn_cleanup(path.clone(), async move { delete_node(&zk, &path).await });
            Err(err)
        }
    }
}

/// Deletes a node; gone already (or gone with the session) is fine.
pub(crate) async fn delete_node(zk: &Zk, path: &str) -> Result<(), LockError> {
    let mut retries = 0;
    loop {
        match zk.client().delete(path, None).await {
            Ok(()) | Err(zookeeper_client::Error::NoNode) => return Ok(()),
            Err(zookeeper_client::Error::ConnectionLoss) if retries < CLEANUP_RETRIES => retries += 1,
            Err(e) => return Err(LockError::zk(path, e)),
        }
    }
}

/// Runs a cleanup in the background; outside a tokio runtime the node stays until the
/// session ends.
pub(crate) fn spawn_cleanup<F>(what: String, cleanup: F)
where
    F: Future<Output = Result<(), LockError>> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                match cleanup.await {
                    Ok(()) => tracing::debug!(node = %what, "cleaned up"),
                    Err(LockError::SessionLost) => tracing::debug!(node = %what, "gone with the session"),
                    Err(e) => {
                        tracing::warn!(node = %what, error = %e, "cleanup failed; the node goes when the session ends")
                    }
                }
            });
        }
        Err(_) => tracing::warn!(node = %what, "no tokio runtime to clean up; the node goes when the session ends"),
    }
}
