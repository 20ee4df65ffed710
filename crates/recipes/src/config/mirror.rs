//! [`ConfigMirror`]: keeps Redis equal to the configuration in ZooKeeper, for applications in
//! any language (`HGET zedis:config:<ns> <key>`, `SUBSCRIBE zedis:config:<ns>`). Meant to be
//! run by the controller leader; see [`mirror_plan`](super::mirror_plan) for the Redis layout.
//!
//! How: one persistent recursive watch on `<root>/config` marks keys (and namespaces) dirty;
//! each dirty key is re-read from ZooKeeper and written through the version-checked
//! [script](super::mirror_script), which refuses anything older than what Redis holds — so
//! Redis never goes backwards, even with two mirrors running or one lagging. A full resync
//! (every namespace, both sides compared by the pure [`plan_namespace`]) runs:
//! - at start, after every ZooKeeper reconnect and in every new session (events during a
//!   disconnection may be lost, ZOOKEEPER-4698);
//! - after a Redis error (the server may have come back empty);
//! - when the target's topology epoch changes (a failover: the promoted replica may lack the
//!   last writes);
//! - every `resync_interval` (catches a `FLUSHALL` or a hand edit).
//!
//! Between resyncs a cheap probe (`HLEN` of each namespace's meta hash every
//! `probe_interval`) notices a namespace that lost keys (a restarted, non-persistent server)
//! within about a second.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client::{AddWatchMode, Client, EventType, WatchedEvent};

use super::client::ConfigClient;
use super::error::ConfigError;
use super::mirror_plan::{meta_key, meta_key_pattern, namespace_of_meta_key, plan_namespace, values_key, MirrorWrite};
use super::mirror_script::{apply_writes, WriteOutcome};
use super::mirror_target::{MirrorTarget, TargetError};
use super::paths::{check_namespace, ConfigPaths, PathKind};
use super::record::{now_ms, ConfigRecord};
use super::session::{Backoff, Keeper, Session};
use super::store::{list_namespaces, read_key, read_namespace};
use crate::zk_watch::{rewatch, session_turn, take_ready, SessionTurn};

/// How a [`ConfigMirror`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorOptions {
    /// Period of the full comparison of every namespace.
    pub resync_interval: Duration,
    /// Period of the cheap check that Redis still has every namespace's entries.
    pub probe_interval: Duration,
}

impl Default for MirrorOptions {
    fn default() -> MirrorOptions {
        MirrorOptions { resync_interval: Duration::from_secs(30), probe_interval: Duration::from_secs(1) }
    }
}

/// What the mirror has done; export it as metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Redis matches ZooKeeper as of the last event seen (nothing pending, no error).
    pub in_sync: bool,
    /// Keys and namespaces waiting to be written.
    pub pending: usize,
    /// Writes that changed Redis (and were announced).
    pub applied: u64,
    /// Writes Redis refused because it holds a newer version.
    pub refused: u64,
    /// Completed full resyncs (the first one means the mirror is up).
    pub full_resyncs: u64,
    /// Namespaces and keys (deleted ones included) in Redis, as far as the mirror knows.
    pub namespaces: usize,
    pub keys: usize,
    /// Of the last change applied: from its commit in ZooKeeper (the znode's mtime, by the
    /// ZooKeeper server's clock) to its write in Redis; for changes found by a resync, from
    /// the moment the resync started.
    pub last_lag: Option<Duration>,
    /// When the last change was applied (ms since the Unix epoch).
    pub last_applied_ms: Option<u64>,
    /// The last error, until the next successful pass.
    pub last_error: Option<String>,
}

/// Mirrors every namespace into Redis through a [`MirrorTarget`]; see the module docs.
pub struct ConfigMirror<T> {
    keeper: Keeper,
    paths: ConfigPaths,
    target: T,
    options: MirrorOptions,
    stats: watch::Sender<MirrorStats>,
    backoff: Backoff,
    /// What Redis holds, as far as the mirror knows: namespace → key → version.
    known: BTreeMap<String, BTreeMap<String, u64>>,
    /// The target's epoch when the last full resync started.
    epoch: Option<u64>,
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// Why the mirror must do more work.
#[derive(Debug, Default)]
struct Pending {
    full: bool,
    namespaces: BTreeSet<String>,
    /// Dirty keys and when the change was noticed.
    keys: BTreeMap<(String, String), Instant>,
}

impl Pending {
    fn len(&self) -> usize {
        self.namespaces.len() + self.keys.len()
    }

    fn is_empty(&self) -> bool {
        !self.full && self.namespaces.is_empty() && self.keys.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Zk(#[from] ConfigError),
    #[error("Redis: {0}")]
    Target(#[from] TargetError),
}

impl<T: MirrorTarget> ConfigMirror<T> {
    /// A mirror that follows `client`'s ZooKeeper session (and its replacements) and writes
    /// through `target`. It runs when [`ConfigMirror::run`] is awaited.
    pub fn new(client: &ConfigClient, target: T, options: MirrorOptions) -> ConfigMirror<T> {
        let (stats, _) = watch::channel(MirrorStats::default());
        ConfigMirror {
            keeper: client.inner.keeper.clone(),
            paths: client.inner.paths.clone(),
            target,
            options,
            stats,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            known: BTreeMap::new(),
            epoch: None,
        }
    }

    /// A receiver of the mirror's stats (e.g. to say "ready" after the first full resync).
    pub fn stats(&self) -> watch::Receiver<MirrorStats> {
        self.stats.subscribe()
    }

    /// Mirrors until the future is dropped. Errors (ZooKeeper or Redis unreachable...) are
    /// logged, shown in [`MirrorStats::last_error`] and retried with backoff; it never
    /// returns on its own.
    ///
    /// # Cancellation safety
    /// Drop it to stop. Every write is an atomic script, so Redis never holds half a change;
    /// the next run's full resync picks up whatever was not mirrored yet.
    pub async fn run(mut self) {
        let mut sessions = self.keeper.subscribe();
        loop {
            let session = sessions.borrow_and_update().clone();
            if let Some(session) = session {
                tokio::select! {
                    () = self.follow(&session) => {}
                    changed = sessions.changed() => if changed.is_err() {
                        return;
                    } else {
                        continue;
                    },
                }
            }
            // No session, or it ended: wait for the keeper's next one.
            self.stats.send_modify(|s| s.in_sync = false);
            if sessions.changed().await.is_err() {
                return;
            }
        }
    }

    /// Mirrors in one session; returns when that session is gone.
    async fn follow(&mut self, session: &Session) {
        let client = session.zk.client();
        let base = self.paths.base().to_string();
        // Watch first, then read: a change after a read is always seen.
        let mut watcher = loop {
            if client.state().is_terminated() {
                return;
            }
            match client.watch(&base, AddWatchMode::PersistentRecursive).await {
                Ok(watcher) => break watcher,
                Err(error) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(path = %base, %error, retry_in = ?delay, "cannot watch the config");
                    self.failed(&error.to_string());
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let mut pending = Pending { full: true, ..Pending::default() };
        let mut retry_at: Option<Instant> = None;
        // Set after a reconnect: the persistent watch must be added again (see `rewatch`).
        let mut rearm = false;
        let mut next_full = Instant::now() + self.options.resync_interval;
        let mut probe = tokio::time::interval(self.options.probe_interval);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if rearm && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                match rewatch(client, &base, &mut watcher).await {
                    Ok(()) => rearm = false,
                    Err(_) if client.state().is_terminated() => return,
                    Err(error) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(path = %base, %error, retry_in = ?delay, "cannot watch the config again");
                        self.failed(&error.to_string());
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            if !rearm && !pending.is_empty() && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                let full = pending.full;
                match self.sync(client, &mut pending).await {
                    Ok(()) => {
                        self.backoff.reset();
                        if full {
                            next_full = Instant::now() + self.options.resync_interval;
                        }
                        self.stats.send_modify(|s| {
                            s.in_sync = true;
                            s.pending = 0;
                            s.last_error = None;
                        });
                    }
                    Err(SyncError::Zk(error)) if error.is_session_lost() => return,
                    Err(error) => {
                        // Redis may have come back empty after the error: compare everything.
                        if matches!(error, SyncError::Target(_)) {
                            pending.full = true;
                        }
                        let delay = self.backoff.next_delay();
                        tracing::warn!(%error, retry_in = ?delay, "cannot mirror the config");
                        self.failed(&error.to_string());
                        let waiting = pending.len();
                        self.stats.send_modify(|s| s.pending = waiting);
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            tokio::select! {
                event = watcher.changed() => {
                    if !take_ready(&mut watcher, event, |e| self.note(e, &mut pending, &mut rearm)).await {
                        return;
                    }
                    let waiting = pending.len();
                    self.stats.send_modify(|s| {
                        s.pending = waiting;
                        s.in_sync = false;
                    });
                }
                _ = probe.tick(), if !pending.full && retry_at.is_none() => self.probe(&mut pending).await,
                _ = tokio::time::sleep_until(next_full) => {
                    pending.full = true;
                    next_full = Instant::now() + self.options.resync_interval;
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
            }
        }
    }

    /// Records what a watch event makes dirty; `false` when the session is gone (the watcher
    /// must not be polled again).
    fn note(&self, event: WatchedEvent, pending: &mut Pending, rearm: &mut bool) -> bool {
        match event.event_type {
            EventType::Session => match session_turn(event.session_state) {
                SessionTurn::Suspended => {
                    self.stats.send_modify(|s| s.in_sync = false);
                    true
                }
                SessionTurn::Resumed => {
                    pending.full = true;
                    *rearm = true;
                    true
                }
                SessionTurn::Ended => false,
            },
            _ => {
                match self.paths.classify(&event.path) {
                    Some(PathKind::Key(namespace, key)) => {
                        pending.keys.entry((namespace.to_string(), key.to_string())).or_insert_with(Instant::now);
                    }
                    Some(PathKind::Namespace(namespace)) => {
                        pending.namespaces.insert(namespace.to_string());
                    }
                    Some(PathKind::Config) => pending.full = true,
                    // Canaries are not mirrored; history is not either.
                    Some(PathKind::Canary(..) | PathKind::History(..)) | None => {}
                }
                true
            }
        }
    }

    /// Notices a failover (epoch change) or a namespace that lost entries (a restarted Redis).
    async fn probe(&mut self, pending: &mut Pending) {
        let epoch = self.target.epoch();
        if epoch != self.epoch {
            tracing::info!(from = ?self.epoch, to = ?epoch, "topology epoch changed: comparing everything");
            pending.full = true;
            return;
        }
        for (namespace, keys) in &self.known {
            let reply = self.target.query(vec![b"HLEN".to_vec(), meta_key(namespace).into_bytes()]).await;
            match reply {
                Ok(redis::Value::Int(n)) if usize::try_from(n).ok() == Some(keys.len()) => {}
                Ok(reply) => {
                    tracing::info!(namespace, expected = keys.len(), ?reply, "Redis lost config entries: repairing");
                    pending.namespaces.insert(namespace.clone());
                }
                Err(error) => {
                    tracing::debug!(%error, "probe failed: comparing everything once Redis answers");
                    pending.full = true;
                    return;
                }
            }
        }
    }

    /// Brings Redis up to date with what is pending; stops at the first error (what is left
    /// stays pending).
    async fn sync(&mut self, client: &Client, pending: &mut Pending) -> Result<(), SyncError> {
        if pending.full {
            let started = Instant::now();
            // Taken before reading, so that a failover during the resync triggers another.
            self.epoch = self.target.epoch();
            let mut namespaces: BTreeSet<String> = list_namespaces(client, &self.paths).await?.into_iter().collect();
            namespaces.extend(self.redis_namespaces().await?);
            for namespace in &namespaces {
                self.reconcile(client, namespace, started).await?;
            }
            self.known.retain(|ns, _| namespaces.contains(ns));
            pending.full = false;
            pending.namespaces.clear();
            pending.keys.clear();
            self.stats.send_modify(|s| s.full_resyncs += 1);
            tracing::debug!(namespaces = namespaces.len(), took = ?started.elapsed(), "config mirror: full resync done");
        }
        while let Some(namespace) = pending.namespaces.first().cloned() {
            self.reconcile(client, &namespace, Instant::now()).await?;
            pending.namespaces.remove(&namespace);
            pending.keys.retain(|(ns, _), _| *ns != namespace);
        }
        while let Some(((namespace, key), noticed)) = pending.keys.first_key_value().map(|(k, v)| (k.clone(), *v)) {
            self.write_key(client, &namespace, &key, noticed).await?;
            pending.keys.remove(&(namespace, key));
        }
        self.update_counts();
        Ok(())
    }

    /// Mirrors one key after a change in ZooKeeper.
    async fn write_key(
        &mut self,
        client: &Client,
        namespace: &str,
        key: &str,
        noticed: Instant,
    ) -> Result<(), SyncError> {
        let state = read_key(client, &self.paths, namespace, key).await?;
        let (write, mtime) = match &state.released {
            Some(s) => (MirrorWrite::Record { key: key.to_string(), record: s.record.clone() }, Some(s.stat.mtime)),
            None => (MirrorWrite::Purge { key: key.to_string() }, None),
        };
        let outcomes = apply_writes(&self.target, namespace, std::slice::from_ref(&write)).await?;
        let lag = match mtime {
            Some(mtime) => Duration::from_millis(now_ms().saturating_sub(u64::try_from(mtime).unwrap_or(0))),
            None => noticed.elapsed(),
        };
        self.account(namespace, std::slice::from_ref(&write), &outcomes, lag);
        Ok(())
    }

    /// Makes one namespace's hashes match ZooKeeper.
    async fn reconcile(&mut self, client: &Client, namespace: &str, started: Instant) -> Result<(), SyncError> {
        let read = read_namespace(client, &self.paths, namespace).await?;
        let zk: BTreeMap<String, ConfigRecord> =
            read.keys.iter().filter_map(|(k, s)| s.released.as_ref().map(|r| (k.clone(), r.record.clone()))).collect();
        let meta = self.hgetall(&meta_key(namespace)).await?;
        let values = self.hgetall(&values_key(namespace)).await?;
        let plan = plan_namespace(&zk, &meta, &values, &read.unreadable);
        for (key, redis, zookeeper) in &plan.ahead {
            tracing::warn!(
                namespace,
                key,
                redis,
                zookeeper,
                "Redis holds a newer version than ZooKeeper; leaving it (the mirror never goes backwards). \
                 Delete the field from both hashes to mirror ZooKeeper's again"
            );
        }
        // What Redis holds once the plan is applied.
        let mut now: BTreeMap<String, u64> = meta
            .iter()
            .filter_map(|(k, m)| super::mirror_plan::MetaRecord::parse(m).map(|m| (k.clone(), m.version)))
            .collect();
        now.retain(|k, _| zk.contains_key(k) || read.unreadable.contains(k));
        self.known.insert(namespace.to_string(), now);
        if !plan.writes.is_empty() {
            let outcomes = apply_writes(&self.target, namespace, &plan.writes).await?;
            self.account(namespace, &plan.writes, &outcomes, started.elapsed());
            tracing::info!(namespace, writes = plan.writes.len(), "config mirror: namespace repaired");
        }
        if self.known.get(namespace).is_some_and(|k| k.is_empty()) {
            self.known.remove(namespace);
        }
        Ok(())
    }

    /// Takes in the script's outcomes: what Redis holds now, and the stats.
    fn account(&mut self, namespace: &str, writes: &[MirrorWrite], outcomes: &[WriteOutcome], lag: Duration) {
        let known = self.known.entry(namespace.to_string()).or_default();
        let (mut applied, mut refused) = (0, 0);
        for (write, outcome) in writes.iter().zip(outcomes) {
            match (write, outcome) {
                (MirrorWrite::Purge { key }, _) => {
                    known.remove(key);
                }
                (MirrorWrite::Record { key, record }, WriteOutcome::Applied | WriteOutcome::Unchanged) => {
                    known.insert(key.clone(), record.version);
                }
                (MirrorWrite::Record { key, record }, WriteOutcome::Refused { stored }) => {
                    tracing::warn!(
                        namespace,
                        key,
                        version = record.version,
                        stored,
                        "Redis refused an older config version"
                    );
                    known.insert(key.clone(), *stored);
                    refused += 1;
                }
            }
            if *outcome == WriteOutcome::Applied {
                applied += 1;
                tracing::debug!(namespace, key = write.key(), ?lag, "config mirrored");
            }
        }
        if known.is_empty() {
            self.known.remove(namespace);
        }
        self.stats.send_modify(|s| {
            s.applied += applied;
            s.refused += refused;
            if applied > 0 {
                s.last_lag = Some(lag);
                s.last_applied_ms = Some(now_ms());
            }
        });
    }

    fn update_counts(&self) {
        let namespaces = self.known.len();
        let keys = self.known.values().map(BTreeMap::len).sum();
        self.stats.send_modify(|s| {
            s.namespaces = namespaces;
            s.keys = keys;
        });
    }

    /// A hash as a map; a key of another type is replaced (logged) and read as empty.
    async fn hgetall(&self, key: &str) -> Result<BTreeMap<String, String>, TargetError> {
        match self.target.query(vec![b"HGETALL".to_vec(), key.as_bytes().to_vec()]).await {
            Ok(reply) => Ok(pairs(&reply)),
            Err(e) if e.is_code("WRONGTYPE") => {
                tracing::warn!(key, "replacing a Redis key of another type");
                self.target.query(vec![b"DEL".to_vec(), key.as_bytes().to_vec()]).await?;
                Ok(BTreeMap::new())
            }
            Err(e) => Err(e),
        }
    }

    /// The namespaces that have a meta hash in Redis.
    async fn redis_namespaces(&self) -> Result<Vec<String>, TargetError> {
        let pattern = meta_key_pattern();
        let mut cursor = b"0".to_vec();
        let mut out = Vec::new();
        loop {
            let reply = self
                .target
                .query(vec![
                    b"SCAN".to_vec(),
                    cursor.clone(),
                    b"MATCH".to_vec(),
                    pattern.as_bytes().to_vec(),
                    b"COUNT".to_vec(),
                    SCAN_COUNT.to_string().into_bytes(),
                ])
                .await?;
            let redis::Value::Array(parts) = reply else {
                return Err(TargetError::Reply(format!("unexpected SCAN reply {reply:?}")));
            };
            let (Some(next), Some(redis::Value::Array(keys))) = (parts.first().and_then(bytes), parts.get(1)) else {
                return Err(TargetError::Reply("unexpected SCAN reply".to_string()));
            };
            for key in keys.iter().filter_map(bytes) {
                let key = String::from_utf8_lossy(&key).into_owned();
                if let Some(ns) = namespace_of_meta_key(&key).filter(|ns| check_namespace(ns).is_ok()) {
                    out.push(ns.to_string());
                }
            }
            if next == b"0" {
                return Ok(out);
            }
            cursor = next;
        }
    }

    fn failed(&self, error: &str) {
        self.stats.send_modify(|s| {
            s.in_sync = false;
            s.last_error = Some(error.to_string());
        });
    }
}

/// A RESP2 flat array or a RESP3 map of strings, as a map.
fn pairs(reply: &redis::Value) -> BTreeMap<String, String> {
    let text = |v: &redis::Value| bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned());
    match reply {
        redis::Value::Array(items) => items
            .chunks(2)
            .filter_map(|p| match p {
                [k, v] => Some((text(k)?, text(v)?)),
                _ => None,
            })
            .collect(),
        redis::Value::Map(items) => items.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
        _ => BTreeMap::new(),
    }
}

fn bytes(v: &redis::Value) -> Option<Vec<u8>> {
    match v {
        redis::Value::BulkString(b) => Some(b.clone()),
        redis::Value::SimpleString(s) => Some(s.clone().into_bytes()),
        redis::Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn pairs_of_both_protocols() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"b".to_vec()),
            Value::BulkString(b"2".to_vec()),
        ]);
        let resp3 = Value::Map(vec![
            (Value::BulkString(b"a".to_vec()), Value::BulkString(b"1".to_vec())),
            (Value::BulkString(b"b".to_vec()), Value::BulkString(b"2".to_vec())),
        ]);
        let want: BTreeMap<String, String> = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert_eq!(pairs(&resp2), want);
        assert_eq!(pairs(&resp3), want);
        assert!(pairs(&Value::Nil).is_empty());
    }
}
