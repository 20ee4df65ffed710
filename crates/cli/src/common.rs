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

/// Installs the SIGINT and SIGTERM handlers now — so a signal that arrives while a command
/// starts up is handled, not fatal — and returns a future that resolves on the first of them.
pub fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// A reconnecting connection to the Redis (or zedis proxy) named by a `--redis` flag: a URL or
/// HOST:PORT, authenticated with `--redis-password` unless the URL has a password.
pub async fn redis_manager(global: &Global, redis: &str) -> Result<redis::aio::ConnectionManager> {
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::IntoConnectionInfo;
    let url = if redis.contains("://") { redis.to_string() } else { format!("redis://{redis}") };
    let mut info = url.as_str().into_connection_info().map_err(|e| anyhow::anyhow!("bad --redis {redis:?}: {e}"))?;
    if let (None, Some(password)) = (info.redis_settings().password(), &global.redis_password) {
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    let client = redis::Client::open(info).map_err(|e| anyhow::anyhow!("bad --redis {redis:?}: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    match tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client, config)).await {
        Ok(Ok(redis)) => Ok(redis),
        Ok(Err(e)) => anyhow::bail!("Redis at {redis} is unreachable: {e}"),
        Err(_) => anyhow::bail!("Redis at {redis} is unreachable (no answer within 5s)"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) for milliseconds since the Unix epoch.
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, (rem / 60) % 60, rem % 60, ms % 1000)
}

/// The shell's view of a child's status: its code, or 128+N for death by signal N.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// SIGINT and SIGTERM, for commands that run a child and must pass signals on.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> anyhow::Result<Signals> {
        use anyhow::Context;
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// The next signal's number.
    ///
    /// # Cancellation safety
    /// Safe: a signal that arrives while no one waits is delivered at the next call.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(format_utc(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
        assert_eq!(format_utc(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(libc::SIGTERM)), 128 + libc::SIGTERM);
    }
}
