//! One registered instance: the ephemeral node `<root>/services/<service>/<id>`, kept there
//! by a small supervisor task for as long as the [`Registration`] handle lives.
//!
//! The supervisor re-creates the node in every new session the [`SessionKeeper`] opens after
//! an expiry, re-creates it if someone deletes it, restores its record if someone overwrites
//! it, and applies [`Registration::update`]s in place (a `setData`, so watchers see one
//! change and never a gap). It never takes a node away from another *live* session: two
//! processes claiming one id is reported ([`DiscoveryError::IdTaken`]) and waited out, not
//! fought over. The one exception is the first registration, which takes over a node left by
//! a dead process at the same endpoint (a restart after `kill -9`, before the old session
//! timed out), so that restart does not have to wait for the session timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use zedis_coord::Zk;
use zookeeper_client::{Acls, CreateMode, CreateOptions, EventType, WatchedEvent};

use super::error::{DiscoveryError, Result};
use super::instance::{now_millis, ServiceInstance};
use super::keeper::{Session, SessionKeeper};
use super::paths::ServicePaths;
use crate::backoff::Backoff;

/// Where a registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// The node is in ZooKeeper, owned by the keeper's session number `generation`.
    Registered { generation: u64, session_id: i64 },
    /// The connection is suspended: the node is there if the session survives, which the
    /// next reconnect tells.
    Suspended,
    /// The node is not in ZooKeeper right now; the supervisor is retrying (session expired
    /// and a new one pending, ZooKeeper unreachable, the id held by another session...).
    Pending { reason: String },
    /// Deregistered (or the handle was dropped): the node was deleted.
    Deregistered,
}

/// A live registration. Dropping it deregisters in the background; call
/// [`Registration::deregister`] to wait for the deletion and see its outcome.
#[derive(Debug)]
pub struct Registration {
    path: String,
    service: String,
    id: String,
    /// The instance as last requested; updates are built from it under the lock, so two
    /// concurrent `update`s compose instead of one losing the other's change.
    desired: Arc<Mutex<ServiceInstance>>,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<RegistrationState>,
}

enum Command {
    Update { instance: ServiceInstance, reply: oneshot::Sender<Result<()>> },
    Deregister { reply: oneshot::Sender<Result<()>> },
}

const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
/// Service nodes are containers: ZooKeeper deletes them once their last instance is gone,
/// so services that are no more do not pile up.
const CONTAINER: CreateOptions<'static> = CreateMode::Container.with_acls(Acls::anyone_all());
const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());

/// Rounds of create / inspect / fix before giving up on a node that keeps changing.
const WRITE_ATTEMPTS: usize = 8;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether a write may replace a node owned by another session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takeover {
    Never,
    /// Only a node whose record has our endpoint (our own process, restarted).
    SameEndpoint,
}

/// Resolves with the next event on the instance's node (data watch or exists watch).
type NodeWatch = Pin<Box<dyn Future<Output = WatchedEvent> + Send>>;

impl Registration {
    /// Writes the node in the keeper's current session and starts the supervisor. Fails if
    /// the instance is invalid, its id is held by another live session, or ZooKeeper refuses
    /// the write; nothing is left behind then.
    pub(crate) async fn start(
        keeper: &SessionKeeper,
        paths: &ServicePaths,
        mut instance: ServiceInstance,
    ) -> Result<Registration> {
        instance.validate()?;
        if instance.registered_at == 0 {
            instance.registered_at = now_millis();
        }
        let node = Node {
            path: paths.instance(&instance.name, &instance.id),
            service_dir: paths.service(&instance.name),
            services_dir: paths.services(),
        };
        let keeper_rx = keeper.subscribe();
        let session = keeper.current();
        let watch = node.put(&session.zk, &instance, Takeover::SameEndpoint).await?;
        let registered = registered(&session);
        tracing::info!(path = %node.path, endpoint = %instance.endpoint(), generation = session.generation, "registered");
        let (state_tx, state) = watch::channel(registered);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let registration = Registration {
            path: node.path.clone(),
            service: instance.name.clone(),
            id: instance.id.clone(),
            desired: Arc::new(Mutex::new(instance.clone())),
            commands,
            state,
        };
        let supervisor = Supervisor { node, instance, keeper: keeper_rx, commands: command_rx, state: state_tx };
        tokio::spawn(supervisor.run(session, watch));
        Ok(registration)
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The znode of this instance.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The instance as last requested (what the node holds once the update is applied).
    pub fn instance(&self) -> ServiceInstance {
        self.desired.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn state(&self) -> RegistrationState {
        self.state.borrow().clone()
    }

    /// A receiver of state changes (e.g. to log re-registrations).
    pub fn watch_state(&self) -> watch::Receiver<RegistrationState> {
        self.state.clone()
    }

    /// Changes the instance in place (weight, metadata, enabled, address...). `name`, `id`
    /// and `registered_at` cannot change. Returns once the node holds the new record; on an
    /// error the supervisor keeps trying to write it in the background.
    ///
    /// # Cancellation safety
    /// Once called, the update is applied even if the returned future is dropped.
    pub async fn update(&self, change: impl FnOnce(&mut ServiceInstance)) -> Result<()> {
        let (reply, reply_rx) = oneshot::channel();
        {
            let mut desired = self.desired.lock().unwrap_or_else(|p| p.into_inner());
            let mut next = desired.clone();
            change(&mut next);
            next.name.clone_from(&desired.name);
            next.id.clone_from(&desired.id);
            next.registered_at = desired.registered_at;
            next.validate()?;
            // Sent under the lock so the supervisor applies updates in the order they were
            // built.
            self.commands.send(Command::Update { instance: next.clone(), reply }).map_err(|_| self.ended())?;
            *desired = next;
        }
        reply_rx.await.map_err(|_| self.ended())?
    }

    /// Deletes the node (only if this session owns it) and stops the supervisor.
    ///
    /// # Cancellation safety
    /// If the future is dropped, the deletion still happens in the background.
    pub async fn deregister(self) -> Result<()> {
        let (reply, reply_rx) = oneshot::channel();
        self.commands.send(Command::Deregister { reply }).map_err(|_| self.ended())?;
        reply_rx.await.map_err(|_| self.ended())?
    }

    fn ended(&self) -> DiscoveryError {
        DiscoveryError::Ended { service: self.service.clone(), id: self.id.clone() }
    }
}

fn registered(session: &Session) -> RegistrationState {
    RegistrationState::Registered { generation: session.generation, session_id: session.zk.client().session_id().0 }
}

/// The paths of one instance.
#[derive(Debug)]
struct Node {
    path: String,
    service_dir: String,
    services_dir: String,
}

impl Node {
    /// Makes the node hold `instance`'s record in `zk`'s session and arms a data watch on it.
    async fn put(&self, zk: &Zk, instance: &ServiceInstance, takeover: Takeover) -> Result<NodeWatch> {
        let client = zk.client();
        let ours = client.session_id().0;
        let data = instance.to_json();
        let err = |e| DiscoveryError::zk(&self.path, e);
        for _ in 0..WRITE_ATTEMPTS {
            match client.create(&self.path, &data, &EPHEMERAL).await {
                Ok(_) => {}
                Err(zookeeper_client::Error::NoNode) => {
                    self.ensure_parents(zk).await?;
                    continue;
                }
                // Ours already (e.g. the reply to an earlier create was lost), or someone
                // else's: look.
                Err(zookeeper_client::Error::NodeExists) => match client.get_data(&self.path).await {
                    Ok((existing, stat)) if stat.ephemeral_owner == ours => {
                        if existing != data {
                            match client.set_data(&self.path, &data, Some(stat.version)).await {
                                Ok(_) => {}
                                Err(zookeeper_client::Error::BadVersion | zookeeper_client::Error::NoNode) => continue,
                                Err(e) => return Err(err(e)),
                            }
                        }
                    }
                    Ok((existing, stat)) => {
                        let restarted = takeover == Takeover::SameEndpoint
                            && stat.ephemeral_owner != 0
                            && ServiceInstance::from_record(&instance.name, &instance.id, &self.path, &existing)
                                .is_ok_and(|old| old.same_endpoint(instance));
                        if !restarted {
                            return Err(DiscoveryError::IdTaken {
                                service: instance.name.clone(),
                                id: instance.id.clone(),
                                owner: stat.ephemeral_owner,
                            });
                        }
                        tracing::info!(
                            path = %self.path,
                            owner = format_args!("{:#x}", stat.ephemeral_owner),
                            "taking over the node an earlier process at this endpoint left behind"
                        );
                        match client.delete(&self.path, Some(stat.version)).await {
                            Ok(()) | Err(zookeeper_client::Error::NoNode | zookeeper_client::Error::BadVersion) => {
                                continue
                            }
                            Err(e) => return Err(err(e)),
                        }
                    }
                    Err(zookeeper_client::Error::NoNode) => continue,
                    Err(e) => return Err(err(e)),
                },
                Err(e) => return Err(err(e)),
            }
            // Arm the watch, and check that the node did not change between the write and the
            // watch (then the watch would not tell us).
            match client.get_and_watch_data(&self.path).await {
                Ok((existing, stat, watcher)) if stat.ephemeral_owner == ours && existing == data => {
                    return Ok(Box::pin(watcher.changed()));
                }
                Ok(_) | Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Err(DiscoveryError::zk(&self.path, zookeeper_client::Error::BadVersion))
    }

    /// Checks that the node still holds `instance` in this session and re-arms the watch;
    /// `None` if it must be written again.
    async fn verify(&self, zk: &Zk, instance: &ServiceInstance) -> Result<Option<NodeWatch>> {
        match zk.client().get_and_watch_data(&self.path).await {
            Ok((data, stat, watcher)) => {
                let ours = stat.ephemeral_owner == zk.client().session_id().0 && data == instance.to_json();
                Ok(ours.then(|| Box::pin(watcher.changed()) as NodeWatch))
            }
            Err(zookeeper_client::Error::NoNode) => Ok(None),
            Err(e) => Err(DiscoveryError::zk(&self.path, e)),
        }
    }

    /// A watch that fires when the node (held by someone else) changes or goes; `None` if it
    /// is already gone.
    async fn watch_other(&self, zk: &Zk) -> Result<Option<NodeWatch>> {
        match zk.client().check_and_watch_stat(&self.path).await {
            Ok((Some(_), watcher)) => Ok(Some(Box::pin(watcher.changed()))),
            Ok((None, _)) => Ok(None),
            Err(e) => Err(DiscoveryError::zk(&self.path, e)),
        }
    }

    /// Deletes the node if this session owns it (never another process's node of the same id).
    async fn remove(&self, zk: &Zk) -> Result<()> {
        let client = zk.client();
        match client.check_stat(&self.path).await {
            Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => {
                match client.delete(&self.path, Some(stat.version)).await {
                    Ok(()) | Err(zookeeper_client::Error::NoNode) => Ok(()),
                    Err(e) => Err(DiscoveryError::zk(&self.path, e)),
                }
            }
            Ok(_) => Ok(()),
            Err(e) => Err(DiscoveryError::zk(&self.path, e)),
        }
    }

    async fn ensure_parents(&self, zk: &Zk) -> Result<()> {
        let client = zk.client();
        client.mkdir(&self.services_dir, &PERSISTENT).await.map_err(|e| DiscoveryError::zk(&self.services_dir, e))?;
        match client.create(&self.service_dir, &[], &CONTAINER).await {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
            Err(e) => Err(DiscoveryError::zk(&self.service_dir, e)),
        }
    }
}

/// The task that keeps the node in ZooKeeper.
struct Supervisor {
    node: Node,
    instance: ServiceInstance,
    keeper: watch::Receiver<Session>,
    commands: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<RegistrationState>,
}

/// Waits for the watch if there is one, forever otherwise (a disabled `select!` branch).
async fn next_event(watch: &mut Option<NodeWatch>) -> WatchedEvent {
    match watch.as_mut() {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    async fn run(mut self, mut session: Session, first_watch: NodeWatch) {
        let mut watch = Some(first_watch);
        // Whether the node is known to hold our record in `session`.
        let mut written = true;
        let mut retry_at: Option<Instant> = None;
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        let mut states = session.zk.client().state_watcher();
        loop {
            // A dead session cannot write; the keeper's next session wakes us up.
            if !written && retry_at.is_none() && !session.zk.state().is_terminated() {
                match self.node.put(&session.zk, &self.instance, Takeover::Never).await {
                    Ok(w) => {
                        watch = Some(w);
                        written = true;
                        backoff.reset();
                        tracing::info!(path = %self.node.path, generation = session.generation, "registered again");
                        self.state.send_replace(registered(&session));
                    }
                    Err(error) => {
                        retry_at = Some(Instant::now() + backoff.next_delay());
                        watch = self.after_failure(&session, &error).await;
                    }
                }
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Update { instance, reply }) => {
                        self.instance = instance;
                        let outcome = match self.node.put(&session.zk, &self.instance, Takeover::Never).await {
                            Ok(w) => {
                                watch = Some(w);
                                written = true;
                                retry_at = None;
                                backoff.reset();
                                tracing::info!(path = %self.node.path, "updated");
                                self.state.send_replace(registered(&session));
                                Ok(())
                            }
                            Err(error) => {
                                written = false;
                                retry_at = Some(Instant::now() + backoff.next_delay());
                                watch = self.after_failure(&session, &error).await;
                                Err(error)
                            }
                        };
                        let _ = reply.send(outcome);
                    }
                    Some(Command::Deregister { reply }) => {
                        let result = self.node.remove(&session.zk).await;
                        tracing::info!(path = %self.node.path, ok = result.is_ok(), "deregistered");
                        self.state.send_replace(RegistrationState::Deregistered);
                        let _ = reply.send(result);
                        return;
                    }
                    None => {
                        // The handle was dropped: deregister best-effort.
                        if let Err(error) = self.node.remove(&session.zk).await {
                            tracing::warn!(path = %self.node.path, %error, "cannot delete the node of a dropped registration");
                        }
                        self.state.send_replace(RegistrationState::Deregistered);
                        return;
                    }
                },
                changed = self.keeper.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    session = self.keeper.borrow_and_update().clone();
                    states = session.zk.client().state_watcher();
                    tracing::info!(path = %self.node.path, generation = session.generation, "new session; registering again");
                    watch = None;
                    written = false;
                    retry_at = None;
                    backoff.reset();
                }
                event = next_event(&mut watch) => {
                    watch = None;
                    match event.event_type {
                        EventType::NodeDeleted => {
                            if written {
                                tracing::warn!(path = %self.node.path, "the node was deleted by someone else; creating it again");
                            }
                            written = false;
                            retry_at = None;
                        }
                        EventType::Session => {
                            // Only a terminal state reaches a oneshot watch: the session is
                            // gone with our node; wait for the keeper's next one.
                            written = false;
                            self.state.send_replace(RegistrationState::Pending {
                                reason: format!("ZooKeeper session {}", event.session_state),
                            });
                        }
                        _ if written => match self.node.verify(&session.zk, &self.instance).await {
                            Ok(Some(w)) => watch = Some(w),
                            Ok(None) => {
                                tracing::warn!(path = %self.node.path, "the node was changed by someone else; restoring it");
                                written = false;
                                retry_at = None;
                            }
                            Err(error) => {
                                tracing::warn!(path = %self.node.path, %error, "cannot check the node");
                                written = false;
                                retry_at = Some(Instant::now() + backoff.next_delay());
                            }
                        },
                        // The other session's node changed: try again now.
                        _ => retry_at = None,
                    }
                }
                state = states.changed() => {
                    if written {
                        let next = if state.is_terminated() {
                            written = false;
                            RegistrationState::Pending { reason: format!("ZooKeeper session {state}") }
                        } else if state == zookeeper_client::SessionState::Disconnected {
                            RegistrationState::Suspended
                        } else {
                            registered(&session)
                        };
                        self.state.send_replace(next);
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
            }
        }
    }

    /// Logs a failed write, publishes `Pending`, and returns a watch to wake up early when
    /// the id is held by another session and that node goes.
    async fn after_failure(&self, session: &Session, error: &DiscoveryError) -> Option<NodeWatch> {
        tracing::warn!(path = %self.node.path, %error, "cannot register; retrying");
        self.state.send_replace(RegistrationState::Pending { reason: error.to_string() });
        if matches!(error, DiscoveryError::IdTaken { .. }) {
            return self.node.watch_other(&session.zk).await.ok().flatten();
        }
        None
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
