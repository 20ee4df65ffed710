use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use zedis_coord::{EventLog, RequestQueue, TopologyStore};
use zedis_topology::{AdminOp, ClusterSettings, Event, EventKind, GroupSpec, Server, Topology, DEFAULT_PRIORITY};

use crate::common::{check_redis, parse_addr_list, Global};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create a cluster; each --group lists its servers, master first. Slots are spread evenly.
    Create(CreateArgs),
    /// Add a group of servers (master first); it gets slots by migration.
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
    }
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
    let zk = global.connect().await?;
    let paths = global.paths()?;
    // Fails with a clear error when the cluster does not exist.
    TopologyStore::new(zk.clone(), paths.clone()).read().await?;
    let outcome = RequestQueue::new(zk, &paths)
        .submit(op, "cli", Duration::from_secs(wait.timeout))
        .await
        .context("request not handled")?;
    if !outcome.ok {
        bail!("{}", outcome.message);
    }
    println!("{}", outcome.message);
    Ok(())
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
