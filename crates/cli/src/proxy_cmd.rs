use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use zedis_proxy::options::{Durability, ReadFrom};
use zedis_proxy::{ProxyOptions, ProxyState};

use crate::common::Global;

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Address to listen on for Redis clients.
    #[arg(long, default_value = "127.0.0.1:6380")]
    pub listen: String,
    /// Most clients at once; more are refused with an error.
    #[arg(long, default_value_t = ProxyOptions::default().max_clients)]
    pub max_clients: usize,
    /// Replies a client may have outstanding before the proxy stops reading it.
    #[arg(long, default_value_t = ProxyOptions::default().max_pipeline)]
    pub max_pipeline: usize,
    /// Shared backend connections per Redis server and worker thread.
    #[arg(long, default_value_t = 2)]
    pub backend_connections: usize,
    /// Milliseconds a request may wait for its backend.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub request_timeout_ms: u64,
    /// Milliseconds a command on a migrating slot may wait: for a big key being copied in
    /// chunks to become writable, or (blocking commands, transactions, scripts, which cannot
    /// run through the migration guard) for its slot to finish moving. Then `-TRYAGAIN`.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub migration_wait_ms: u64,
    /// When a write is acknowledged: `async` (when the master has it, as Redis) or
    /// `replicated` (only after WAIT confirms a replica has it; else an error).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Async)]
    pub durability: DurabilityArg,
    /// Replicas that must confirm a write in `replicated` mode.
    #[arg(long, default_value_t = 1)]
    pub wait_replicas: u32,
    /// Milliseconds to wait for replicas in `replicated` mode.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub wait_timeout_ms: u64,
    /// Password clients must give with AUTH (the `default` user, full access).
    #[arg(long, env = "ZEDIS_PROXY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A user as NAME:PASSWORD:ROLE, ROLE one of read, write, admin (FLUSHALL/FLUSHDB need
    /// admin; read runs no command that writes). Repeat for more users.
    #[arg(long = "user", value_name = "NAME:PASSWORD:ROLE")]
    pub users: Vec<zedis_proxy::auth::User>,
    /// The Redis servers' `requirepass`.
    #[arg(long, env = "ZEDIS_BACKEND_PASSWORD", hide_env_values = true)]
    pub backend_password: Option<String>,
    /// Where read-only commands go: `master`, or `replica-preferred` (a replica whose link is
    /// up and whose last contact with its master is at most --max-lag-secs old).
    #[arg(long, value_enum, default_value_t = ReadFromArg::Master)]
    pub read_from: ReadFromArg,
    /// Largest replication lag, in seconds, of a replica that serves reads.
    #[arg(long, default_value_t = 1)]
    pub max_lag_secs: u64,
    /// Address for the HTTP endpoint with `/metrics` (Prometheus) and `/healthz`; off if unset.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Worker threads serving clients, each with its own backend connections (default: half
    /// the CPUs, at least one).
    #[arg(long, default_value_t = ProxyOptions::default().threads)]
    pub threads: usize,
    /// Unique id of this proxy (default: proxy-<pid>).
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFromArg {
    Master,
    ReplicaPreferred,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityArg {
    Async,
    Replicated,
}

pub async fn run(global: &Global, args: ProxyArgs) -> Result<()> {
    let mut options = ProxyOptions { listen: args.listen.clone(), ..ProxyOptions::default() };
    options.max_clients = args.max_clients.max(1);
    options.max_pipeline = args.max_pipeline.max(1);
    options.backend.connections = args.backend_connections.max(1);
    options.threads = args.threads.max(1);
    options.request_timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    options.migration_wait = Duration::from_millis(args.migration_wait_ms.max(1));
    if args.durability == DurabilityArg::Replicated {
        options.durability = Durability::Replicated {
            replicas: args.wait_replicas.max(1),
            timeout: Duration::from_millis(args.wait_timeout_ms.max(1)),
        };
    }
    if let Some(id) = args.id {
        options.id = id;
    }
    if args.read_from == ReadFromArg::ReplicaPreferred {
        options.read_from = ReadFrom::ReplicaPreferred { max_lag: Duration::from_secs(args.max_lag_secs) };
    }
    options.auth = zedis_proxy::auth::AuthConfig { password: args.password.clone(), users: args.users.clone() };
    options.backend.password = args.backend_password.clone();
    let paths = global.paths()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let state = ProxyState::new(options);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::controller_cmd::wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    tracing::info!(listen = %args.listen, cluster = %global.cluster, "proxy starting");
    if let ReadFrom::ReplicaPreferred { max_lag } = state.options.read_from {
        tokio::spawn(zedis_proxy::replica_health::watch_replicas(state.clone(), max_lag, stop_rx.clone()));
    }
    if let Some(addr) = &args.metrics_listen {
        let http = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        tokio::spawn(zedis_proxy::http::serve(state.clone(), http, stop_rx.clone()));
    }
    let follower =
        tokio::spawn(zedis_proxy::follower::follow(state.clone(), global.zk_options(), paths, stop_rx.clone()));
    zedis_proxy::server::run(state, listener, stop_rx).await;
    follower.abort();
    tracing::info!("proxy stopped");
    Ok(())
}
