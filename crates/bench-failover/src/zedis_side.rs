//! zedis: ZooKeeper, one group of three Redis servers, one controller (or `--controllers N`). The client learns the
//! master by reading the topology from ZooKeeper, as a zedis client does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use zedis_coord::{ClusterPaths, TopologyStore, Zk, ZkOptions};
use zedis_testkit::{RedisOptions, RedisServer, ZkServer};
use zedis_topology::Topology;

use crate::measure::{first_write, Discovery, Sample};
use crate::proc::ChildProcess;
use crate::redis_io::{check_master, check_replica_linked, ConnPool, Waiter};
use crate::{Settings, WorkDir};

const CLUSTER: &str = "default";
const ROOT: &str = "/zedis";

/// Every process of the zedis side. Fields drop in order: the controllers first, ZooKeeper last.
pub struct ZedisSide {
    controllers: Vec<ChildProcess>,
    servers: Vec<RedisServer>,
    store: TopologyStore,
    zk: ZkServer,
    pool: ConnPool,
    settings: Settings,
    _dir: WorkDir,
}

/// Reads the topology, as a zedis client does.
struct TopologyDiscovery<'a> {
    store: &'a TopologyStore,
}

impl Discovery for TopologyDiscovery<'_> {
    async fn masters(&mut self) -> Result<Vec<String>, String> {
        let topo = self.store.read().await.map_err(|e| e.to_string())?;
        Ok(vec![group_master(&topo.value)?])
    }
}

fn group_master(topo: &Topology) -> Result<String, String> {
    topo.groups.first().map(|g| g.master.clone()).ok_or_else(|| "the topology has no group".to_string())
}

/// `$ZEDIS_BIN`, or `zedis` next to this executable (both are built into `target/release`).
pub fn zedis_binary(flag: Option<PathBuf>) -> Result<PathBuf> {
    let path = match flag {
        Some(path) => path,
        None => {
            let exe = std::env::current_exe().context("cannot find this executable's path")?;
            exe.parent().unwrap_or(Path::new(".")).join("zedis")
        }
    };
    if !path.is_file() {
        bail!(
            "zedis binary {} not found: build it with `cargo build --release -p zedis-cli`, or set ZEDIS_BIN",
            path.display()
        );
    }
    Ok(path)
}

impl ZedisSide {
    /// Starts everything and waits until both replicas are linked to the master.
    pub async fn start(settings: &Settings) -> Result<ZedisSide> {
        let dir = WorkDir::create("zedis-bench-failover-", settings.keep_dirs)?;
        // Blocking starts (they wait for the servers to answer) on the main thread: nothing
        // is being measured yet, and the runtime's workers keep running.
        let zk = ZkServer::start().context("ZooKeeper does not start")?;
        let servers = start_redis_group().context("redis-server does not start")?;
        let addrs: Vec<String> = servers.iter().map(RedisServer::addr).collect();

        let output = Command::new(&settings.zedis_bin)
            .args(["--zk", &zk.connect_string(), "--root", ROOT, "--cluster", CLUSTER, "cluster", "create"])
            .args(["--group", &addrs.join(",")])
            .args(["--down-after-ms", &settings.down_after_ms.to_string()])
            .output()
            .with_context(|| format!("cannot run {}", settings.zedis_bin.display()))?;
        if !output.status.success() {
            bail!(
                "zedis cluster create failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }

        let mut controllers = Vec::new();
        for i in 1..=settings.controllers {
            // One controller is `bench`, as in the brief; more are `bench-1`, `bench-2`, ...
            let id = if settings.controllers == 1 { "bench".to_string() } else { format!("bench-{i}") };
            let mut command = Command::new(&settings.zedis_bin);
            command.args(["--zk", &zk.connect_string(), "--root", ROOT, "--cluster", CLUSTER, "--log", "info"]).args([
                "controller",
                "--id",
                &id,
            ]);
            let log = dir.path().join(format!("controller-{id}.log"));
            controllers.push(ChildProcess::spawn(&format!("zedis controller {id}"), command, &log)?);
        }

        let zk_session =
            Zk::connect(&ZkOptions::new(zk.connect_string())).await.context("bench client to ZooKeeper")?;
        let store = TopologyStore::new(zk_session, ClusterPaths::new(ROOT, CLUSTER)?);
        let mut side = ZedisSide {
            controllers,
            servers,
            store,
            zk,
            pool: ConnPool::default(),
            settings: settings.clone(),
            _dir: dir,
        };
        side.wait_settled(None, "the zedis controller to link both replicas").await?;
        Ok(side)
    }

    /// What runs, for the report.
    pub fn describe(&self) -> String {
        let ports: Vec<String> = self.servers.iter().map(|s| s.port().to_string()).collect();
        format!(
            "ZooKeeper {}, redis ports {}, {} controller(s)",
            self.zk.connect_string(),
            ports.join(","),
            self.controllers.len()
        )
    }

    fn logs(&self) -> String {
        self.controllers.iter().map(ChildProcess::log_tail).collect::<Vec<_>>().join("\n")
    }

    async fn master(&self) -> Result<String> {
        let topo = self.store.read().await.context("reading the topology")?;
        group_master(&topo.value).map_err(anyhow::Error::msg)
    }

    /// Until the topology's master serves with every other server of the group replicating
    /// from it, link up.
    /// Returns the master it settled on.
    /// `down` is a server that is not running and is left out.
    async fn wait_settled(&mut self, down: Option<&str>, what: &str) -> Result<String> {
        let waiter = Waiter::new(what, self.settings.timeout);
        loop {
            for c in &mut self.controllers {
                c.check_running()?;
            }
            match self.check_settled(down).await {
                Ok(master) => return Ok(master),
                Err(missing) => waiter.pause(&missing).await.map_err(|e| e.context(self.logs()))?,
            }
        }
    }

    async fn check_settled(&mut self, down: Option<&str>) -> Result<String, String> {
        let topo = self.store.read().await.map_err(|e| e.to_string())?.value;
        let group = topo.groups.first().ok_or("the topology has no group")?;
        let replicas: Vec<String> = group.replica_addrs().into_iter().filter(|a| Some(a.as_str()) != down).collect();
        for replica in &replicas {
            check_replica_linked(&mut self.pool, replica, &group.master).await?;
        }
        check_master(&mut self.pool, &group.master, replicas.len()).await?;
        Ok(group.master.clone())
    }

    /// One failover: kill -9 the master, time the first write to the new one, bring the old
    /// server back (the controller makes it a replica) and wait until all are linked again.
    pub async fn run_once(&mut self, run: usize) -> Result<Sample> {
        let old = self.master().await?;
        let index = self
            .servers
            .iter()
            .position(|s| s.addr() == old)
            .with_context(|| format!("the topology's master {old} is none of ours"))?;
        let key = format!("bench:zedis:{run}");
        // The client is connected to the master before it dies, as a real one would be.
        self.pool.set(&old, &key, "before-failover").await.map_err(anyhow::Error::msg)?;

        let killed_at = Instant::now();
        self.servers[index].kill9();
        let mut discovery = TopologyDiscovery { store: &self.store };
        let sample = first_write(&mut discovery, &mut self.pool, &old, killed_at, self.settings.timeout, &key)
            .await
            .map_err(|e| e.context(self.logs()))?;

        // Let the failover finish before the old server comes back, as on the Sentinel side.
        self.wait_settled(Some(&old), "the failover to finish").await?;
        self.servers[index].restart().with_context(|| format!("restarting {old}"))?;
        let settled = self.wait_settled(None, &format!("{old} to rejoin as a replica")).await?;
        Ok(Sample { settled_master: settled, ..sample })
    }
}

fn start_redis_group() -> Result<Vec<RedisServer>> {
    (0..3).map(|_| Ok(RedisServer::start_with(redis_options())?)).collect()
}

/// Full syncs start at once instead of after the default 5 s, for both sides alike.
pub fn redis_options() -> RedisOptions {
    RedisOptions { extra_args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..RedisOptions::default() }
}
