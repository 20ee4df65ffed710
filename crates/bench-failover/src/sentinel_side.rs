//! Redis Sentinel: one master and two replicas set up with `REPLICAOF`, watched by three
//! `redis-sentinel` processes with quorum 2 and the same detection time as zedis. The client
//! learns the master with `SENTINEL get-master-addr-by-name`, as a Sentinel client does.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use zedis_testkit::RedisServer;

use crate::measure::{first_write, Discovery, Sample};
use crate::proc::ChildProcess;
use crate::redis_io::{check_master, check_replica_linked, ConnPool, Waiter};
use crate::zedis_side::redis_options;
use crate::{Settings, WorkDir};

/// The monitored master's name.
const NAME: &str = "m";
const SENTINELS: usize = 3;
const QUORUM: usize = 2;
const FAILOVER_TIMEOUT_MS: u64 = 10_000;

/// Every process of the Sentinel side. Fields drop in order: sentinels first.
pub struct SentinelSide {
    sentinels: Vec<ChildProcess>,
    sentinel_addrs: Vec<String>,
    servers: Vec<RedisServer>,
    pool: ConnPool,
    settings: Settings,
    dir: WorkDir,
}

/// Asks every sentinel, as a client that tries all of them would; every address named is
/// tried (first the ones most sentinels name), which is the fastest a Sentinel client can be.
struct SentinelDiscovery<'a> {
    sentinels: &'a [String],
    pool: ConnPool,
}

impl Discovery for SentinelDiscovery<'_> {
    async fn masters(&mut self) -> Result<Vec<String>, String> {
        let mut votes: Vec<(String, usize)> = Vec::new();
        let mut last_error = None;
        for sentinel in self.sentinels {
            match master_addr(&mut self.pool, sentinel).await {
                Ok(addr) => match votes.iter_mut().find(|(a, _)| *a == addr) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((addr, 1)),
                },
                Err(e) => last_error = Some(e),
            }
        }
        if votes.is_empty() {
            return Err(last_error.unwrap_or_else(|| "no sentinel answered".into()));
        }
        votes.sort_by_key(|v| std::cmp::Reverse(v.1));
        Ok(votes.into_iter().map(|(a, _)| a).collect())
    }
}

/// `SENTINEL get-master-addr-by-name m` as `host:port`.
async fn master_addr(pool: &mut ConnPool, sentinel: &str) -> Result<String, String> {
    let reply: Option<(String, String)> =
        pool.query(sentinel, redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(NAME)).await?;
    let (host, port) = reply.ok_or_else(|| format!("{sentinel}: does not know master {NAME}"))?;
    Ok(format!("{host}:{port}"))
}

/// A flat `field value field value ...` reply as a map.
fn fields(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

fn field<'a>(map: &'a HashMap<String, String>, key: &str) -> &'a str {
    map.get(key).map(String::as_str).unwrap_or("?")
}

impl SentinelSide {
    /// Starts the servers and sentinels and waits until every sentinel knows the master,
    /// both replicas and the two other sentinels.
    pub async fn start(settings: &Settings) -> Result<SentinelSide> {
        let dir = WorkDir::create("zedis-bench-sentinel-", settings.keep_dirs)?;
        let servers: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(redis_options()))
            .collect::<Result<_, _>>()
            .context("redis-server does not start")?;
        let master = servers[0].addr();
        let mut pool = ConnPool::default();
        for replica in &servers[1..] {
            pool.query::<()>(&replica.addr(), redis::cmd("REPLICAOF").arg("127.0.0.1").arg(servers[0].port()))
                .await
                .map_err(anyhow::Error::msg)?;
        }

        let mut sentinels = Vec::new();
        let mut sentinel_addrs = Vec::new();
        for i in 0..SENTINELS {
            let port = zedis_testkit::free_port()?;
            let sdir = dir.path().join(format!("sentinel-{i}"));
            std::fs::create_dir_all(&sdir)?;
            let conf = sdir.join("sentinel.conf");
            std::fs::write(&conf, sentinel_conf(port, &sdir, servers[0].port(), settings.down_after_ms))?;
            let mut command = Command::new(&settings.sentinel_bin);
            command.arg(&conf).current_dir(&sdir);
            sentinels.push(ChildProcess::spawn(&format!("redis-sentinel {i}"), command, &sdir.join("stdout.log"))?);
            sentinel_addrs.push(format!("127.0.0.1:{port}"));
        }
        let mut side = SentinelSide { sentinels, sentinel_addrs, servers, pool, settings: settings.clone(), dir };
        side.wait_settled(Some(&master), None, "the sentinels to find each other and both replicas").await?;
        Ok(side)
    }

    /// What runs, for the report.
    pub fn describe(&self) -> String {
        let ports: Vec<String> = self.servers.iter().map(|s| s.port().to_string()).collect();
        format!("sentinels {}, redis ports {}", self.sentinel_addrs.join(","), ports.join(","))
    }

    fn logs(&self) -> String {
        let dir = self.dir.path();
        (0..SENTINELS)
            .map(|i| crate::proc::log_tail(&dir.join(format!("sentinel-{i}")).join("sentinel.log")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the servers replicate from one master, links up, and every sentinel names
    /// that master, sees no failover in progress, knows the two other sentinels and lists
    /// every other server as a healthy replica (the restarted old master included); returns
    /// that master. `expected` is the master they must name; `None` takes whichever master
    /// the sentinels name (after a failover Sentinel may fail over once more before it
    /// settles). `down` is a server that is not running and is left out.
    async fn wait_settled(&mut self, expected: Option<&str>, down: Option<&str>, what: &str) -> Result<String> {
        let waiter = Waiter::new(what, self.settings.timeout);
        loop {
            for s in &mut self.sentinels {
                s.check_running()?;
            }
            match self.check_settled(expected, down).await {
                Ok(master) => return Ok(master),
                Err(missing) => waiter.pause(&missing).await.map_err(|e| e.context(self.logs()))?,
            }
        }
    }

    async fn check_settled(&mut self, expected: Option<&str>, down: Option<&str>) -> Result<String, String> {
        let master = match expected {
            Some(m) => m.to_string(),
            None => master_addr(&mut self.pool, &self.sentinel_addrs[0]).await?,
        };
        let master = master.as_str();
        let replicas: Vec<String> =
            self.servers.iter().map(RedisServer::addr).filter(|a| a != master && Some(a.as_str()) != down).collect();
        for replica in &replicas {
            check_replica_linked(&mut self.pool, replica, master).await?;
        }
        check_master(&mut self.pool, master, replicas.len()).await?;
        for sentinel in self.sentinel_addrs.clone() {
            let named = master_addr(&mut self.pool, &sentinel).await?;
            if named != master {
                return Err(format!("sentinel {sentinel} names master {named}, not {master}"));
            }
            let info = fields(self.pool.query(&sentinel, redis::cmd("SENTINEL").arg("MASTER").arg(NAME)).await?);
            let flags = field(&info, "flags");
            if flags != "master" {
                return Err(format!("sentinel {sentinel} has master flags {flags}"));
            }
            let others = field(&info, "num-other-sentinels");
            if others != (SENTINELS - 1).to_string() {
                return Err(format!("sentinel {sentinel} knows {others} other sentinels"));
            }
            let listed: Vec<Vec<String>> =
                self.pool.query(&sentinel, redis::cmd("SENTINEL").arg("REPLICAS").arg(NAME)).await?;
            for replica in &replicas {
                let entry = listed
                    .iter()
                    .cloned()
                    .map(fields)
                    .find(|f| format!("{}:{}", field(f, "ip"), field(f, "port")) == *replica)
                    .ok_or_else(|| format!("sentinel {sentinel} does not list replica {replica}"))?;
                let flags = field(&entry, "flags");
                let link = field(&entry, "master-link-status");
                if flags != "slave" || link != "ok" {
                    return Err(format!("sentinel {sentinel} sees replica {replica} with flags {flags}, link {link}"));
                }
            }
        }
        Ok(master.to_string())
    }

    /// One failover: kill -9 the master, time the first write to the new one, restart the
    /// old server (a sentinel makes it a replica) and wait until everything is settled.
    pub async fn run_once(&mut self, run: usize) -> Result<Sample> {
        let old = master_addr(&mut self.pool, &self.sentinel_addrs[0]).await.map_err(anyhow::Error::msg)?;
        let index = self
            .servers
            .iter()
            .position(|s| s.addr() == old)
            .with_context(|| format!("the sentinels' master {old} is none of ours"))?;
        let key = format!("bench:sentinel:{run}");
        let mut writer = ConnPool::default();
        writer.set(&old, &key, "before-failover").await.map_err(anyhow::Error::msg)?;
        let mut discovery = SentinelDiscovery { sentinels: &self.sentinel_addrs, pool: ConnPool::default() };
        // Connected to every sentinel before the kill, as a real client would be.
        discovery.masters().await.map_err(anyhow::Error::msg)?;

        let killed_at = Instant::now();
        self.servers[index].kill9();
        let sample = first_write(&mut discovery, &mut writer, &old, killed_at, self.settings.timeout, &key)
            .await
            .map_err(|e| e.context(self.logs()))?;

        // Let the failover finish before the old server comes back, as it would in practice
        // (and so the restart cannot disturb the failover).
        self.wait_settled(None, Some(&old), "the failover to finish").await?;
        self.servers[index].restart().with_context(|| format!("restarting {old}"))?;
        let settled = self.wait_settled(None, None, &format!("{old} to rejoin as a replica")).await?;
        Ok(Sample { settled_master: settled, ..sample })
    }
}

fn sentinel_conf(port: u16, dir: &Path, master_port: u16, down_after_ms: u64) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir {dir}\n\
         logfile {log}\n\
         sentinel monitor {NAME} 127.0.0.1 {master_port} {QUORUM}\n\
         sentinel down-after-milliseconds {NAME} {down_after_ms}\n\
         sentinel failover-timeout {NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {NAME} 1\n",
        dir = dir.display(),
        log = dir.join("sentinel.log").display(),
    )
}
