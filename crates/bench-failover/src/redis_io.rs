//! Redis connections with timeouts, the measuring client's write, `INFO` parsing and the
//! deadline loop every wait uses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

/// Connect and per-command timeout of every connection the benchmark opens. Everything is
/// on loopback: a live server answers in well under a millisecond.
pub const IO_TIMEOUT: Duration = Duration::from_millis(250);

/// How often a wait re-checks its condition.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Opens a connection to `127.0.0.1:port`-style `addr`.
pub async fn connect(addr: &str) -> Result<MultiplexedConnection, String> {
    let (host, port) = zedis_topology::split_addr(addr).ok_or_else(|| format!("{addr}: not host:port"))?;
    let client = redis::Client::open((host.to_string(), port)).map_err(|e| format!("{addr}: {e}"))?;
    let config =
        AsyncConnectionConfig::new().set_connection_timeout(Some(IO_TIMEOUT)).set_response_timeout(Some(IO_TIMEOUT));
    match tokio::time::timeout(IO_TIMEOUT, client.get_multiplexed_async_connection_with_config(&config)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: connect timed out")),
    }
}

/// Runs one command with [`IO_TIMEOUT`].
pub async fn query<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) -> Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, cmd.query_async::<T>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Connections kept per address, as a client keeps them: reused while they work, dropped on
/// the first error and reopened on the next use.
#[derive(Default)]
pub struct ConnPool {
    conns: HashMap<String, MultiplexedConnection>,
}

impl ConnPool {
    pub async fn query<T: redis::FromRedisValue>(&mut self, addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
        let mut conn = match self.conns.remove(addr) {
            Some(conn) => conn,
            None => connect(addr).await?,
        };
        let result = query(&mut conn, cmd).await;
        if result.is_ok() {
            self.conns.insert(addr.to_string(), conn);
        }
        result.map_err(|e| format!("{addr}: {e}"))
    }

    /// The measured write.
    pub async fn set(&mut self, addr: &str, key: &str, value: &str) -> Result<(), String> {
        self.query::<()>(addr, redis::cmd("SET").arg(key).arg(value)).await
    }

    /// `INFO replication` as key → value.
    pub async fn info_replication(&mut self, addr: &str) -> Result<HashMap<String, String>, String> {
        let text: String = self.query(addr, redis::cmd("INFO").arg("replication")).await?;
        Ok(parse_info(&text))
    }
}

/// `key:value` lines of an `INFO` reply.
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Checks that `addr` runs as a replica of `master` with its link up.
pub async fn check_replica_linked(pool: &mut ConnPool, addr: &str, master: &str) -> Result<(), String> {
    let info = pool.info_replication(addr).await?;
    let role = info.get("role").map(String::as_str).unwrap_or("?");
    if role != "slave" {
        return Err(format!("{addr} has role {role}, not replica"));
    }
    let (_, master_port) = zedis_topology::split_addr(master).ok_or_else(|| format!("{master}: not host:port"))?;
    let port = info.get("master_port").map(String::as_str).unwrap_or("?");
    if port != master_port.to_string() {
        return Err(format!("{addr} replicates port {port}, not {master}"));
    }
    let link = info.get("master_link_status").map(String::as_str).unwrap_or("?");
    if link != "up" {
        return Err(format!("{addr} has master_link_status {link}"));
    }
    Ok(())
}

/// Checks that `addr` runs as a master with `replicas` connected replicas.
pub async fn check_master(pool: &mut ConnPool, addr: &str, replicas: usize) -> Result<(), String> {
    let info = pool.info_replication(addr).await?;
    let role = info.get("role").map(String::as_str).unwrap_or("?");
    if role != "master" {
        return Err(format!("{addr} has role {role}, not master"));
    }
    let connected: usize = info.get("connected_slaves").and_then(|v| v.parse().ok()).unwrap_or(0);
    if connected != replicas {
        return Err(format!("{addr} has {connected} connected replicas, want {replicas}"));
    }
    Ok(())
}

/// A deadline for one wait; [`Waiter::pause`] fails with what was still missing.
pub struct Waiter {
    what: String,
    timeout: Duration,
    deadline: Instant,
}

impl Waiter {
    pub fn new(what: impl Into<String>, timeout: Duration) -> Waiter {
        Waiter { what: what.into(), timeout, deadline: Instant::now() + timeout }
    }

    /// Sleeps before the next check, or fails if the deadline has passed; `missing` says why
    /// the last check failed.
    pub async fn pause(&self, missing: &str) -> Result<()> {
        if Instant::now() >= self.deadline {
            bail!("timed out after {:?} waiting for {}: {missing}", self.timeout, self.what);
        }
        tokio::time::sleep(WAIT_POLL).await;
        Ok(())
    }
}
