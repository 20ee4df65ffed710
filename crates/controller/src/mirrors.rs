//! The Redis mirrors the controller leader keeps: ZooKeeper data that applications in any
//! language read from the cluster's Redis (`zedis:services:<name>`, `zedis:config:<ns>`). They
//! write into the cluster itself through `zedis::Cluster`, routed in-process by slot like the
//! proxy.
//!
//! Mirrors converge and their writes are idempotent (or version-checked), so the short overlap
//! of an old and a new leader both mirroring is harmless; they run only while leading to keep
//! the write load in one place.

use std::time::Duration;

use std::future::Future;

use zedis_proxy::{Cluster, ClusterOptions};
use zedis_recipes::config::{self, ConfigClient, ConfigOptions, MirrorTarget, TargetError};
use zedis_recipes::discovery::{Discovery, DiscoveryOptions, MirrorOptions};

use crate::controller::ControllerOptions;

/// The in-process routing client mirrors write through, retried until the cluster is reachable.
async fn connect_cluster(options: &ControllerOptions) -> Cluster {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut cluster = ClusterOptions::new(&options.zk.hosts, &options.cluster);
        cluster.zk = options.zk.clone();
        cluster.root = options.root.clone();
        cluster.proxy.id = format!("mirror-{}", options.id);
        cluster.proxy.backend.password = options.redis_password.clone();
        match Cluster::connect(cluster).await {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!(error = %e, "mirrors: cannot reach the cluster yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The cluster as the config mirror's write target; its masters' generation tells the mirror
/// about failovers (a promoted replica may lack the last writes, so the mirror compares
/// everything again). Slot migrations move keys whole and need no resync.
struct ClusterTarget(Cluster);

impl MirrorTarget for ClusterTarget {
    fn query(&self, args: Vec<Vec<u8>>) -> impl Future<Output = Result<redis::Value, TargetError>> + Send {
        let mut cluster = self.0.clone();
        async move { config::query_with(&mut cluster, args).await }
    }

    fn epoch(&self) -> Option<u64> {
        Some(self.0.masters_generation())
    }
}

/// Retries `attempt` with backoff until it gives something (ZooKeeper unreachable, ...).
async fn retry<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(what: &str, attempt: impl Fn() -> F) -> T {
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "{what}: not ready; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Keeps every mirror until dropped (it never returns on its own).
///
/// # Cancellation safety
/// Drop it to stop: each mirror writes whole changes and resyncs fully when it starts again.
pub async fn run(options: ControllerOptions) {
    let cluster = connect_cluster(&options).await;
    let services = async {
        loop {
            let discovery = retry("services mirror", || {
                Discovery::connect(options.zk.clone(), DiscoveryOptions { root: options.root.clone() })
            })
            .await;
            tracing::info!("mirroring services into the cluster");
            discovery.mirror(cluster.clone(), MirrorOptions::default()).run().await;
        }
    };
    let config = async {
        loop {
            let client = retry("config mirror", || {
                ConfigClient::connect(
                    options.zk.clone(),
                    ConfigOptions { root: options.root.clone(), ..ConfigOptions::default() },
                )
            })
            .await;
            tracing::info!("mirroring configuration into the cluster");
            client.mirror(ClusterTarget(cluster.clone()), config::MirrorOptions::default()).run().await;
        }
    };
    tokio::join!(services, config);
}
