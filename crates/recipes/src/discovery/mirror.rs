//! The Redis mirror of service discovery, for clients in any language.
//!
//! For every service under `<root>/services`, the Redis hash `zedis:services:<service>` holds
//! one field per live instance (field = instance id, value = the instance's JSON record,
//! byte for byte as in ZooKeeper), and every change is announced on the pub/sub channel of
//! the same name (see [`MirrorPlan::notification`]). The mirror keeps the hash *equal* to
//! ZooKeeper: instances that vanish are deleted, a service without instances has no hash.
//!
//! How: one persistent recursive watch on `<root>/services` (added again after every
//! reconnect, see `zk_watch::rewatch`) marks services dirty; each dirty service is read from
//! ZooKeeper and from Redis (`HGETALL`), the pure [`MirrorPlan::diff`] decides, and one
//! `MULTI` applies `HDEL`/`HSET` and `PUBLISH`es the change, so a subscriber that re-reads the
//! hash on a notification sees at least that change. A full resync of every service (both
//! sides, so hashes of services gone from ZooKeeper are deleted too) runs at start, after
//! every ZooKeeper reconnect or new session (events may have been missed), after a Redis error
//! (the server may have restarted empty), and every `resync_interval` (catches a `FLUSHALL`
//! or a hand edit, which Redis does not tell us of).
//!
//! Two mirrors may run at once (e.g. in two controllers): both converge on ZooKeeper's state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client::{AddWatchMode, Client, EventType, WatchedEvent};

use super::error::{DiscoveryError, Result};
use super::keeper::SessionKeeper;
use super::mirror_plan::{service_key, service_of_key, MirrorPlan, SERVICES_KEY_PREFIX};
use super::paths::{check_service, PathKind, ServicePaths};
use super::reader::{list_services, read_service};
use crate::backoff::Backoff;
use crate::zk_watch::{rewatch, session_turn, take_ready, SessionTurn};

/// How a [`ServiceMirror`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorOptions {
    /// Period of the full resync that repairs changes made to Redis behind the mirror's back.
    pub resync_interval: Duration,
}

impl Default for MirrorOptions {
    fn default() -> MirrorOptions {
        MirrorOptions { resync_interval: Duration::from_secs(30) }
    }
}

/// What the mirror has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorStatus {
    /// Redis equals ZooKeeper as of the last event seen (nothing dirty, no error pending).
    pub in_sync: bool,
    /// Completed full resyncs (the first one means the mirror is up).
    pub full_resyncs: u64,
    /// Changes written to Redis (one per service and pass that found a difference).
    pub changes: u64,
    /// The last error, until the next successful pass.
    pub last_error: Option<String>,
}

/// Mirrors every service into Redis; see the module docs. `C` is any `redis` crate connection:
/// a [`ConnectionManager`] to a Redis or a zedis proxy, or `zedis::Cluster` (in-process routing).
pub struct ServiceMirror<C = ConnectionManager> {
    keeper: SessionKeeper,
    paths: ServicePaths,
    redis: C,
    options: MirrorOptions,
    status: watch::Sender<MirrorStatus>,
    backoff: Backoff,
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// Why the mirror must do more work.
#[derive(Debug, Default)]
struct Pending {
    full: bool,
    dirty: BTreeSet<String>,
}

impl<C> ServiceMirror<C>
where
    C: redis::aio::ConnectionLike + Send,
{
    pub(crate) fn new(
        keeper: SessionKeeper,
        paths: ServicePaths,
        redis: C,
        options: MirrorOptions,
    ) -> ServiceMirror<C> {
        let (status, _) = watch::channel(MirrorStatus::default());
        ServiceMirror { keeper, paths, redis, options, status, backoff: Backoff::new(RETRY_MIN, RETRY_MAX) }
    }

    /// A receiver of the mirror's progress (e.g. to announce "ready" after the first resync).
    pub fn status(&self) -> watch::Receiver<MirrorStatus> {
        self.status.subscribe()
    }

    /// Mirrors until the future is dropped. Errors (ZooKeeper or Redis unreachable...) are
    /// logged, shown in [`MirrorStatus::last_error`] and retried with backoff; it never
    /// returns on its own.
    ///
    /// # Cancellation safety
    /// Drop it to stop. Each service is written in one `MULTI`, so Redis is never left with
    /// half a change; the next run's full resync picks up whatever was not mirrored yet.
    pub async fn run(mut self) {
        let mut keeper = self.keeper.subscribe();
        loop {
            let session = keeper.borrow_and_update().clone();
            tokio::select! {
                () = self.follow(session.zk.client()) => {
                    // The session ended: wait for the keeper's next one.
                    self.status.send_modify(|s| s.in_sync = false);
                    if keeper.changed().await.is_err() {
                        return;
                    }
                }
                changed = keeper.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }

    /// Mirrors in one session; returns when that session is gone.
    async fn follow(&mut self, client: &Client) {
        let dir = self.paths.services();
        // Watch first, then read: a change after a read is always seen.
        let mut watcher = loop {
            if client.state().is_terminated() {
                return;
            }
            match client.watch(&dir, AddWatchMode::PersistentRecursive).await {
                Ok(watcher) => break watcher,
                Err(error) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(path = %dir, %error, retry_in = ?delay, "cannot watch the services");
                    self.failed(&error.to_string());
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let mut pending = Pending { full: true, dirty: BTreeSet::new() };
        let mut retry_at: Option<Instant> = None;
        // Set after a reconnect: the persistent watch must be added again (see `rewatch`).
        let mut rearm = false;
        let mut next_full = Instant::now() + self.options.resync_interval;
        loop {
            if rearm && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                match rewatch(client, &dir, &mut watcher).await {
                    Ok(()) => rearm = false,
                    Err(_) if client.state().is_terminated() => return,
                    Err(error) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(path = %dir, %error, retry_in = ?delay, "cannot watch the services again");
                        self.failed(&error.to_string());
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            // Watch first, then read (as at the start).
            if !rearm && (pending.full || !pending.dirty.is_empty()) && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                let full = pending.full;
                match self.sync(client, &mut pending).await {
                    Ok(()) => {
                        self.backoff.reset();
                        if full {
                            next_full = Instant::now() + self.options.resync_interval;
                        }
                        self.status.send_modify(|s| {
                            s.in_sync = true;
                            s.last_error = None;
                        });
                    }
                    Err(error) if error.is_session_lost() => return,
                    Err(error) => {
                        // Redis may have come back empty after the error: check everything.
                        if matches!(error, DiscoveryError::Redis(_)) {
                            pending.full = true;
                        }
                        let delay = self.backoff.next_delay();
                        tracing::warn!(%error, retry_in = ?delay, "cannot mirror the services");
                        self.failed(&error.to_string());
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            tokio::select! {
                event = watcher.changed() => {
                    if !take_ready(&mut watcher, event, |e| self.note(e, &mut pending, &mut rearm)).await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(next_full) => {
                    pending.full = true;
                    next_full = Instant::now() + self.options.resync_interval;
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
            }
        }
    }

    /// Records what a watch event makes dirty; `false` when the session is gone (the
    /// watcher must not be polled again).
    fn note(&self, event: WatchedEvent, pending: &mut Pending, rearm: &mut bool) -> bool {
        match event.event_type {
            EventType::Session => match session_turn(event.session_state) {
                SessionTurn::Suspended => {
                    self.status.send_modify(|s| s.in_sync = false);
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
                    Some(PathKind::Instance(service, _) | PathKind::Service(service)) => {
                        pending.dirty.insert(service.to_string());
                    }
                    Some(PathKind::Services) => pending.full = true,
                    None => {}
                }
                self.status.send_if_modified(|s| std::mem::replace(&mut s.in_sync, false));
                true
            }
        }
    }

    /// Brings Redis up to date with what is pending; stops at the first error (what is left
    /// stays pending).
    async fn sync(&mut self, client: &Client, pending: &mut Pending) -> Result<()> {
        if pending.full {
            let mut services: BTreeSet<String> = list_services(client, &self.paths).await?.into_iter().collect();
            services.extend(self.redis_services().await?);
            for service in &services {
                self.reconcile(client, service).await?;
            }
            pending.full = false;
            pending.dirty.clear();
            self.status.send_modify(|s| s.full_resyncs += 1);
            tracing::debug!(services = services.len(), "full resync done");
        }
        while let Some(service) = pending.dirty.first().cloned() {
            self.reconcile(client, &service).await?;
            pending.dirty.remove(&service);
        }
        Ok(())
    }

    /// Makes one service's hash equal to ZooKeeper and announces the change.
    async fn reconcile(&mut self, client: &Client, service: &str) -> Result<()> {
        let zk: BTreeMap<String, String> =
            read_service(client, &self.paths, service).await?.into_iter().map(|(id, r)| (id, r.raw)).collect();
        let key = service_key(service);
        let (current, wrong_type) = match redis::cmd("HGETALL").arg(&key).query_async(&mut self.redis).await {
            Ok(current) => (current, false),
            // Someone stored something else under our key: replace it.
            Err(e) if e.code() == Some("WRONGTYPE") => (BTreeMap::new(), true),
            Err(e) => return Err(e.into()),
        };
        let plan = MirrorPlan::diff(&zk, &current);
        if plan.is_empty() && !wrong_type {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        if wrong_type {
            tracing::warn!(key, "replacing a key of another type");
            pipe.cmd("DEL").arg(&key).ignore();
        }
        if !plan.removed.is_empty() {
            pipe.cmd("HDEL").arg(&key).arg(&plan.removed).ignore();
        }
        if !plan.set.is_empty() {
            pipe.cmd("HSET").arg(&key).arg(&plan.set).ignore();
        }
        pipe.query_async::<()>(&mut self.redis).await?;
        // Outside the transaction: notifications are at-most-once anyway, and a zedis cluster
        // runs a transaction only on its keys' slot (a channel is not a key).
        redis::cmd("PUBLISH").arg(&key).arg(plan.notification(service)).query_async::<()>(&mut self.redis).await?;
        tracing::info!(
            service,
            added = ?plan.added,
            updated = ?plan.updated,
            removed = ?plan.removed,
            instances = plan.instances,
            "mirrored"
        );
        self.status.send_modify(|s| s.changes += 1);
        Ok(())
    }

    /// The services that have a hash in Redis.
    async fn redis_services(&mut self) -> Result<Vec<String>> {
        let pattern = format!("{SERVICES_KEY_PREFIX}*");
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut self.redis)
                .await?;
            out.extend(
                keys.iter().filter_map(|k| service_of_key(k)).filter(|s| check_service(s).is_ok()).map(str::to_string),
            );
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    fn failed(&self, error: &str) {
        self.status.send_modify(|s| {
            s.in_sync = false;
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
