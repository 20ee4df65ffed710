use std::time::Duration;

use anyhow::Result;
use clap::Args;
use zedis_controller::{default_id, ControllerOptions};

use crate::common::Global;

#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Unique id of this instance (default: <hostname>-<pid>).
    #[arg(long)]
    pub id: Option<String>,
    /// How often the leader plans, in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub tick_ms: u64,
    /// Do not keep the Redis mirrors of ZooKeeper data (`zedis:services:<name>`, ...) in the
    /// cluster while leading.
    #[arg(long)]
    pub no_mirrors: bool,
}

pub async fn run(global: &Global, args: ControllerArgs) -> Result<()> {
    let mut options = ControllerOptions::new(global.zk_options(), &global.cluster);
    options.root = global.root.clone();
    options.id = args.id.unwrap_or_else(default_id);
    options.tick = Duration::from_millis(args.tick_ms.max(10));
    options.redis_password = global.redis_password.clone();
    options.mirrors = !args.no_mirrors;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    tracing::info!(id = %options.id, cluster = %options.cluster, "controller starting");
    zedis_controller::run(options, stop_rx).await?;
    tracing::info!("controller stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
