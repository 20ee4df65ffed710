//! Global flags and helpers shared by the subcommands.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use zedis_controller::server_ops::ServerConn;
use zedis_coord::{ClusterPaths, Zk, ZkOptions};

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// ZooKeeper connect string.
    #[arg(long, global = true, env = "ZEDIS_ZK", default_value = "127.0.0.1:2181")]
    pub zk: String,
    /// Cluster name.
    #[arg(long, global = true, env = "ZEDIS_CLUSTER", default_value = "default")]
    pub cluster: String,
    /// Root path of zedis's nodes in ZooKeeper.
    #[arg(long, global = true, env = "ZEDIS_ROOT", default_value = "/zedis")]
    pub root: String,
    /// Give up reaching ZooKeeper after this many milliseconds.
    #[arg(long, global = true, default_value_t = 5000, value_name = "MS")]
    pub zk_timeout_ms: u64,
    /// ZooKeeper session timeout in milliseconds (how long a dead process keeps its nodes).
    #[arg(long, global = true, default_value_t = 6000, value_name = "MS")]
    pub session_timeout_ms: u64,
    /// The Redis servers' `requirepass` (controllers also give it to replicas as `masterauth`).
    #[arg(long, global = true, env = "ZEDIS_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// Log filter, e.g. `info`, `debug`, `zedis_controller=debug` (also `RUST_LOG`).
    #[arg(long, global = true, env = "ZEDIS_LOG", default_value = "warn")]
    pub log: String,
}

impl Global {
    pub fn zk_options(&self) -> ZkOptions {
        ZkOptions {
            hosts: self.zk.clone(),
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            connect_timeout: Duration::from_millis(self.zk_timeout_ms),
        }
    }

    pub fn paths(&self) -> Result<ClusterPaths> {
        Ok(ClusterPaths::new(&self.root, &self.cluster)?)
    }

    pub async fn connect(&self) -> Result<Zk> {
        Ok(Zk::connect(&self.zk_options()).await?)
    }
}

pub fn init_logging(global: &Global) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| global.log.clone());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Checks that `addr` is a reachable Redis server before it joins a cluster.
pub async fn check_redis(addr: &str, password: Option<&str>) -> Result<()> {
    let timeout = Duration::from_secs(2);
    let mut conn = ServerConn::connect_with(addr, timeout, password)
        .await
        .map_err(|e| anyhow::anyhow!("server {addr} is unreachable: {e}"))?;
    conn.ping().await.map_err(|e| anyhow::anyhow!("server {addr} does not answer like Redis: {e}"))?;
    let info = conn.info(&["server"]).await.map_err(|e| anyhow::anyhow!("server {addr} is not Redis: {e}"))?;
    if !info.contains("redis_version:") {
        bail!("server {addr} is not Redis (INFO has no redis_version)");
    }
    Ok(())
}

/// Parses `ADDR[,ADDR...]`.
pub fn parse_addr_list(list: &str) -> Result<Vec<String>> {
    let addrs: Vec<String> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| zedis_topology::parse_addr(s).context("bad server list"))
        .collect::<Result<_>>()?;
    if addrs.is_empty() {
        bail!("empty server list {list:?}");
    }
    Ok(addrs)
}
