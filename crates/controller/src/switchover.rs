//! Planned switchover that loses no acknowledged write: pause writes on the old master, wait
//! until the candidate has every byte, commit the new epoch, promote, demote, resume.

use std::time::{Duration, Instant};

use zedis_coord::Versioned;
use zedis_topology::{Event, EventKind, GroupId, ObserverReport, Role, ServerObservation, Topology};

use crate::info::observe_info;
use crate::planner::candidate_order;
use crate::reconciler::{ReconcileError, Reconciler};
use crate::server_ops::ServerConn;

/// How long writes may stay paused; Redis lifts the pause by itself after this, so a
/// controller that dies mid-switchover cannot leave the master frozen.
const PAUSE_MS: u64 = 5000;
/// How long to wait for the candidate to catch up before giving up.
const CATCH_UP: Duration = Duration::from_secs(3);

/// Chooses the replica to switch to: the one asked for, or the best healthy in-sync one.
pub fn choose_target(
    topo: &Topology,
    group: GroupId,
    to: Option<&str>,
    own: &ObserverReport,
) -> Result<String, String> {
    let g = topo.group(group).ok_or_else(|| format!("no group {group}"))?;
    let healthy =
        |addr: &str| own.servers.get(addr).filter(|o| o.ok && !o.down && o.role == Some(Role::Replica) && o.link_up);
    if !own.servers.get(&g.master).is_some_and(|o| o.ok && !o.down) {
        return Err(format!(
            "master {} of group {group} is not reachable; automatic failover handles a dead master",
            g.master
        ));
    }
    if let Some(to) = to {
        if to == g.master {
            return Err(format!("{to} is already the master of group {group}"));
        }
        if !g.contains(to) {
            return Err(format!("{to} is not a server of group {group}"));
        }
        return match healthy(to) {
            Some(_) => Ok(to.to_string()),
            None => Err(format!("{to} is not a healthy replica with its master link up")),
        };
    }
    let mut candidates: Vec<(&u32, &ServerObservation, &str)> = g
        .replicas()
        .filter(|s| s.priority > 0)
        .filter_map(|s| healthy(&s.addr).map(|o| (&s.priority, o, s.addr.as_str())))
        .collect();
    candidates.sort_by(|a, b| candidate_order((a.0, a.1), (b.0, b.1)));
    candidates
        .first()
        .map(|c| c.2.to_string())
        .ok_or_else(|| format!("group {group} has no healthy replica to switch to"))
}

async fn offset(conn: &mut ServerConn) -> Result<(Option<Role>, i64), ReconcileError> {
    let mut obs = ServerObservation::default();
    observe_info(&conn.info(&["replication"]).await?, &mut obs);
    Ok((obs.role, obs.offset))
}

impl Reconciler {
    /// Runs a planned switchover of `group` to `to` (already chosen); returns the new epoch.
    pub async fn switchover(
        &self,
        topo: &Versioned<Topology>,
        group: GroupId,
        to: &str,
        own: &ObserverReport,
    ) -> Result<u64, ReconcileError> {
        let g = topo.value.group(group).ok_or_else(|| ReconcileError::Refused(format!("no group {group}")))?;
        let from = g.master.clone();
        let epoch = topo.value.epoch;
        self.event(
            Event::new(
                EventKind::SwitchoverStarted,
                epoch,
                &self.id,
                format!("switchover of group {group}: {from} -> {to}"),
            )
            .group(group),
        )
        .await;
        let mut old = self.connect(&from).await?;
        let mut new = self.connect(to).await?;
        old.pause_writes(PAUSE_MS).await?;
        let result = self.switch_paused(topo, group, &from, to, &mut old, &mut new, own).await;
        // Resume in every case: on success clients' held writes now meet a replica and get
        // -READONLY (never acknowledged, never lost); on failure the old master carries on.
        if let Err(e) = old.unpause().await {
            tracing::warn!(error = %e, "could not unpause {from}; Redis lifts the pause within {PAUSE_MS} ms");
        }
        match result {
            Ok(next) => {
                self.event(
                    Event::new(
                        EventKind::SwitchoverDone,
                        next,
                        &self.id,
                        format!("switchover of group {group} done: {to} is master at epoch {next}"),
                    )
                    .group(group),
                )
                .await;
                Ok(next)
            }
            Err(e) => {
                self.event(
                    Event::new(
                        EventKind::SwitchoverAborted,
                        epoch,
                        &self.id,
                        format!("switchover of group {group} aborted: {e}"),
                    )
                    .group(group),
                )
                .await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn switch_paused(
        &self,
        topo: &Versioned<Topology>,
        group: GroupId,
        from: &str,
        to: &str,
        old: &mut ServerConn,
        new: &mut ServerConn,
        own: &ObserverReport,
    ) -> Result<u64, ReconcileError> {
        let deadline = Instant::now() + CATCH_UP;
        loop {
            // Master first: anything acknowledged before the pause is below this offset.
            let (_, master_offset) = offset(old).await?;
            let (role, replica_offset) = offset(new).await?;
            if role != Some(Role::Replica) {
                return Err(ReconcileError::Refused(format!("{to} is no longer a replica")));
            }
            if replica_offset >= master_offset {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ReconcileError::Refused(format!(
                    "{to} did not catch up within {CATCH_UP:?} (offset {replica_offset} < {master_offset})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
        // The old master is still paused, so nothing was written to it since the catch-up.
        old.replicaof(Some(to)).await?;
        self.event(
            Event::new(EventKind::Demoted, next.epoch, &self.id, format!("{from} demoted to a replica of {to}"))
                .group(group)
                .server(from),
        )
        .await;
        Ok(next.epoch)
    }
}
