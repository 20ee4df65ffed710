use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use zedis_coord::{EventLog, LeaderRecord, ObserverBoard, RequestQueue, TopologyStore};
use zedis_topology::settings::{canonical_setting, human_bytes, is_memory_setting};
use zedis_topology::{
    now_ms, AdminOp, ClusterSettings, Event, EventKind, GroupSpec, ObserverReport, Outcome, Server, Topology,
    DEFAULT_PRIORITY,
};

use crate::common::{check_redis, parse_addr_list, Global};
use crate::migrate_cmd;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster; each --group lists its servers, master first. Slots are spread evenly.
    Create(CreateArgs),
    /// Add a group of servers (master first); it gets slots by `rebalance` or `migrate`.
    AddGroup(AddGroupArgs),
    /// Add a replica to a group.
    AddServer(AddServerArgs),
    /// Remove a replica from its group (fail a master over first).
    RemoveServer(RemoveServerArgs),
    /// Set a server's promotion priority: lower is preferred, 0 never promotes.
    SetPriority(SetPriorityArgs),
    /// Planned switchover of a group's master that loses no acknowledged write.
    Failover(FailoverArgs),
    /// Show the recent event history (failovers, admin actions).
    Events(EventsArgs),
    /// Move slots to a group online, while clients keep working.
    ///
    /// Keys move in the background while clients keep reading and writing them through the
    /// proxies (and `zedis::Cluster`); `--rate` throttles the keys moved per second. Prints
    /// the migration's id; `--wait` follows it until it is done. `cluster migrations` shows
    /// its progress, `cluster migration pause|resume|cancel ID` steers it.
    Migrate(migrate_cmd::MigrateArgs),
    /// Spread the slots over the groups by weight, e.g. after `add-group`.
    ///
    /// Every group weighs 1 unless `--weights` says otherwise; weight 0 empties a group. Starts
    /// one online migration per receiving group, moving as few slots as possible (a group
    /// above its share gives away its highest slots). `--dry-run` only prints the plan.
    Rebalance(migrate_cmd::RebalanceArgs),
    /// List slot migrations, running and recently finished.
    ///
    /// Per migration: state, source and target groups, slots done, keys and bytes moved,
    /// rate, ETA, last error and age (keys, rate and ETA come from the controller's progress
    /// record, absent until its driver publishes one).
    Migrations(migrate_cmd::MigrationsArgs),
    /// Pause, resume or cancel a slot migration.
    #[command(subcommand)]
    Migration(migrate_cmd::MigrationCommand),
    /// Redis settings for every server (maxmemory, eviction policy, ...), kept in place by
    /// the controller on servers that join, restart or are promoted.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Set Redis settings on every server: `set maxmemory 256mb maxmemory-policy allkeys-lru`.
    ///
    /// Only settings that are safe on a live fleet are accepted: maxmemory, maxmemory-policy,
    /// maxmemory-samples, maxmemory-eviction-tenacity, timeout, tcp-keepalive, hz, dynamic-hz,
    /// active-expire-effort, activerehashing, lazyfree-*, lfu-*, slowlog-*,
    /// latency-monitor-threshold, latency-tracking, busy-reply-threshold,
    /// notify-keyspace-events, tracking-table-max-keys, and the hash/list/set/zset/stream/hll
    /// encoding limits. Settings zedis manages (replication, min-replicas-*), and those that
    /// could lock out the controller, break replication or write files (requirepass,
    /// maxclients, dir, save, appendonly, port, ...), are refused with the reason.
    Set(ConfigSetArgs),
    /// Stop enforcing Redis settings (servers keep their current values until restarted).
    Unset(ConfigUnsetArgs),
    /// Show the Redis settings set for every server, and where they are not applied yet.
    Get(ConfigGetArgs),
}

#[derive(Args, Debug)]
pub struct ConfigSetArgs {
    /// Pairs of setting name and value. Memory sizes take Redis's units (b, k, kb, m, mb, g, gb).
    #[arg(required = true, num_args = 2.., value_name = "NAME VALUE", allow_negative_numbers = true)]
    pub pairs: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct ConfigUnsetArgs {
    /// Setting names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct ConfigGetArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A group's servers, `HOST:PORT[,HOST:PORT...]`, master first. Repeat for each group.
    #[arg(long = "group", required = true, value_name = "ADDRS")]
    pub groups: Vec<String>,
    /// `min-replicas-to-write` for every master (0 = off).
    #[arg(long, default_value_t = ClusterSettings::default().min_replicas_to_write)]
    pub min_replicas_to_write: u32,
    /// Milliseconds without a good probe before an observer votes a server down.
    #[arg(long, default_value_t = ClusterSettings::default().down_after_ms, value_name = "MS")]
    pub down_after_ms: u64,
    /// Milliseconds between probes of each server.
    #[arg(long, default_value_t = ClusterSettings::default().probe_interval_ms, value_name = "MS")]
    pub probe_interval_ms: u64,
    /// Do not fail over automatically (planned switchovers still work).
    #[arg(long)]
    pub no_auto_failover: bool,
    /// Skip the reachability check of the servers.
    #[arg(long)]
    pub no_check: bool,
}

#[derive(Args, Debug)]
pub struct AddGroupArgs {
    /// Servers, `HOST:PORT[,HOST:PORT...]`, master first.
    pub servers: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct AddServerArgs {
    #[arg(long)]
    pub group: u32,
    /// `HOST:PORT` of the new replica.
    pub addr: String,
    #[arg(long, default_value_t = DEFAULT_PRIORITY)]
    pub priority: u32,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct RemoveServerArgs {
    pub addr: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct SetPriorityArgs {
    pub addr: String,
    pub priority: u32,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct FailoverArgs {
    #[arg(long)]
    pub group: u32,
    /// The replica to promote (default: the best in-sync replica).
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// How many of the newest events.
    #[arg(short, long, default_value_t = 30)]
    pub n: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Seconds to wait for the controller leader to take the request.
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    pub timeout: u64,
}

pub async fn run(global: &Global, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Create(args) => create(global, args).await,
        ClusterCommand::AddGroup(args) => {
            let addrs = parse_addr_list(&args.servers)?;
            precheck(global, &addrs).await?;
            let servers = addrs.into_iter().map(Server::new).collect();
            submit(global, AdminOp::AddGroup { servers }, &args.wait).await
        }
        ClusterCommand::AddServer(args) => {
            let addr = zedis_topology::parse_addr(&args.addr)?;
            precheck(global, std::slice::from_ref(&addr)).await?;
            let server = Server { addr, priority: args.priority };
            submit(global, AdminOp::AddServer { group: args.group, server }, &args.wait).await
        }
        ClusterCommand::RemoveServer(args) => {
            let addr = zedis_topology::parse_addr(&args.addr)?;
            submit(global, AdminOp::RemoveServer { addr }, &args.wait).await
        }
        ClusterCommand::SetPriority(args) => {
            let addr = zedis_topology::parse_addr(&args.addr)?;
            submit(global, AdminOp::SetPriority { addr, priority: args.priority }, &args.wait).await
        }
        ClusterCommand::Failover(args) => {
            let to = args.to.as_deref().map(zedis_topology::parse_addr).transpose()?;
            submit(global, AdminOp::Failover { group: args.group, to }, &args.wait).await
        }
        ClusterCommand::Events(args) => events(global, args).await,
        ClusterCommand::Migrate(args) => migrate_cmd::migrate(global, args).await,
        ClusterCommand::Rebalance(args) => migrate_cmd::rebalance(global, args).await,
        ClusterCommand::Migrations(args) => migrate_cmd::migrations(global, args).await,
        ClusterCommand::Migration(cmd) => migrate_cmd::migration(global, cmd).await,
        ClusterCommand::Config(ConfigCommand::Set(args)) => {
            let settings = parse_setting_pairs(&args.pairs)?;
            submit(global, AdminOp::SetRedisConfig { settings }, &args.wait).await
        }
        ClusterCommand::Config(ConfigCommand::Unset(args)) => {
            submit(global, AdminOp::UnsetRedisConfig { names: args.names }, &args.wait).await
        }
        ClusterCommand::Config(ConfigCommand::Get(args)) => config_get(global, args).await,
    }
}

/// `NAME VALUE [NAME VALUE]...` → settings, each checked against the safe list here so a
/// refused one fails before anything is queued (the leader checks again).
fn parse_setting_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    if pairs.len() & 1 == 1 {
        bail!(
            "expected pairs of NAME VALUE, got {} words (the last name {:?} has no value)",
            pairs.len(),
            pairs[pairs.len() - 1]
        );
    }
    let mut settings = BTreeMap::new();
    for pair in pairs.chunks(2) {
        let (name, _) = canonical_setting(&pair[0], &pair[1])?;
        if settings.insert(name.clone(), pair[1].clone()).is_some() {
            bail!("Redis setting {name} is given twice");
        }
    }
    Ok(settings)
}

/// Reports older than this (by their writer's clock) do not count for "applied".
const FRESH_MS: u64 = 5000;

/// What `cluster config get --json` prints.
#[derive(Debug, Serialize, PartialEq)]
struct ConfigView {
    cluster: String,
    epoch: u64,
    /// Desired settings, canonical (as `CONFIG GET` reports them).
    settings: BTreeMap<String, String>,
    /// Servers of the cluster.
    servers: usize,
    /// Per setting, the servers that do not report the desired value yet; `None` when no
    /// controller reports what the servers run.
    not_applied: Option<BTreeMap<String, Vec<String>>>,
}

/// Pure: the desired settings against what `report` saw on each server.
fn config_view(topology: &Topology, report: Option<&ObserverReport>) -> ConfigView {
    let servers = topology.server_addrs();
    let not_applied = report.map(|r| {
        topology
            .settings
            .redis
            .iter()
            .map(|(name, want)| {
                let behind: Vec<String> = servers
                    .iter()
                    .filter(|addr| r.servers.get(*addr).and_then(|o| o.config.get(name)) != Some(want))
                    .cloned()
                    .collect();
                (name.clone(), behind)
            })
            .collect()
    });
    ConfigView {
        cluster: topology.cluster.clone(),
        epoch: topology.epoch,
        settings: topology.settings.redis.clone(),
        servers: servers.len(),
        not_applied,
    }
}

fn render_config(view: &ConfigView) -> String {
    if view.settings.is_empty() {
        return format!(
            "cluster {} (epoch {}): no Redis settings set; set some with `zedis cluster config set NAME VALUE`\n",
            view.cluster, view.epoch
        );
    }
    let mut out = format!("cluster {} (epoch {}): Redis settings for every server\n", view.cluster, view.epoch);
    let width = view.settings.keys().map(|k| k.len()).max().unwrap_or(0);
    for (name, value) in &view.settings {
        let shown = match value.parse::<u64>() {
            Ok(bytes) if is_memory_setting(name) => format!("{value} ({})", human_bytes(bytes)),
            _ if value.is_empty() => "\"\"".to_string(),
            _ => value.clone(),
        };
        let applied = match view.not_applied.as_ref().and_then(|n| n.get(name)) {
            None => "(no controller reports the servers)".to_string(),
            Some(behind) if behind.is_empty() => format!("applied on all {} servers", view.servers),
            Some(behind) => format!("not yet on {}", behind.join(", ")),
        };
        out.push_str(&format!("  {name:<width$}  {shown:<24} {applied}\n"));
    }
    out
}

async fn config_get(global: &Global, args: ConfigGetArgs) -> Result<()> {
    let zk = global.connect().await?;
    let paths = global.paths()?;
    let topo = TopologyStore::new(zk.clone(), paths.clone()).read().await?;
    let leader = LeaderRecord::read(&zk, &paths).await?.map(|r| r.id);
    let now = now_ms();
    let reports: Vec<ObserverReport> = ObserverBoard::new(zk, paths)
        .read_all()
        .await?
        .into_iter()
        .filter_map(|p| p.report)
        .filter(|r| now.saturating_sub(r.time_ms) <= FRESH_MS)
        .collect();
    // The leader's view is the one it acts on; any fresh one will do without a leader.
    let report = leader.and_then(|l| reports.iter().find(|r| r.observer == l)).or(reports.first());
    let view = config_view(&topo.value, report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render_config(&view));
    }
    Ok(())
}

async fn create(global: &Global, args: CreateArgs) -> Result<()> {
    let mut specs = Vec::new();
    for g in &args.groups {
        let servers = parse_addr_list(g)?.into_iter().map(Server::new).collect();
        specs.push(GroupSpec { servers });
    }
    let settings = ClusterSettings {
        min_replicas_to_write: args.min_replicas_to_write,
        down_after_ms: args.down_after_ms,
        probe_interval_ms: args.probe_interval_ms,
        auto_failover: !args.no_auto_failover,
        ..ClusterSettings::default()
    };
    let topology = Topology::new(&global.cluster, &specs, settings)?;
    if !args.no_check {
        for addr in topology.server_addrs() {
            check_redis(&addr, global.redis_password.as_deref()).await?;
        }
    }
    let zk = global.connect().await?;
    let paths = global.paths()?;
    TopologyStore::new(zk.clone(), paths.clone()).create(&topology).await?;
    let event = Event::new(
        EventKind::ClusterCreated,
        topology.epoch,
        "cli",
        format!("cluster {} created with {} groups", global.cluster, specs.len()),
    );
    let _ = EventLog::new(zk, &paths).append(&event).await;
    println!("cluster {} created at epoch {} with {} groups", global.cluster, topology.epoch, specs.len());
    Ok(())
}

/// Clear errors before queueing: the cluster exists, new servers answer as Redis and are free.
async fn precheck(global: &Global, addrs: &[String]) -> Result<()> {
    let zk = global.connect().await?;
    let topo = TopologyStore::new(zk, global.paths()?).read().await?;
    for addr in addrs {
        if let Some(g) = topo.value.group_of(addr) {
            bail!("server {addr} is already in group {}", g.id);
        }
        check_redis(addr, global.redis_password.as_deref()).await?;
    }
    Ok(())
}

async fn submit(global: &Global, op: AdminOp, wait: &WaitArgs) -> Result<()> {
    let outcome = request(global, op, Duration::from_secs(wait.timeout)).await?;
    println!("{}", outcome.message);
    Ok(())
}

/// Queues `op` for the controller leader and waits up to `timeout` for it to be taken; the
/// leader's refusal is an error.
pub async fn request(global: &Global, op: AdminOp, timeout: Duration) -> Result<Outcome> {
    let zk = global.connect().await?;
    let paths = global.paths()?;
    // Fails with a clear error when the cluster does not exist.
    TopologyStore::new(zk.clone(), paths.clone()).read().await?;
    let outcome = RequestQueue::new(zk, &paths).submit(op, "cli", timeout).await.context("request not handled")?;
    if !outcome.ok {
        bail!("{}", outcome.message);
    }
    Ok(outcome)
}

async fn events(global: &Global, args: EventsArgs) -> Result<()> {
    let zk = global.connect().await?;
    let paths = global.paths()?;
    TopologyStore::new(zk.clone(), paths.clone()).read().await?;
    let events = EventLog::new(zk, &paths).recent(args.n).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    for e in events {
        let kind = serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        println!("{}  epoch {:<4} {:<20} {}", format_time(e.time_ms), e.epoch, kind, e.message);
    }
    Ok(())
}

/// `HH:MM:SS.mmm` UTC, enough to read a failover's steps.
fn format_time(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}Z", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use zedis_topology::ServerObservation;

    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn setting_pairs() {
        let got = parse_setting_pairs(&words("maxmemory 64mb MAXMEMORY-POLICY allkeys-lru")).unwrap();
        assert_eq!(got.get("maxmemory").map(String::as_str), Some("64mb"));
        assert_eq!(got.get("maxmemory-policy").map(String::as_str), Some("allkeys-lru"));
        for (input, needle) in [
            ("maxmemory 64mb timeout", "pairs of NAME VALUE"),
            ("dir /tmp", "\"dir\""),
            ("maxmemory 1mb maxmemory 2mb", "given twice"),
            ("maxmemory lots", "maxmemory"),
            ("hash-max-ziplist-entries 1 hash-max-listpack-entries 2", "given twice"),
        ] {
            let err = format!("{:#}", parse_setting_pairs(&words(input)).unwrap_err());
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn config_view_tells_where_settings_are_not_applied() {
        let specs = [GroupSpec { servers: vec![Server::new("h:1"), Server::new("h:2")] }];
        let mut t = Topology::new("c", &specs, ClusterSettings::default()).unwrap();
        t.settings.redis.insert("maxmemory".into(), "67108864".into());
        t.settings.redis.insert("maxmemory-policy".into(), "allkeys-lru".into());
        let seen = |pairs: &[(&str, &str)]| ServerObservation {
            ok: true,
            config: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        let report = ObserverReport {
            observer: "c1".into(),
            servers: [
                ("h:1".to_string(), seen(&[("maxmemory", "67108864"), ("maxmemory-policy", "allkeys-lru")])),
                ("h:2".to_string(), seen(&[("maxmemory", "0"), ("maxmemory-policy", "allkeys-lru")])),
            ]
            .into(),
            ..Default::default()
        };
        let view = config_view(&t, Some(&report));
        let not_applied = view.not_applied.clone().unwrap();
        assert_eq!(not_applied["maxmemory"], vec!["h:2".to_string()]);
        assert!(not_applied["maxmemory-policy"].is_empty());
        let text = render_config(&view);
        assert!(text.contains("67108864 (64mb)") && text.contains("not yet on h:2"), "{text}");
        assert!(text.contains("applied on all 2 servers"), "{text}");
        assert_eq!(config_view(&t, None).not_applied, None);
        assert!(render_config(&config_view(&t, None)).contains("no controller reports"));
    }
}
