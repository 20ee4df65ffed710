//! Redis: the zedis lease lock against raw `SET NX PX` + `DEL` on one key.

use std::time::Duration;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use redis::Value;
use tokio::time::Instant;
use zedis_recipes::lease_lock::{LeaseLockOptions, RedisLeaseLock};

use crate::measure::Cycler;

/// The lease of both sides; long enough that it never expires within a cycle.
const LEASE: Duration = Duration::from_secs(30);

/// Opens `n` connections, one per client.
pub async fn connections(url: &str, n: usize) -> Result<Vec<ConnectionManager>> {
    let client = redis::Client::open(url).context("redis url")?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(ConnectionManager::new(client.clone()).await.context("connect to redis")?);
    }
    Ok(conns)
}

/// A wait between half and one and a half of `base`, as the lease lock waits between tries.
pub fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.5 + rand::random::<f64>())
}

/// Raw: `SET key <value> NX PX <lease>`; on `OK` `DEL key`; otherwise wait the same jittered
/// interval as the lock and try again.
pub struct RawSetNx {
    conn: ConnectionManager,
    key: String,
    value: String,
    retry: Duration,
}

impl RawSetNx {
    pub fn new(conn: ConnectionManager, key: &str, client: usize, retry: Duration) -> RawSetNx {
        RawSetNx { conn, key: key.to_owned(), value: format!("raw-{client}"), retry }
    }
}

impl Cycler for RawSetNx {
    async fn cycle(&mut self, deadline: Instant) -> Result<bool> {
        let lease_ms = LEASE.as_millis() as u64;
        loop {
            let reply: Value = redis::cmd("SET")
                .arg(&self.key)
                .arg(&self.value)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query_async(&mut self.conn)
                .await
                .context("SET NX")?;
            if reply != Value::Nil {
                let _: i64 = redis::cmd("DEL").arg(&self.key).query_async(&mut self.conn).await.context("DEL")?;
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(jittered(self.retry).min(deadline - now)).await;
        }
    }
}

/// The zedis lease lock: `try_lock` (SET NX PX, watchdog started) + `release` (compare-and-
/// delete script, watchdog stopped).
pub struct LeaseLockCycler {
    lock: RedisLeaseLock,
}

impl LeaseLockCycler {
    pub fn new(conn: ConnectionManager, name: &str, retry: Duration) -> Result<LeaseLockCycler> {
        let opts = LeaseLockOptions { lease: LEASE, retry_interval: retry, ..LeaseLockOptions::default() };
        Ok(LeaseLockCycler { lock: RedisLeaseLock::new(conn, name, opts)? })
    }

    /// The key both sides contend on, so raw and lock use the same slot and key shape.
    pub fn key(name: &str) -> String {
        format!("{}{{{name}}}", zedis_recipes::lease_lock::DEFAULT_KEY_PREFIX)
    }
}

impl Cycler for LeaseLockCycler {
    async fn cycle(&mut self, deadline: Instant) -> Result<bool> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let Some(mut guard) = self.lock.try_lock(timeout).await? else {
            return Ok(false);
        };
        guard.release().await?;
        Ok(true)
    }
}
