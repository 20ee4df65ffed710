//! The leader's handling of operator requests queued by the CLI.

use std::collections::BTreeMap;

use zedis_coord::{CoordError, PendingRequest, RequestQueue, Versioned};
use zedis_topology::migration_summary::summary;
use zedis_topology::{
    now_ms, AdminOp, Event, EventKind, Migration, MigrationAction, MigrationId, MigrationState, ObserverReport,
    Outcome, Slot, Topology,
};

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
        AdminOp::Migrate { ranges, to, rate } => {
            check_rate(*rate)?;
            check_no_overlap(ranges)?;
            let (next, id) = t.start_migration(ranges, *to, *rate).map_err(|e| e.to_string())?;
            let m = next.migrations.iter().find(|m| m.id == id).ok_or("the new migration is missing")?;
            let what = format!("migration {id}: {}{}", summary(m), rate_text(*rate));
            let message = format!(
                "{what}; keys move once every proxy and client has epoch {} (follow with `zedis cluster migrations`)",
                next.epoch
            );
            let event = Event::new(EventKind::MigrationStarted, next.epoch, &rec.id, what).group(*to);
            let epoch = commit(rec, topo, &next, vec![event]).await?;
            return Ok((message, epoch));
        }
        AdminOp::Migration { id, action } => {
            let (next, message) = migration_action(t, *id, *action)?;
            let target = next.migrations.iter().find(|m| m.id == *id).map(|m| m.target);
            let mut event = Event::new(EventKind::MigrationChanged, next.epoch, &rec.id, message.clone());
            if let Some(target) = target {
                event = event.group(target);
            }
            let epoch = commit(rec, topo, &next, vec![event]).await?;
            return Ok((message, epoch));
        }
        AdminOp::Rebalance { weights, rate } => {
            check_rate(*rate)?;
            let (next, ids) = t.rebalance(weights, *rate).map_err(|e| e.to_string())?;
            let started: Vec<&Migration> = next.migrations.iter().filter(|m| ids.contains(&m.id)).collect();
            let events = started
                .iter()
                .map(|m| {
                    let what = format!("migration {}: {}{} (rebalance)", m.id, summary(m), rate_text(*rate));
                    Event::new(EventKind::MigrationStarted, next.epoch, &rec.id, what).group(m.target)
                })
                .collect();
            let list: Vec<String> = started.iter().map(|m| format!("migration {}: {}", m.id, summary(m))).collect();
            let message = format!(
                "rebalance started {} migration{}: {}{}; keys move once every proxy and client has epoch {} (follow with `zedis cluster migrations`)",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                list.join("; "),
                rate_text(*rate),
                next.epoch
            );
            let epoch = commit(rec, topo, &next, events).await?;
            return Ok((message, epoch));
        }
        AdminOp::Failover { group, to } => {
            let target = choose_target(t, *group, to.as_deref(), own)?;
            let epoch = rec.switchover(topo, *group, &target, own).await.map_err(|e| e.to_string())?;
            return Ok((format!("group {group}: {target} is master at epoch {epoch}"), epoch));
        }
    };
    let event = Event::new(kind, next.epoch, &rec.id, message.clone());
    let epoch = commit(rec, topo, &next, vec![event]).await?;
    Ok((message, epoch))
}

/// Writes `next` over `topo` (compare-and-set) while still leading, then records `events`.
async fn commit(
    rec: &Reconciler,
    topo: &Versioned<Topology>,
    next: &Topology,
    events: Vec<Event>,
) -> Result<u64, String> {
    rec.leadership.check().map_err(|e| e.to_string())?;
    match rec.store.write(next, topo.version).await {
        Ok(_) => {}
        Err(CoordError::Conflict { .. }) => return Err("the topology changed meanwhile; try again".into()),
        Err(e) => return Err(e.to_string()),
    }
    for event in events {
        rec.event(event).await;
    }
    Ok(next.epoch)
}

fn check_rate(rate: Option<u32>) -> Result<(), String> {
    match rate {
        Some(0) => Err("a rate of 0 keys/s would never move a key; give at least 1, or no rate for no limit".into()),
        _ => Ok(()),
    }
}

/// Slot ranges named twice would be planned twice (the CLI refuses them too).
fn check_no_overlap(ranges: &[(Slot, Slot)]) -> Result<(), String> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    match sorted.windows(2).find(|w| w[1].0 <= w[0].1) {
        Some(w) => Err(format!("slot ranges {}-{} and {}-{} overlap", w[0].0, w[0].1, w[1].0, w[1].1)),
        None => Ok(()),
    }
}

fn rate_text(rate: Option<u32>) -> String {
    rate.map(|r| format!(", at most {r} keys/s")).unwrap_or_default()
}

/// Pause, resume or cancel as an operator asks (never `begin`: that is the driver's step).
fn migration_action(t: &Topology, id: MigrationId, action: MigrationAction) -> Result<(Topology, String), String> {
    if action == MigrationAction::Begin {
        return Err(format!(
            "migration {id}: operators cannot begin a migration; the controller starts moving keys once every \
             proxy and client has its epoch (operators may pause, resume or cancel it)"
        ));
    }
    let Some(before) = t.migrations.iter().find(|m| m.id == id) else {
        return Err(format!("no migration {id} (see `zedis cluster migrations`)"));
    };
    let sources = zedis_topology::migration_summary::sources(&before.pending);
    let sources = sources.iter().map(|g| format!("group {g}")).collect::<Vec<_>>().join(" and ");
    let next = t.migration_action(id, action).map_err(|e| e.to_string())?;
    let state = next.migrations.iter().find(|m| m.id == id).map(|m| m.state);
    let message = match state {
        Some(MigrationState::Paused) => {
            format!("migration {id} paused: no more keys move; clients keep working, each key served where it is now")
        }
        Some(MigrationState::Moving) => format!("migration {id} resumed: keys move to group {} again", before.target),
        Some(MigrationState::Cancelled) => {
            format!("migration {id} cancelled before any key moved; its slots stay with {sources}")
        }
        Some(MigrationState::Cancelling) => format!(
            "migration {id} cancelling: keys already at group {} move back to {sources}, slots already moved stay \
             with group {}",
            before.target, before.target
        ),
        other => format!("migration {id}: now {other:?}"),
    };
    Ok((next, message))
}

/// Whether a Migrate or Rebalance request that a previous leader took at `taken_epoch` took
/// effect before that leader died: the migrations it started are then in the topology.
fn started_since(t: &Topology, op: &AdminOp, taken_epoch: u64) -> Option<String> {
    let since = |m: &&Migration| m.since_epoch > taken_epoch;
    let ids: Vec<String> = match op {
        AdminOp::Migrate { to, .. } => {
            t.migrations.iter().filter(since).filter(|m| m.target == *to).map(|m| m.id.to_string()).collect()
        }
        AdminOp::Rebalance { .. } => t.migrations.iter().filter(since).map(|m| m.id.to_string()).collect(),
        _ => return None,
    };
    if ids.is_empty() {
        return None;
    }
    Some(format!(
        "a previous leader took this request and started migration {} before it stopped; not starting another",
        ids.join(", ")
    ))
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
            (Some(e), op @ (AdminOp::Migrate { .. } | AdminOp::Rebalance { .. }))
                if e < topo.value.epoch && started_since(&topo.value, op, e).is_some() =>
            {
                Outcome {
                    ok: true,
                    message: started_since(&topo.value, op, e).unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use zedis_topology::{ClusterSettings, GroupSpec, Server};

    use super::*;

    fn two_groups() -> Topology {
        let spec = |a: &str| GroupSpec { servers: vec![Server::new(a)] };
        Topology::new("c", &[spec("h:1"), spec("h:2")], ClusterSettings::default()).unwrap()
    }

    #[test]
    fn operator_migration_actions() {
        let (t, id) = two_groups().start_migration(&[(0, 9)], 2, None).unwrap();
        let err = migration_action(&t, id, MigrationAction::Begin).unwrap_err();
        assert!(err.contains("operators cannot begin"), "{err}");
        assert!(migration_action(&t, 9, MigrationAction::Pause).unwrap_err().starts_with("no migration 9"));
        let err = migration_action(&t, id, MigrationAction::Pause).unwrap_err();
        assert!(err.contains("has not started moving keys"), "{err}");
        let (cancelled, message) = migration_action(&t, id, MigrationAction::Cancel).unwrap();
        assert_eq!(cancelled.migrations[0].state, MigrationState::Cancelled);
        assert_eq!(message, "migration 1 cancelled before any key moved; its slots stay with group 1");

        let moving = t.migration_action(id, MigrationAction::Begin).unwrap();
        let (paused, message) = migration_action(&moving, id, MigrationAction::Pause).unwrap();
        assert!(message.starts_with("migration 1 paused"), "{message}");
        let (_, message) = migration_action(&paused, id, MigrationAction::Resume).unwrap();
        assert_eq!(message, "migration 1 resumed: keys move to group 2 again");
        let (cancelling, message) = migration_action(&paused, id, MigrationAction::Cancel).unwrap();
        assert_eq!(cancelling.migrations[0].state, MigrationState::Cancelling);
        assert!(message.contains("move back to group 1"), "{message}");
    }

    #[test]
    fn request_checks() {
        assert!(check_rate(Some(0)).is_err());
        assert!(check_rate(Some(1)).is_ok() && check_rate(None).is_ok());
        assert!(check_no_overlap(&[(0, 9), (10, 20)]).is_ok());
        assert_eq!(check_no_overlap(&[(10, 20), (0, 10)]).unwrap_err(), "slot ranges 0-10 and 10-20 overlap");
    }

    #[test]
    fn a_retaken_migrate_that_took_effect_is_not_started_again() {
        let t = two_groups();
        let op = AdminOp::Migrate { ranges: vec![(0, 9)], to: 2, rate: None };
        assert_eq!(started_since(&t, &op, t.epoch), None);
        let (after, _) = t.start_migration(&[(0, 9)], 2, None).unwrap();
        assert!(started_since(&after, &op, t.epoch).unwrap().contains("started migration 1"));
        let other = AdminOp::Migrate { ranges: vec![(0, 9)], to: 1, rate: None };
        assert_eq!(started_since(&after, &other, t.epoch), None, "a migration to another group is not this one");
        let rebalance = AdminOp::Rebalance { weights: Default::default(), rate: None };
        assert!(started_since(&after, &rebalance, t.epoch).is_some());
        assert_eq!(started_since(&after, &rebalance, after.epoch), None);
    }
}
