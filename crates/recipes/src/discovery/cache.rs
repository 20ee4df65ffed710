//! The live instances of one service, kept in memory from a ZooKeeper watch.
//!
//! One persistent recursive watch on `<root>/services/<service>` reports every instance
//! created, changed or deleted; each event re-reads just that instance. After a reconnect the
//! watch is added again (the client forgets to, see `zk_watch::rewatch`) and the whole
//! service is read again, because events that happen while disconnected can be lost
//! (ZOOKEEPER-4698); after a session expiry, the watch is set again in the keeper's new
//! session and the service read again. While ZooKeeper is unreachable the cache keeps serving
//! the last instances it saw (with `connected: false`): a client had better call an instance
//! that was alive a moment ago than none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client::{AddWatchMode, Client, EventType};

use super::error::Result;
use super::instance::ServiceInstance;
use super::keeper::{Session, SessionKeeper};
use super::paths::{check_service, PathKind, ServicePaths};
use super::picker::Picker;
use super::reader::{read_instance, read_service};
use crate::backoff::Backoff;
use crate::zk_watch::{rewatch, session_turn, SessionTurn};

/// What a [`ServiceCache`] knows at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub service: String,
    /// Live instances (enabled or not), ordered by id.
    pub instances: Arc<Vec<ServiceInstance>>,
    /// The service has been read at least once.
    pub ready: bool,
    /// The session is connected (otherwise `instances` may be stale).
    pub connected: bool,
}

/// Follows one service's instances. Dropping it stops the watch.
#[derive(Debug)]
pub struct ServiceCache {
    service: String,
    rx: watch::Receiver<ServiceView>,
    task: JoinHandle<()>,
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl ServiceCache {
    /// Starts following `service`. Must be called within a tokio runtime.
    pub(crate) fn start(keeper: &SessionKeeper, paths: &ServicePaths, service: &str) -> Result<ServiceCache> {
        check_service(service)?;
        let view = ServiceView {
            service: service.to_string(),
            instances: Arc::new(Vec::new()),
            ready: false,
            connected: false,
        };
        let (tx, rx) = watch::channel(view);
        let follower = Follower {
            paths: paths.clone(),
            service: service.to_string(),
            known: BTreeMap::new(),
            tx,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
        };
        let task = tokio::spawn(follower.run(keeper.subscribe()));
        Ok(ServiceCache { service: service.to_string(), rx, task })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The live instances now, ordered by id.
    pub fn instances(&self) -> Arc<Vec<ServiceInstance>> {
        self.rx.borrow().instances.clone()
    }

    pub fn view(&self) -> ServiceView {
        self.rx.borrow().clone()
    }

    /// A receiver of every change of the view (instances, readiness, connection); its
    /// `changed()` fails once the cache is dropped.
    pub fn changes(&self) -> watch::Receiver<ServiceView> {
        self.rx.clone()
    }

    /// Resolves once the service has been read (at once if it has).
    ///
    /// # Cancellation safety
    /// Safe to drop and call again.
    pub async fn ready(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|view| view.ready).await;
    }

    /// Chooses an instance with `picker` among the live ones.
    pub fn pick(&self, picker: &mut Picker, key: Option<&[u8]>) -> Option<ServiceInstance> {
        let instances = self.instances();
        picker.pick(&instances, key).cloned()
    }
}

impl Drop for ServiceCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The background task of a cache.
struct Follower {
    paths: ServicePaths,
    service: String,
    known: BTreeMap<String, ServiceInstance>,
    tx: watch::Sender<ServiceView>,
    backoff: Backoff,
}

impl Follower {
    async fn run(mut self, mut keeper: watch::Receiver<Session>) {
        loop {
            let session = keeper.borrow_and_update().clone();
            tokio::select! {
                () = self.follow(session.zk.client()) => {
                    // The session ended; keep the instances until the next one reads them.
                    self.publish(None, false);
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

    /// Follows the service in one session; returns when that session is gone.
    async fn follow(&mut self, client: &Client) {
        let dir = self.paths.service(&self.service);
        // Watch first, then read: a change after the read is then always seen.
        let mut watcher = loop {
            if client.state().is_terminated() {
                return;
            }
            match client.watch(&dir, AddWatchMode::PersistentRecursive).await {
                Ok(watcher) => break watcher,
                Err(error) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(service = %self.service, %error, retry_in = ?delay, "cannot watch the service");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let mut resync = true;
        // Set after a reconnect: the persistent watch must be added again (see `rewatch`).
        let mut rearm = false;
        let mut retry_at: Option<Instant> = None;
        loop {
            if rearm && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                match rewatch(client, &dir, &mut watcher).await {
                    Ok(()) => rearm = false,
                    Err(_) if client.state().is_terminated() => return,
                    Err(error) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(service = %self.service, %error, retry_in = ?delay, "cannot watch the service again");
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            // Watch first, then read (as at the start).
            if !rearm && resync && retry_at.is_none_or(|at| at <= Instant::now()) {
                retry_at = None;
                match read_service(client, &self.paths, &self.service).await {
                    Ok(records) => {
                        self.known = records.into_iter().map(|(id, r)| (id, r.instance)).collect();
                        resync = false;
                        self.backoff.reset();
                        self.publish(Some(true), true);
                    }
                    Err(error) if error.is_session_lost() => return,
                    Err(error) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(service = %self.service, %error, retry_in = ?delay, "cannot read the service");
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
            tokio::select! {
                event = watcher.changed() => match event.event_type {
                    EventType::Session => match session_turn(event.session_state) {
                        SessionTurn::Suspended => self.publish(None, false),
                        SessionTurn::Resumed => {
                            rearm = true;
                            resync = true;
                            retry_at = None;
                        }
                        // `changed()` must not be called again.
                        SessionTurn::Ended => return,
                    },
                    EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted if !resync => {
                        match self.paths.classify(&event.path) {
                            Some(PathKind::Instance(service, id)) if service == self.service => {
                                let id = id.to_string();
                                if event.event_type == EventType::NodeDeleted {
                                    self.known.remove(&id);
                                } else {
                                    match read_instance(client, &self.paths, &self.service, &id).await {
                                        Ok(Some(record)) => {
                                            self.known.insert(id, record.instance);
                                        }
                                        Ok(None) => {
                                            self.known.remove(&id);
                                        }
                                        Err(error) => {
                                            tracing::warn!(service = %self.service, %error, "cannot read an instance; reading the service again");
                                            resync = true;
                                        }
                                    }
                                }
                                self.publish(None, true);
                            }
                            // The service node itself went (a container, emptied): nothing is left.
                            Some(PathKind::Service(_)) if event.event_type == EventType::NodeDeleted => {
                                self.known.clear();
                                self.publish(None, true);
                            }
                            _ => {}
                        }
                    }
                    // During a pending full read, or a kind a recursive watch does not send.
                    _ => {}
                },
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
            }
        }
    }

    /// Publishes the known instances if anything changed; `ready: None` keeps readiness.
    fn publish(&self, ready: Option<bool>, connected: bool) {
        let instances: Vec<ServiceInstance> = self.known.values().cloned().collect();
        self.tx.send_if_modified(|view| {
            let ready = ready.unwrap_or(view.ready);
            if *view.instances == instances && view.ready == ready && view.connected == connected {
                return false;
            }
            if *view.instances != instances {
                tracing::debug!(service = %self.service, instances = instances.len(), "instances changed");
                view.instances = Arc::new(instances);
            }
            view.ready = ready;
            view.connected = connected;
            true
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
