//! Carries out the planner's actions against Redis and ZooKeeper. Thin: every decision was
//! made by the planner; this only orders the steps safely and records them as events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zedis_coord::{CoordError, EventLog, TopologyStore, Versioned};
use zedis_topology::{Event, EventKind, ObserverReport, Topology};

use crate::planner::Action;
use crate::server_ops::{ServerConn, ServerError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("not acting: the ZooKeeper connection is suspended")]
    Suspended,
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Coord(#[from] CoordError),
    #[error("{0}")]
    Refused(String),
}

/// Set while this controller may act: connected to ZooKeeper and verified leader. Cleared the
/// moment the connection is suspended, so no Redis command goes out from a possibly-deposed
/// leader.
#[derive(Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn set(&self, acting: bool) {
        self.0.store(acting, Ordering::SeqCst);
    }

    pub fn is_acting(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn check(&self) -> Result<(), ReconcileError> {
        if self.is_acting() {
            Ok(())
        } else {
            Err(ReconcileError::Suspended)
        }
    }
}

pub struct Reconciler {
    pub id: String,
    pub store: TopologyStore,
    pub events: EventLog,
    pub leadership: Leadership,
    /// Per Redis command.
    pub timeout: Duration,
    /// The servers' `requirepass`.
    pub password: Option<String>,
}

/// What a carried-out action changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    Nothing,
    /// The topology moved to a new epoch: re-read before planning again.
    NewEpoch,
}

impl Reconciler {
    pub async fn connect(&self, addr: &str) -> Result<ServerConn, ReconcileError> {
        self.leadership.check()?;
        Ok(ServerConn::connect_with(addr, self.timeout, self.password.as_deref()).await?)
    }

    pub async fn event(&self, event: Event) {
        tracing::info!(kind = ?event.kind, epoch = event.epoch, group = ?event.group, server = ?event.server, "{}", event.message);
        if let Err(e) = self.events.append(&event).await {
            tracing::warn!(error = %e, "could not record event");
        }
    }

    pub async fn execute(
        &self,
        topo: &Versioned<Topology>,
        action: &Action,
        own: &ObserverReport,
    ) -> Result<Done, ReconcileError> {
        let epoch = topo.value.epoch;
        match action {
            Action::Failover { group, from, to } => self.failover(topo, *group, from, to, own).await,
            Action::Promote { group, addr } => {
                self.connect(addr).await?.replicaof(None).await?;
                self.event(
                    Event::new(
                        EventKind::Promoted,
                        epoch,
                        &self.id,
                        format!("{addr} promoted to master of group {group}"),
                    )
                    .group(*group)
                    .server(addr),
                )
                .await;
                Ok(Done::Nothing)
            }
            Action::Replicate { group, addr, master, demote } => {
                self.connect(addr).await?.replicaof(Some(master)).await?;
                let (kind, what) = if *demote {
                    (EventKind::Demoted, "demoted to a replica of")
                } else {
                    (EventKind::Repointed, "now replicates")
                };
                self.event(
                    Event::new(kind, epoch, &self.id, format!("{addr} {what} {master}")).group(*group).server(addr),
                )
                .await;
                Ok(Done::Nothing)
            }
            Action::Configure { addr, pairs } => {
                self.configure(addr, pairs).await?;
                Ok(Done::Nothing)
            }
        }
    }

    /// `CONFIG SET` of `pairs` on `addr`. Redis applies a multi-setting `CONFIG SET` all or
    /// nothing, so when the server refuses it, the settings are applied one by one: one bad
    /// operator setting must not hold back the others, least of all the fencing ones.
    async fn configure(&self, addr: &str, pairs: &[(String, String)]) -> Result<(), ReconcileError> {
        let mut conn = self.connect(addr).await?;
        let first = match conn.config_set(pairs).await {
            Ok(()) => {
                tracing::info!(server = %addr, ?pairs, "applied managed settings");
                return Ok(());
            }
            // Only a refusal by the server; a timeout or broken connection fails the same
            // way for one setting at a time.
            Err(e @ ServerError::Redis { .. }) if pairs.len() > 1 => e,
            Err(e) => return Err(e.into()),
        };
        tracing::debug!(server = %addr, error = %first, "CONFIG SET of several settings refused; applying one by one");
        let mut refused = Vec::new();
        for pair in pairs {
            self.leadership.check()?;
            match conn.config_set(std::slice::from_ref(pair)).await {
                Ok(()) => tracing::info!(server = %addr, setting = %pair.0, value = %pair.1, "applied managed setting"),
                Err(e) => refused.push(format!("{} {:?}: {e}", pair.0, pair.1)),
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(ReconcileError::Refused(format!("{addr} refused settings: {}", refused.join("; "))))
        }
    }

    /// Automatic failover: commit the new epoch first, then promote, then re-point the others.
    /// The old master is demoted by a later plan when it comes back.
    async fn failover(
        &self,
        topo: &Versioned<Topology>,
        group: u32,
        from: &str,
        to: &str,
        own: &ObserverReport,
    ) -> Result<Done, ReconcileError> {
        let epoch = topo.value.epoch;
        self.event(
            Event::new(
                EventKind::MasterDown,
                epoch,
                &self.id,
                format!("master {from} of group {group} is down; promoting {to}"),
            )
            .group(group)
            .server(from),
        )
        .await;
        let next = topo.value.set_master(group, to).map_err(|e| ReconcileError::Refused(e.to_string()))?;
        self.leadership.check()?;
        self.store.write(&next, topo.version).await?;
        self.event(
            Event::new(
                EventKind::FailoverCommitted,
                next.epoch,
                &self.id,
                format!("epoch {}: {to} is master of group {group}", next.epoch),
            )
            .group(group)
            .server(to),
        )
        .await;
        self.promote_and_repoint(&next, group, to, own).await?;
        Ok(Done::NewEpoch)
    }

    /// After the epoch is committed: `REPLICAOF NO ONE` on the new master, then the other
    /// reachable replicas follow it.
    pub async fn promote_and_repoint(
        &self,
        next: &Topology,
        group: u32,
        to: &str,
        own: &ObserverReport,
    ) -> Result<(), ReconcileError> {
        self.connect(to).await?.replicaof(None).await?;
        self.event(
            Event::new(EventKind::Promoted, next.epoch, &self.id, format!("{to} promoted to master of group {group}"))
                .group(group)
                .server(to),
        )
        .await;
        let Some(g) = next.group(group) else { return Ok(()) };
        for replica in g.replicas() {
            let reachable = own.servers.get(&replica.addr).is_some_and(|o| o.ok && !o.down);
            if !reachable {
                continue;
            }
            match self.connect(&replica.addr).await {
                Ok(mut conn) => match conn.replicaof(Some(to)).await {
                    Ok(()) => {
                        self.event(
                            Event::new(
                                EventKind::Repointed,
                                next.epoch,
                                &self.id,
                                format!("{} now replicates {to}", replica.addr),
                            )
                            .group(group)
                            .server(&replica.addr),
                        )
                        .await
                    }
                    Err(e) => tracing::warn!(error = %e, "re-point failed; the next plan retries"),
                },
                Err(e) => tracing::warn!(error = %e, "re-point failed; the next plan retries"),
            }
        }
        Ok(())
    }
}
