//! [`ConfigWatch`]: the changes of one namespace, as a stream whose versions never go back.
//!
//! How: a persistent recursive ZooKeeper watch on `<root>/config/<namespace>` marks keys
//! dirty; each dirty key is re-read (record and canary in one read) and [`decide`] tells
//! whether it is news. The whole namespace is re-read at start, after every reconnect (events
//! during a disconnection may be lost, ZOOKEEPER-4698) and in every new session after an
//! expiry, so the final value of every key is always told, and a version already told (or an
//! older one, from a lagging server) is never told again.
//!
//! [`decide`]: super::emit::decide

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client::{AddWatchMode, EventType, WatchedEvent};

use super::canary::effective;
use super::client::Inner;
use super::emit::{decide, Emit, Observed, Seen};
use super::error::ConfigError;
use super::paths::PathKind;
use super::record::ConfigRecord;
use super::session::{Backoff, Session};
use super::store::read_key;
use super::value::Source;
use crate::zk_watch::{rewatch, session_turn, take_ready, SessionTurn};

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEvent {
    pub namespace: String,
    pub key: String,
    /// The new record; `record.deleted` when the key was deleted (then `record.version` is
    /// the deletion's version, or the last version seen if the node vanished).
    pub record: ConfigRecord,
    pub source: Source,
}

impl ConfigEvent {
    pub fn version(&self) -> u64 {
        self.record.version
    }

    pub fn is_deleted(&self) -> bool {
        self.record.deleted
    }
}

/// Where a watch stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchStatus {
    /// Whole-namespace reads done (from ZooKeeper or a snapshot); `>= 1` once the current
    /// state has been told.
    pub full_reads: u64,
    /// Following ZooKeeper now (not disconnected, not serving a snapshot).
    pub connected: bool,
    /// The last error, until the next successful read.
    pub last_error: Option<String>,
}

/// Events queued for a slow consumer before the watch stops reading ZooKeeper.
const EVENT_QUEUE: usize = 1024;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The changes of one namespace: first one event per live key (the current state), then one
/// per change. Per key, versions only go up: the same version is never told twice and an
/// older one never after a newer one. Intermediate versions may be skipped (a key changed
/// twice before it was re-read is told once, with its final value).
///
/// Dropping it stops the watch.
#[derive(Debug)]
pub struct ConfigWatch {
    events: mpsc::Receiver<ConfigEvent>,
    status: watch::Receiver<WatchStatus>,
    current: watch::Receiver<BTreeMap<String, ConfigRecord>>,
    task: JoinHandle<()>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigWatch {
    pub(crate) fn start(inner: Arc<Inner>, namespace: &str) -> ConfigWatch {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (status_tx, status) = watch::channel(WatchStatus::default());
        let (current_tx, current) = watch::channel(BTreeMap::new());
        let follower = Follower {
            inner,
            namespace: namespace.to_string(),
            events: events_tx,
            status: status_tx,
            current: current_tx,
            seen: BTreeMap::new(),
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
        };
        let task = tokio::spawn(follower.run());
        ConfigWatch { events, status, current, task }
    }

    /// The next change; `None` only if the watch stopped (it does not on its own).
    ///
    /// # Cancellation safety
    /// Safe: an event is either returned or stays queued for the next call.
    pub async fn next(&mut self) -> Option<ConfigEvent> {
        self.events.recv().await
    }

    /// Waits until the current state of the namespace has been read once (from ZooKeeper or,
    /// if it is unreachable, from the snapshot); the events that describe it are queued by
    /// then.
    ///
    /// # Cancellation safety
    /// Safe.
    pub async fn ready(&mut self) {
        let _ = self.status.wait_for(|s| s.full_reads > 0).await;
    }

    pub fn status(&self) -> WatchStatus {
        self.status.borrow().clone()
    }

    /// A receiver of the watch's status changes (e.g. to show "disconnected").
    pub fn subscribe_status(&self) -> watch::Receiver<WatchStatus> {
        self.status.clone()
    }

    /// Every live key as last told (the state after the newest event sent, which may be
    /// ahead of what [`ConfigWatch::next`] has returned so far).
    pub fn current(&self) -> BTreeMap<String, ConfigRecord> {
        self.current.borrow().clone()
    }
}

/// The watch task.
struct Follower {
    inner: Arc<Inner>,
    namespace: String,
    events: mpsc::Sender<ConfigEvent>,
    status: watch::Sender<WatchStatus>,
    current: watch::Sender<BTreeMap<String, ConfigRecord>>,
    /// What the consumer was told, per key.
    seen: BTreeMap<String, Seen>,
    backoff: Backoff,
}

/// The consumer dropped the watch.
struct Gone;

impl Follower {
    async fn run(mut self) {
        let mut sessions = self.inner.keeper.subscribe();
        loop {
            let session = sessions.borrow_and_update().clone();
            match session {
                Some(session) => {
                    tokio::select! {
                        result = self.follow(&session) => if result.is_err() {
                            return;
                        },
                        // A new session (or none): follow that instead.
                        changed = sessions.changed() => if changed.is_err() {
                            return;
                        } else {
                            continue;
                        },
                    }
                    // The session ended: wait for the keeper to replace it.
                    self.status.send_modify(|s| s.connected = false);
                }
                None => {
                    // ZooKeeper unreachable at start (or between sessions): tell the snapshot,
                    // if nothing was told yet.
                    if self.status.borrow().full_reads == 0 && self.tell_snapshot().await.is_err() {
                        return;
                    }
                    self.status.send_modify(|s| s.connected = false);
                }
            }
            tokio::select! {
                changed = sessions.changed() => if changed.is_err() {
                    return;
                },
                _ = self.events.closed() => return,
            }
        }
    }

    /// Tells what the local snapshot holds (ZooKeeper unreachable).
    async fn tell_snapshot(&mut self) -> Result<(), Gone> {
        if !self.inner.snapshots_enabled() {
            return Ok(());
        }
        if let Err(error) = self.inner.fall_back(&self.namespace, &ConfigError::Offline) {
            tracing::warn!(namespace = %self.namespace, %error, "no snapshot to watch from");
            self.status.send_modify(|s| s.last_error = Some(error.to_string()));
            return Ok(());
        }
        let (entries, source) = self.inner.with_view(&self.namespace, |v| (v.entries.clone(), v.source));
        for (key, record) in entries {
            self.tell(&key, Some(&record), source).await?;
        }
        self.status.send_modify(|s| s.full_reads += 1);
        Ok(())
    }

    /// Follows the namespace in one session; returns when the session is gone.
    async fn follow(&mut self, session: &Session) -> Result<(), Gone> {
        let client = session.zk.client();
        let dir = self.inner.paths.namespace(&self.namespace);
        // Watch first, then read: a change after the read is always seen.
        let mut watcher = loop {
            if client.state().is_terminated() {
                return Ok(());
            }
            match client.watch(&dir, AddWatchMode::PersistentRecursive).await {
                Ok(watcher) => break watcher,
                Err(error) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(path = %dir, %error, retry_in = ?delay, "cannot watch the namespace");
                    self.failed(&error.to_string());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.events.closed() => return Err(Gone),
                    }
                }
            }
        };
        let mut full = true;
        let mut rearm = false;
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut retry_at: Option<Instant> = None;
        loop {
            if rearm && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                match rewatch(client, &dir, &mut watcher).await {
                    Ok(()) => rearm = false,
                    Err(_) if client.state().is_terminated() => return Ok(()),
                    Err(error) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(path = %dir, %error, retry_in = ?delay, "cannot watch the namespace again");
                        self.failed(&error.to_string());
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            if !rearm && (full || !dirty.is_empty()) && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                match self.catch_up(session, &mut full, &mut dirty).await {
                    Ok(Ok(())) => self.backoff.reset(),
                    Ok(Err(error)) if error.is_session_lost() => return Ok(()),
                    Ok(Err(error)) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(namespace = %self.namespace, %error, retry_in = ?delay, "cannot read the namespace");
                        self.failed(&error.to_string());
                        retry_at = Some(Instant::now() + delay);
                    }
                    Err(Gone) => return Err(Gone),
                }
            }
            tokio::select! {
                event = watcher.changed() => {
                    if !take_ready(&mut watcher, event, |e| self.note(e, &mut full, &mut rearm, &mut dirty)).await {
                        return Ok(());
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
                _ = self.events.closed() => return Err(Gone),
            }
        }
    }

    /// Records what a ZooKeeper event makes dirty; `false` when the session is gone (the
    /// watcher must not be polled again).
    fn note(&self, event: WatchedEvent, full: &mut bool, rearm: &mut bool, dirty: &mut BTreeSet<String>) -> bool {
        match event.event_type {
            EventType::Session => match session_turn(event.session_state) {
                SessionTurn::Suspended => {
                    self.status.send_modify(|s| s.connected = false);
                    true
                }
                SessionTurn::Resumed => {
                    *full = true;
                    *rearm = true;
                    true
                }
                SessionTurn::Ended => false,
            },
            _ => {
                match self.inner.paths.classify(&event.path) {
                    Some(PathKind::Key(ns, key) | PathKind::Canary(ns, key)) if ns == self.namespace => {
                        dirty.insert(key.to_string());
                    }
                    Some(PathKind::Namespace(ns)) if ns == self.namespace => *full = true,
                    _ => {}
                }
                true
            }
        }
    }

    /// Re-reads what is pending and tells what is new. The outer error means the consumer is
    /// gone; the inner one is ZooKeeper's (what is left stays pending).
    async fn catch_up(
        &mut self,
        session: &Session,
        full: &mut bool,
        dirty: &mut BTreeSet<String>,
    ) -> Result<Result<(), ConfigError>, Gone> {
        if *full {
            let read = match super::store::read_namespace(session.zk.client(), &self.inner.paths, &self.namespace).await
            {
                Ok(read) => read,
                Err(e) => return Ok(Err(e)),
            };
            let mut keys: BTreeSet<String> = self.seen.keys().cloned().collect();
            keys.extend(read.keys.keys().cloned());
            for key in keys {
                if read.unreadable.contains(&key) {
                    continue;
                }
                let state = read.keys.get(&key);
                let seen = state.and_then(|s| {
                    effective(
                        s.released.as_ref().map(|x| &x.record),
                        s.canary.as_ref().map(|x| &x.record),
                        &self.inner.options.labels,
                    )
                });
                self.tell(&key, seen, Source::ZooKeeper).await?;
            }
            *full = false;
            dirty.clear();
            self.merge_view(&read);
            self.inner.persist(&self.namespace).await;
            self.status.send_modify(|s| {
                s.full_reads += 1;
                s.connected = true;
                s.last_error = None;
            });
        }
        while let Some(key) = dirty.first().cloned() {
            let state = match read_key(session.zk.client(), &self.inner.paths, &self.namespace, &key).await {
                Ok(state) => state,
                Err(e) => return Ok(Err(e)),
            };
            let seen = effective(
                state.released.as_ref().map(|x| &x.record),
                state.canary.as_ref().map(|x| &x.record),
                &self.inner.options.labels,
            );
            self.tell(&key, seen, Source::ZooKeeper).await?;
            self.inner.with_view(&self.namespace, |v| v.observe(&key, seen));
            dirty.remove(&key);
        }
        self.inner.persist(&self.namespace).await;
        self.status.send_modify(|s| {
            s.connected = true;
            s.last_error = None;
        });
        Ok(Ok(()))
    }

    /// Brings the client's shared view up to a whole-namespace read.
    fn merge_view(&self, read: &super::store::NamespaceRead) {
        self.inner.with_view(&self.namespace, |view| view.take_whole_read(read, &self.inner.options.labels));
    }

    /// Tells the consumer about `key` if [`decide`] says it is news.
    async fn tell(&mut self, key: &str, observed: Option<&ConfigRecord>, source: Source) -> Result<(), Gone> {
        let what = match observed {
            Some(r) => Observed::Record { version: r.version, deleted: r.deleted },
            None => Observed::Missing,
        };
        let last = self.seen.get(key).copied();
        let (emit, after) = decide(last, what);
        if let Some(after) = after {
            self.seen.insert(key.to_string(), after);
        }
        let record = match (emit, observed) {
            (Emit::Updated | Emit::Deleted, Some(r)) => r.clone(),
            (Emit::Deleted, None) => {
                // The node vanished: a deletion at the last version told.
                let mut r = self.current.borrow().get(key).cloned().unwrap_or_else(|| ConfigRecord {
                    value: String::new(),
                    format: Default::default(),
                    version: last.map_or(0, |l| l.version),
                    time_ms: super::record::now_ms(),
                    author: String::new(),
                    comment: String::new(),
                    deleted: true,
                    canary: None,
                });
                r.deleted = true;
                r.value.clear();
                r
            }
            _ => return Ok(()),
        };
        self.current.send_modify(|c| {
            if record.deleted {
                c.remove(key);
            } else {
                c.insert(key.to_string(), record.clone());
            }
        });
        tracing::debug!(namespace = %self.namespace, key, version = record.version, deleted = record.deleted, "config change");
        let event = ConfigEvent { namespace: self.namespace.clone(), key: key.to_string(), record, source };
        self.events.send(event).await.map_err(|_| Gone)
    }

    fn failed(&self, error: &str) {
        self.status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(error.to_string());
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
