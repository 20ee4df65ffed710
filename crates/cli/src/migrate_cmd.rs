//! The operator side of online slot migration: `cluster migrate`, `cluster rebalance`,
//! `cluster migrations` and `cluster migration pause|resume|cancel`. Requests are checked
//! against the topology here first (clear errors, nothing queued), then queued for the
//! controller leader, which checks them again and records the migration; its driver moves
//! the keys while clients keep working.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use zedis_coord::{ClusterPaths, EventLog, TopologyStore, Zk};
use zedis_topology::migration_summary::summary;
use zedis_topology::{
    now_ms, AdminOp, EventKind, GroupId, MigrationAction, MigrationError, MigrationId, MigrationProgress,
    MigrationState, RebalanceError, Slot, Topology, TopologyError, SLOT_COUNT,
};

use crate::cluster_cmd::{request, WaitArgs};
use crate::common::Global;
use crate::migration_view::{render_table, state_name, MigrationView};

/// Seconds to wait for the controller leader to take a request when `--timeout` is not given.
const DEFAULT_REQUEST_TIMEOUT_S: u64 = 15;

/// Events searched for a migration's start time when its driver has published no progress.
const EVENTS_SEARCHED: usize = 300;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Slots to move: `N` or `A-B` (inclusive), comma separated, e.g. `0-99,200,300-310`.
    /// Slots the target owns already are skipped.
    #[arg(long, value_name = "RANGES")]
    pub slots: String,
    /// The group that receives the slots.
    #[arg(long, value_name = "GROUP")]
    pub to: GroupId,
    #[command(flatten)]
    pub rate: RateArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
}

#[derive(Args, Debug)]
pub struct RebalanceArgs {
    /// Relative weights, `GROUP=WEIGHT[,GROUP=WEIGHT...]`; groups not named weigh 1, weight 0
    /// empties a group (e.g. before removing it).
    #[arg(long, value_name = "G=W,...")]
    pub weights: Option<String>,
    /// Print the plan, computed here from the current topology, without queueing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub rate: RateArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
}

#[derive(Args, Debug)]
pub struct RateArgs {
    /// Throttle: at most this many keys per second moved (default: as fast as it goes).
    #[arg(long, value_name = "KEYS_PER_S")]
    pub rate: Option<u32>,
}

#[derive(Args, Debug)]
pub struct FollowArgs {
    /// Follow the migration(s) until done, printing progress about once a second; exits
    /// non-zero if one is cancelled or the --timeout passes.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait for the controller leader to take the request (default 15) and, with
    /// --wait, for the migration to finish (default: no limit). A migration still running
    /// when the wait ends goes on.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub struct MigrationsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum MigrationCommand {
    /// Stop moving keys; clients keep working, each key served where it is now.
    Pause(MigrationIdArgs),
    /// Move keys again after a pause.
    Resume(MigrationIdArgs),
    /// Undo a migration: keys already moved go back to their source group, slots already
    /// committed to the target stay there.
    Cancel(MigrationIdArgs),
}

#[derive(Args, Debug)]
pub struct MigrationIdArgs {
    /// The migration's id (see `zedis cluster migrations`).
    pub id: MigrationId,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn migrate(global: &Global, args: MigrateArgs) -> Result<()> {
    let ranges = parse_slot_ranges(&args.slots)?;
    check_rate(args.rate.rate)?;
    let zk = global.connect().await?;
    let paths = global.paths()?;
    let topo = TopologyStore::new(zk.clone(), paths.clone()).read().await?.value;
    topo.start_migration(&ranges, args.to, args.rate.rate).map_err(|e| refusal(&topo, e))?;
    let op = AdminOp::Migrate { ranges, to: args.to, rate: args.rate.rate };
    let outcome = request(global, op, request_timeout(&args.follow)).await?;
    println!("{}", outcome.message);
    if !args.follow.wait {
        return Ok(());
    }
    let ids = started_at(&zk, &paths, outcome.epoch, Some(args.to)).await?;
    follow(&zk, &paths, &ids, args.follow.timeout).await
}

pub async fn rebalance(global: &Global, args: RebalanceArgs) -> Result<()> {
    let weights = args.weights.as_deref().map(parse_weights).transpose()?.unwrap_or_default();
    check_rate(args.rate.rate)?;
    let zk = global.connect().await?;
    let paths = global.paths()?;
    let topo = TopologyStore::new(zk.clone(), paths.clone()).read().await?.value;
    let (planned, ids) = match topo.rebalance(&weights, args.rate.rate) {
        Ok(planned) => planned,
        Err(TopologyError::Rebalance(RebalanceError::Balanced)) => {
            println!("nothing to do: the slots are already spread by weight ({})", ownership(&topo));
            return Ok(());
        }
        Err(e) => return Err(refusal(&topo, e)),
    };
    if args.dry_run {
        print!("{}", render_plan(&topo, &planned, &ids));
        return Ok(());
    }
    let op = AdminOp::Rebalance { weights, rate: args.rate.rate };
    let outcome = request(global, op, request_timeout(&args.follow)).await?;
    println!("{}", outcome.message);
    if !args.follow.wait {
        return Ok(());
    }
    let ids = started_at(&zk, &paths, outcome.epoch, None).await?;
    follow(&zk, &paths, &ids, args.follow.timeout).await
}

pub async fn migration(global: &Global, cmd: MigrationCommand) -> Result<()> {
    let (args, action) = match cmd {
        MigrationCommand::Pause(args) => (args, MigrationAction::Pause),
        MigrationCommand::Resume(args) => (args, MigrationAction::Resume),
        MigrationCommand::Cancel(args) => (args, MigrationAction::Cancel),
    };
    let zk = global.connect().await?;
    let topo = TopologyStore::new(zk, global.paths()?).read().await?.value;
    topo.migration_action(args.id, action).map_err(|e| refusal(&topo, e))?;
    let outcome =
        request(global, AdminOp::Migration { id: args.id, action }, Duration::from_secs(args.wait.timeout)).await?;
    println!("{}", outcome.message);
    Ok(())
}

pub async fn migrations(global: &Global, args: MigrationsArgs) -> Result<()> {
    let zk = global.connect().await?;
    let paths = global.paths()?;
    let topo = TopologyStore::new(zk.clone(), paths.clone()).read().await?.value;
    let views = views(&zk, &paths, &topo, true).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        print!("{}", render_table(&views));
    }
    Ok(())
}

/// Every migration of `topo` with its progress; with `search_events`, the start time of
/// those without progress is looked up in the event history.
pub async fn views(zk: &Zk, paths: &ClusterPaths, topo: &Topology, search_events: bool) -> Result<Vec<MigrationView>> {
    let mut progress = BTreeMap::new();
    for m in &topo.migrations {
        if let Some(p) = read_progress(zk, paths, m.id).await? {
            progress.insert(m.id, p);
        }
    }
    let mut started: BTreeMap<MigrationId, u64> = BTreeMap::new();
    if search_events && topo.migrations.iter().any(|m| !progress.contains_key(&m.id)) {
        for e in EventLog::new(zk.clone(), paths).recent(EVENTS_SEARCHED).await? {
            if e.kind != EventKind::MigrationStarted {
                continue;
            }
            if let Some(id) = event_migration_id(&e.message) {
                started.insert(id, e.time_ms);
            }
        }
    }
    let now = now_ms();
    Ok(topo
        .migrations
        .iter()
        .map(|m| MigrationView::new(m, progress.remove(&m.id), started.get(&m.id).copied(), now))
        .collect())
}

/// The progress record of migration `id`; `None` while its driver has published none (a
/// record that does not parse is reported and treated the same).
pub async fn read_progress(zk: &Zk, paths: &ClusterPaths, id: MigrationId) -> Result<Option<MigrationProgress>> {
    let path = paths.migration(id);
    let Some((data, _)) = zk.get(&path).await? else { return Ok(None) };
    match MigrationProgress::from_json(&data) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            tracing::warn!(path, error = %e, "unreadable migration progress record");
            Ok(None)
        }
    }
}

/// `migration 12: ...` → 12 (the controller's `migration_started` events begin so).
fn event_migration_id(message: &str) -> Option<MigrationId> {
    message.strip_prefix("migration ")?.split_once(':')?.0.parse().ok()
}

/// The migrations a request started: those introduced at `epoch` (towards `target`).
async fn started_at(
    zk: &Zk,
    paths: &ClusterPaths,
    epoch: Option<u64>,
    target: Option<GroupId>,
) -> Result<Vec<MigrationId>> {
    let topo = TopologyStore::new(zk.clone(), paths.clone()).read().await?.value;
    let ids: Vec<MigrationId> = topo
        .migrations
        .iter()
        .filter(|m| Some(m.since_epoch) == epoch && target.is_none_or(|t| m.target == t))
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        bail!("cannot find the migration the request started; follow it with `zedis cluster migrations`");
    }
    Ok(ids)
}

/// Prints the progress of `ids` about once a second until each has finished: `Ok` when all
/// are done, an error when one was cancelled or `timeout_s` passed.
async fn follow(zk: &Zk, paths: &ClusterPaths, ids: &[MigrationId], timeout_s: Option<u64>) -> Result<()> {
    let store = TopologyStore::new(zk.clone(), paths.clone());
    let deadline = timeout_s.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        let topo = store.read().await?.value;
        let mut finished = Vec::new();
        for id in ids {
            let Some(m) = topo.migrations.iter().find(|m| m.id == *id) else {
                bail!(
                    "migration {id} is no longer in the topology (finished long ago?); see `zedis cluster migrations`"
                );
            };
            let view = MigrationView::new(m, read_progress(zk, paths, *id).await?, None, now_ms());
            println!("migration {id}: {}", view.progress_text());
            if !m.state.is_active() {
                finished.push((*id, m.state, m.target));
            }
        }
        if finished.len() == ids.len() {
            if let Some((id, _, _)) = finished.iter().find(|(_, state, _)| *state == MigrationState::Cancelled) {
                bail!("migration {id} was cancelled: keys and slots not yet moved stay with their source group");
            }
            for (id, _, target) in finished {
                println!("migration {id} done: its slots are served by group {target}");
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let active: Vec<String> = ids
                .iter()
                .filter_map(|id| topo.migrations.iter().find(|m| m.id == *id && m.state.is_active()))
                .map(|m| format!("migration {} is {}", m.id, state_name(m.state)))
                .collect();
            bail!(
                "{} after {}s; it goes on (follow it with `zedis cluster migrations`)",
                active.join(", "),
                timeout_s.unwrap_or(0)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Without --wait the whole --timeout is for the leader to take the request; with it, the
/// request gets at most the default and the timeout is for following the migration.
fn request_timeout(follow: &FollowArgs) -> Duration {
    let secs = follow.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT_S);
    Duration::from_secs(if follow.wait { secs.min(DEFAULT_REQUEST_TIMEOUT_S) } else { secs })
}

fn check_rate(rate: Option<u32>) -> Result<()> {
    if rate == Some(0) {
        bail!("--rate 0 would never move a key: give at least 1 key/s, or leave it out for no limit");
    }
    Ok(())
}

/// A refusal computed here, as the leader would give it, with the cluster's groups named
/// when a group is unknown.
fn refusal(topo: &Topology, e: TopologyError) -> anyhow::Error {
    let groups = || topo.groups.iter().map(|g| g.id.to_string()).collect::<Vec<_>>().join(", ");
    match e {
        TopologyError::Migration(MigrationError::UnknownGroup(g))
        | TopologyError::Rebalance(RebalanceError::UnknownGroup(g)) => {
            anyhow::anyhow!("no group {g} in cluster {} (its groups are {})", topo.cluster, groups())
        }
        TopologyError::Migration(MigrationError::UnknownMigration(id)) => {
            anyhow::anyhow!("no migration {id} in cluster {} (see `zedis cluster migrations`)", topo.cluster)
        }
        e => e.into(),
    }
}

/// `0-99,200,300-310` → inclusive ranges, sorted; refuses bad syntax, slots out of range,
/// reversed and overlapping ranges.
pub fn parse_slot_ranges(text: &str) -> Result<Vec<(Slot, Slot)>> {
    let max = SLOT_COUNT - 1;
    let slot = |s: &str, part: &str| -> Result<Slot> {
        let n: u64 = s.trim().parse().map_err(|_| {
            anyhow::anyhow!("bad slot range {part:?}: expected N or A-B with slots 0-{max}, e.g. --slots 0-99,200")
        })?;
        if n > u64::from(max) {
            bail!("slot {n} is out of range: slots are 0-{max}");
        }
        Ok(n as Slot)
    };
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            bail!("empty slot range in {text:?}: expected N or A-B, comma separated, e.g. --slots 0-99,200");
        }
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (slot(a, part)?, slot(b, part)?),
            None => {
                let s = slot(part, part)?;
                (s, s)
            }
        };
        if from > to {
            bail!("slot range {part} is reversed: give the lower slot first ({to}-{from})");
        }
        ranges.push((from, to));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((a1, b1), (a2, b2)) = (pair[0], pair[1]);
        if a2 <= b1 {
            bail!("slot ranges {a1}-{b1} and {a2}-{b2} overlap");
        }
    }
    Ok(ranges)
}

/// `1=2,3=0` → weights by group.
pub fn parse_weights(text: &str) -> Result<BTreeMap<GroupId, u32>> {
    let mut weights = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad weight {part:?}: expected GROUP=WEIGHT, e.g. --weights 1=2,3=0");
        let (group, weight) = part.split_once('=').with_context(bad)?;
        let group: GroupId = group.trim().parse().with_context(bad)?;
        let weight: u32 = weight.trim().parse().with_context(bad)?;
        if weights.insert(group, weight).is_some() {
            bail!("group {group} is given two weights");
        }
    }
    if weights.is_empty() {
        bail!("--weights is empty: expected GROUP=WEIGHT[,GROUP=WEIGHT...], e.g. 1=2,3=0");
    }
    Ok(weights)
}

/// `group 1: 5462 slots, group 2: 5461 slots`.
fn ownership(topo: &Topology) -> String {
    topo.groups
        .iter()
        .map(|g| format!("group {}: {} slots", g.id, topo.slots.count(g.id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `rebalance --dry-run` prints: the migrations `planned` would start, and the slots
/// each group owns before and after.
fn render_plan(before: &Topology, planned: &Topology, ids: &[MigrationId]) -> String {
    let mut after = before.slots.clone();
    let mut out = format!(
        "dry run (nothing queued): rebalance would start {} migration{}\n",
        ids.len(),
        if ids.len() == 1 { "" } else { "s" }
    );
    for m in planned.migrations.iter().filter(|m| ids.contains(&m.id)) {
        out.push_str(&format!("  {} ({} slots)\n", summary(m), m.total_slots()));
        for mv in &m.pending {
            after.assign(mv.from, mv.to, m.target);
        }
    }
    out.push_str("slots per group, now -> afterwards:\n");
    for g in &before.groups {
        out.push_str(&format!("  group {}: {} -> {}\n", g.id, before.slots.count(g.id), after.count(g.id)));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use zedis_topology::{ClusterSettings, GroupSpec, Server};

    use super::*;
    use crate::cluster_cmd::ClusterCommand;

    #[test]
    fn slot_ranges() {
        let ok: &[(&str, &[(Slot, Slot)])] = &[
            ("0-99", &[(0, 99)]),
            ("7", &[(7, 7)]),
            (" 300-310, 0-99 ,200", &[(0, 99), (200, 200), (300, 310)]),
            ("16383", &[(16383, 16383)]),
            ("5-5", &[(5, 5)]),
        ];
        for (text, want) in ok {
            assert_eq!(parse_slot_ranges(text).unwrap(), want.to_vec(), "{text}");
        }
        let bad = [
            ("5-1", "reversed"),
            ("0-99999", "slot 99999 is out of range: slots are 0-16383"),
            ("16384", "out of range"),
            ("abc", "bad slot range \"abc\""),
            ("-5", "bad slot range \"-5\""),
            ("1-2-3", "bad slot range"),
            ("0-99,,5", "empty slot range"),
            ("", "empty slot range"),
            ("0-99,50-60", "overlap"),
        ];
        for (text, needle) in bad {
            let err = parse_slot_ranges(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn weights() {
        assert_eq!(parse_weights("1=2, 3=0").unwrap(), [(1, 2), (3, 0)].into());
        for (text, needle) in [
            ("1", "bad weight \"1\""),
            ("a=1", "bad weight"),
            ("1=-1", "bad weight"),
            ("1=1,1=2", "two weights"),
            ("", "empty"),
        ] {
            let err = format!("{:#}", parse_weights(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClusterCommand,
    }

    #[test]
    fn command_lines() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        match parse("zedis migrate --slots 0-99 --to 2 --rate 500 --wait --timeout 60").unwrap().cmd {
            ClusterCommand::Migrate(a) => {
                assert_eq!((a.slots.as_str(), a.to, a.rate.rate), ("0-99", 2, Some(500)));
                assert_eq!((a.follow.wait, a.follow.timeout), (true, Some(60)));
                assert_eq!(request_timeout(&a.follow), Duration::from_secs(15));
            }
            other => panic!("{other:?}"),
        }
        match parse("zedis rebalance --weights 1=2 --dry-run").unwrap().cmd {
            ClusterCommand::Rebalance(a) => assert_eq!((a.weights.as_deref(), a.dry_run), (Some("1=2"), true)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("zedis migrations --json").unwrap().cmd, ClusterCommand::Migrations(a) if a.json));
        assert!(matches!(
            parse("zedis migration cancel 7").unwrap().cmd,
            ClusterCommand::Migration(MigrationCommand::Cancel(MigrationIdArgs { id: 7, .. }))
        ));
        assert!(parse("zedis migration begin 7").is_err(), "begin is the controller's step");
        assert!(parse("zedis migrate --to 2").is_err(), "--slots is required");
        let follow = FollowArgs { wait: false, timeout: Some(40) };
        assert_eq!(request_timeout(&follow), Duration::from_secs(40));
        let follow = FollowArgs { wait: true, timeout: Some(5) };
        assert_eq!(request_timeout(&follow), Duration::from_secs(5));
    }

    #[test]
    fn dry_run_plan_and_refusals() {
        let spec = |a: &str| GroupSpec { servers: vec![Server::new(a)] };
        let t = Topology::new("c", &[spec("h:1"), spec("h:2")], ClusterSettings::default()).unwrap();
        let (t, _) = t.add_group(&spec("h:3")).unwrap();
        let (planned, ids) = t.rebalance(&BTreeMap::new(), None).unwrap();
        let text = render_plan(&t, &planned, &ids);
        assert!(text.contains("would start 1 migration\n"), "{text}");
        assert!(text.contains("slots 5462-8191 from group 1 and 13653-16383 from group 2 to group 3 (5461 slots)"));
        assert!(text.contains("group 3: 0 -> 5461"), "{text}");
        let err = refusal(&t, t.start_migration(&[(0, 9)], 9, None).unwrap_err()).to_string();
        assert_eq!(err, "no group 9 in cluster c (its groups are 1, 2, 3)");
        let err = refusal(&t, t.migration_action(4, MigrationAction::Pause).unwrap_err()).to_string();
        assert!(err.starts_with("no migration 4"), "{err}");
        assert_eq!(event_migration_id("migration 12: slots 0-9 from group 1 to group 2"), Some(12));
        assert_eq!(event_migration_id("group 3 added"), None);
    }
}
