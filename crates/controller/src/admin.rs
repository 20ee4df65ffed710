//! The leader's handling of operator requests queued by the CLI.

use std::collections::BTreeMap;

use zedis_coord::{CoordError, PendingRequest, RequestQueue, Versioned};
use zedis_topology::{now_ms, AdminOp, Event, EventKind, ObserverReport, Outcome, Topology};

use crate::reconciler::{ReconcileError, Reconciler};
use crate::switchover::choose_target;

/// Applies one request against the current topology; returns the outcome to record.
pub async fn apply(rec: &Reconciler, topo: &Versioned<Topology>, op: &AdminOp, own: &ObserverReport) -> Outcome {
    let result = apply_inner(rec, topo, op, own).await;
    let (ok, message, epoch) = match result {
        Ok((message, epoch)) => (true, message, Some(epoch)),
        Err(message) => (false, message, None),
    };
    Outcome { ok, message, epoch, by: rec.id.clone(), time_ms: now_ms() }
}

async fn apply_inner(
    rec: &Reconciler,
    topo: &Versioned<Topology>,
    op: &AdminOp,
    own: &ObserverReport,
) -> Result<(String, u64), String> {
    for addr in op.new_servers() {
        let mut conn = rec.connect(addr).await.map_err(|e| format!("server {addr} is unreachable: {e}"))?;
        conn.ping().await.map_err(|e| format!("server {addr} does not answer PING like Redis: {e}"))?;
    }
    let t = &topo.value;
    let (next, kind, message) = match op {
        AdminOp::AddGroup { servers } => {
            let spec = zedis_topology::GroupSpec { servers: servers.clone() };
            let (next, id) = t.add_group(&spec).map_err(|e| e.to_string())?;
            (next, EventKind::GroupAdded, format!("group {id} added with master {}", servers[0].addr))
        }
        AdminOp::AddServer { group, server } => {
            let next = t.add_server(*group, server).map_err(|e| e.to_string())?;
            (next, EventKind::ServerAdded, format!("{} added to group {group}", server.addr))
        }
        AdminOp::RemoveServer { addr } => {
            let next = t.remove_server(addr).map_err(|e| e.to_string())?;
            (next, EventKind::ServerRemoved, format!("{addr} removed"))
        }
        AdminOp::SetPriority { addr, priority } => {
            let next = t.set_priority(addr, *priority).map_err(|e| e.to_string())?;
            (next, EventKind::PriorityChanged, format!("{addr} priority set to {priority}"))
        }
        AdminOp::SetSettings { settings } => {
            let next = t.set_settings(settings.clone()).map_err(|e| e.to_string())?;
            (next, EventKind::SettingsChanged, "cluster settings changed".to_string())
        }
        AdminOp::SetRedisConfig { settings } => {
            // Validated again here: the request may come from any writer of the queue.
            let changed = t.settings.with_redis_settings(settings).map_err(|e| e.to_string())?;
            if changed == t.settings {
                return Ok((format!("Redis settings unchanged: {}", describe(&changed.redis)), t.epoch));
            }
            let shown: BTreeMap<String, String> = changed
                .redis
                .iter()
                .filter(|(k, _)| settings_named(settings, k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let next = t.set_settings(changed).map_err(|e| e.to_string())?;
            (next, EventKind::SettingsChanged, format!("Redis settings for every server: {}", describe(&shown)))
        }
        AdminOp::UnsetRedisConfig { names } => {
            let changed = t.settings.without_redis_settings(names)?;
            let next = t.set_settings(changed).map_err(|e| e.to_string())?;
            let message = format!(
                "Redis settings no longer enforced: {} (servers keep their current values until restarted)",
                names.join(", ")
            );
            (next, EventKind::SettingsChanged, message)
        }
        AdminOp::Migrate { .. } | AdminOp::Migration { .. } | AdminOp::Rebalance { .. } => {
            return Err("slot migration requests are not handled by this controller yet".into())
        }
        AdminOp::Failover { group, to } => {
            let target = choose_target(t, *group, to.as_deref(), own)?;
            let epoch = rec.switchover(topo, *group, &target, own).await.map_err(|e| e.to_string())?;
            return Ok((format!("group {group}: {target} is master at epoch {epoch}"), epoch));
        }
    };
    rec.leadership.check().map_err(|e| e.to_string())?;
    match rec.store.write(&next, topo.version).await {
        Ok(_) => {}
        Err(CoordError::Conflict { .. }) => return Err("the topology changed meanwhile; try again".into()),
        Err(e) => return Err(e.to_string()),
    }
    rec.event(Event::new(kind, next.epoch, &rec.id, message.clone())).await;
    Ok((message, next.epoch))
}

/// Whether `canonical` is the canonical name of one of the operator's `requested` names.
fn settings_named(requested: &BTreeMap<String, String>, canonical: &str) -> bool {
    requested.iter().any(|(name, value)| {
        zedis_topology::settings::canonical_setting(name, value).is_ok_and(|(n, _)| n == canonical)
    })
}

/// `name value, name value` for messages and events.
fn describe(settings: &BTreeMap<String, String>) -> String {
    settings.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Handles every pending request in order; stops early when the topology moved.
pub async fn handle_pending(
    rec: &Reconciler,
    queue: &RequestQueue,
    topo: &Versioned<Topology>,
    own: &ObserverReport,
) -> Result<bool, ReconcileError> {
    let pending: Vec<PendingRequest> = queue.pending().await?;
    for request in pending {
        rec.leadership.check()?;
        // Taken before by a leader that died: it may have taken effect already.
        let earlier_epoch = request.request.taken_epoch;
        let taken = match queue.take(&request, &rec.id, topo.value.epoch).await {
            Ok(t) => t,
            Err(CoordError::Conflict { .. }) => continue, // withdrawn or taken meanwhile
            Err(e) => return Err(e.into()),
        };
        let outcome = match (earlier_epoch, &taken.request.op) {
            (Some(e), AdminOp::Failover { group, .. }) if e < topo.value.epoch => {
                let master = topo.value.group(*group).map(|g| g.master.clone()).unwrap_or_default();
                Outcome {
                    ok: true,
                    message: format!("the topology moved on since a previous leader took this switchover (now epoch {}, group {group} master {master}); not switching again", topo.value.epoch),
                    epoch: Some(topo.value.epoch),
                    by: rec.id.clone(),
                    time_ms: now_ms(),
                }
            }
            _ => apply(rec, topo, &taken.request.op, own).await,
        };
        tracing::info!(op = ?taken.request.op, ok = outcome.ok, "{}", outcome.message);
        queue.complete(&taken, outcome.clone()).await?;
        if outcome.epoch.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
