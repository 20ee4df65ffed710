//! ZooKeeper: the zedis lock against raw `create` (ephemeral) + `delete` of one node.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;
use zedis_coord::{Zk, ZkOptions};
use zedis_recipes::lock::{LockOptions, ZkLock};
use zookeeper_client::{Acls, CreateMode, CreateOptions};

use crate::measure::Cycler;
use crate::redis_side::jittered;

/// Where the raw side's node lives.
pub const RAW_DIR: &str = "/zedis-bench/raw";

const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());

/// The session timeout every benchmark session asks for.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// Opens `n` sessions, one per client (a lock's contenders are separate processes).
pub async fn sessions(hosts: &str, n: usize) -> Result<Vec<Zk>> {
    let mut options = ZkOptions::new(hosts);
    options.session_timeout = SESSION_TIMEOUT;
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(Zk::connect(&options).await.context("connect to ZooKeeper")?);
    }
    Ok(sessions)
}

/// Creates the raw side's parent node.
pub async fn prepare(zk: &Zk) -> Result<()> {
    zk.ensure_path(RAW_DIR).await.context("create the raw side's directory")
}

/// Raw: `create <dir>/<name>` (ephemeral); on success `delete` it; on `NodeExists` wait the
/// same jittered interval as the Redis side and try again. This is the naive ZooKeeper lock:
/// no queue, no watch, no token record.
pub struct RawCreateDelete {
    zk: Zk,
    path: String,
    retry: Duration,
}

impl RawCreateDelete {
    pub fn new(zk: Zk, name: &str, retry: Duration) -> RawCreateDelete {
        RawCreateDelete { zk, path: format!("{RAW_DIR}/{name}"), retry }
    }
}

impl Cycler for RawCreateDelete {
    async fn cycle(&mut self, deadline: Instant) -> Result<bool> {
        loop {
            match self.zk.client().create(&self.path, b"", &EPHEMERAL).await {
                Ok(_) => {
                    self.zk.client().delete(&self.path, None).await.with_context(|| format!("delete {}", self.path))?;
                    return Ok(true);
                }
                Err(zookeeper_client::Error::NodeExists) => {}
                Err(e) => return Err(e).with_context(|| format!("create {}", self.path)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(jittered(self.retry).min(deadline - now)).await;
        }
    }
}

/// The zedis ZooKeeper lock ([`ZkLock`]): `try_lock` (ephemeral sequential contender, wait
/// on the predecessor only) + `release`.
pub struct ZkLockCycler {
    lock: ZkLock,
}

impl ZkLockCycler {
    pub fn new(zk: &Zk, name: &str) -> Result<ZkLockCycler> {
        let options = LockOptions { owner: "zedis-bench-coord".to_owned(), ..LockOptions::default() };
        Ok(ZkLockCycler { lock: ZkLock::new(zk, name, options)? })
    }
}

impl Cycler for ZkLockCycler {
    async fn cycle(&mut self, deadline: Instant) -> Result<bool> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let Some(mut guard) = self.lock.try_lock(timeout).await? else {
            return Ok(false);
        };
        guard.release().await?;
        Ok(true)
    }
}
